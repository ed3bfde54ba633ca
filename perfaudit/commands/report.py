"""``perfaudit report RUN [--baseline B]``: render a run again, from its results alone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from perfaudit import exitcodes

err = Console(stderr=True)


def resolve_run(run: str, reports: Path) -> Path:
    """A run id (looked up under ``reports``), a run folder, or a results.json."""
    p = Path(run)
    if p.exists():
        return p
    candidate = reports / run
    if candidate.exists():
        return candidate
    raise FileNotFoundError(f"{run}: no such run folder, results file, or run id under {reports}/")


def baseline_side(ref: str) -> tuple[str, dict[str, list[dict[str, Any]]]]:
    """A baseline name or file, a run folder or a results.json → (label, entries by scenario)."""
    from perfaudit.baseline import read_entries

    label, _env, entries = read_entries(ref)
    by_name: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        if not e.get("profiled"):
            by_name.setdefault(e["name"], []).append(e)
    return label, by_name


def report(
    run: Annotated[
        str, typer.Argument(help="a run id under reports/, a run folder or a results.json")
    ],
    baseline: Annotated[
        str | None,
        typer.Option(help="a baseline name (scenarios/baselines/), a run folder or a results.json"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="where to write (default: the run's folder)")
    ] = None,
    reports: Annotated[Path, typer.Option(help="where run folders are")] = Path("reports"),
) -> None:
    """Write index.html (self-contained) and report.md (+ charts/) for a run."""
    from perfaudit import results
    from perfaudit.baseline import BaselineError
    from perfaudit.report.render import render

    try:
        path = resolve_run(run, reports)
        label, entries, comparison = "", None, None
        if baseline:
            label, entries = baseline_side(baseline)
            comparison = recorded_comparison(path, baseline)
        base_path = Path(baseline) if baseline else None
        base_dir = None
        if base_path is not None and base_path.exists():
            base_dir = base_path if base_path.is_dir() else base_path.parent
        written = render(path, out, entries, label, comparison, base_dir)
    except (FileNotFoundError, results.ResultsError, BaselineError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(exitcodes.USAGE) from None
    print(f"report: {written.html}\nreport: {written.markdown}")


def recorded_comparison(run: Path, baseline: str) -> dict[str, Any] | None:
    """The statistical comparison of the run against the baseline, when both have data.
    Verdicts follow ``perfaudit compare``'s trust rules (nothing is re-run): a class of
    metric the recordings do not show to be comparable is inconclusive, with the reason."""
    try:
        from perfaudit import results
        from perfaudit.analysis.compare import compare_entries
        from perfaudit.baseline import read_entries, recorded_untrusted

        b_label, b_env, b_entries = read_entries(baseline)
        record = results.read(run)
        untrusted, notes = recorded_untrusted(
            b_env, b_entries, record.environment, record.scenarios, baseline
        )
        return compare_entries(
            b_entries, record.scenarios, baseline_label=b_label,
            candidate_label=f"run {record.run_id}", mode="recorded", untrusted=untrusted,
            notes=notes,
        ).to_dict()  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - a report without statistics is still a report
        err.print(f"warning: no statistical comparison ({exc}); showing the baseline's values")
        return None
