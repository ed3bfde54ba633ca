"""``perfaudit baseline save|list|show``: named baselines in scenarios/baselines/."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from perfaudit import cli_ui as ui
from perfaudit import exitcodes
from perfaudit.commands.options import BASELINES_DIR, DirOpt

baseline_app = typer.Typer(no_args_is_help=True, help="Save, list and show named baselines.")


@baseline_app.command("save")
def save(
    name: Annotated[
        str, typer.Argument(help="the baseline's name (file scenarios/baselines/NAME.json)")
    ],
    from_: Annotated[
        list[Path] | None,
        typer.Option("--from", help="a run folder or results.json to keep (repeatable: repeats)"),
    ] = None,
    paths: Annotated[
        list[Path] | None, typer.Argument(help="scenario files or folders (fresh run only)")
    ] = None,
    only: Annotated[
        list[str] | None, typer.Option("--scenario", "-s", help="only this scenario (repeatable)")
    ] = None,
    variant: Annotated[str, typer.Option(help="the variant to measure (fresh run)")] = "optimized",
    with_: Annotated[list[str] | None, typer.Option("--with", help="add a switch")] = None,
    without: Annotated[list[str] | None, typer.Option("--without", help="remove a switch")] = None,
    repeat: Annotated[int, typer.Option(help="repeats of a fresh run, each its own start")] = 3,
    duration: Annotated[float | None, typer.Option(help="override durations (s)")] = None,
    warmup: Annotated[float | None, typer.Option(help="override warm-ups (s)")] = None,
    out: Annotated[Path, typer.Option(help="where the fresh run's folder goes")] = Path("reports"),
    description: Annotated[str, typer.Option(help="a line saying what this baseline is")] = "",
    directory: DirOpt = BASELINES_DIR,
    force: Annotated[bool, typer.Option(help="replace an existing baseline")] = False,
) -> None:
    """Store a baseline from a finished run (--from) or a fresh run with --repeat N.

    Every repeat's full entries are kept (histograms included), with the environment
    and load settings they were measured under."""
    from perfaudit import baseline as bl
    from perfaudit import results

    console, err, fail = ui.console, ui.err, ui.fail
    try:
        path = bl.path_for(name, directory)
    except bl.BaselineError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    if path.exists() and not force:
        raise fail(exitcodes.USAGE, f"{path} exists; --force replaces it")
    if from_:
        try:
            records = [results.read(p) for p in from_]
        except results.ResultsError as exc:
            raise fail(exitcodes.USAGE, str(exc)) from None
    else:
        records = [_fresh(paths, only, variant, with_, without, repeat, duration, warmup, out)]
    invalid = [e["name"] for r in records for e in r.scenarios if not e["validity"]["valid"]]
    try:
        b = bl.from_records(name, records, description, sys.argv)
    except bl.BaselineError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    written = bl.save(b, directory)
    counts = {n: len(es) for n, es in b.by_scenario().items()}
    console.print(
        f"saved {written} ({written.stat().st_size / 1e6:.2f} MB): "
        + ", ".join(f"{n} ×{c}" for n, c in counts.items()),
        highlight=False,
    )
    if invalid:
        err.print(
            f"[yellow]warning:[/] invalid repeats kept (left out of comparisons): {', '.join(invalid)}"
        )


def _fresh(
    paths: list[Path] | None,
    only: list[str] | None,
    variant: str,
    with_: list[str] | None,
    without: list[str] | None,
    repeat: int,
    duration: float | None,
    warmup: float | None,
    out: Path,
) -> Any:
    from perfaudit.gate import show_entries
    from perfaudit.run.display import LiveDisplay, final_table
    from perfaudit.run.repeat import CANDIDATE, Side, run_repeats
    from perfaudit.run.runner import RunOptions

    console, fail = ui.console, ui.fail
    ui.resolve_switches(variant, with_, without)
    if repeat < 1:
        raise fail(exitcodes.USAGE, "--repeat must be >= 1")
    scenarios = ui.load_selected(paths, only)
    options = RunOptions(out_dir=out, duration_s=duration, warmup_s=warmup, variant=variant,
                         with_=tuple(with_ or ()), without=tuple(without or ()))  # fmt: skip
    ui.sigterm_as_interrupt()
    try:
        with LiveDisplay(console) as live:
            records = run_repeats(
                [Side(CANDIDATE, scenarios, options)], repeat, out, live, sys.argv
            )
    except KeyboardInterrupt:
        raise typer.Exit(exitcodes.INTERRUPTED) from None
    record = records[CANDIDATE]
    console.print(final_table(show_entries(records), f"run {record.run_id}"))
    return record


@baseline_app.command("list")
def list_(directory: DirOpt = BASELINES_DIR) -> None:
    """The stored baselines: what, where measured and how often."""
    from rich.table import Table

    from perfaudit import baseline as bl

    console = ui.console
    table = Table("name", "recorded", "targets", "scenarios × repeats", "machine", "git", "size")
    for path, b in bl.list_baselines(directory):
        if isinstance(b, str):
            table.add_row(path.stem, f"[red]{b}[/]", "", "", "", "", "")
            continue
        env = b.environment
        by = b.by_scenario()
        reps = sorted({len(v) for v in by.values()})
        table.add_row(
            b.name, b.source.get("recorded_at", b.created_at)[:19],
            b.target_labels(), f"{len(by)} × {'/'.join(map(str, reps))}",
            f"{env.get('cpu_model')} ×{env.get('cpu_count')}, py {env.get('python')}",
            (env.get("git_commit") or "?")[:10], f"{path.stat().st_size / 1e6:.2f} MB",
        )  # fmt: skip
    console.print(table)


@baseline_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="a baseline name or file")],
    directory: DirOpt = BASELINES_DIR,
) -> None:
    """A baseline's environment, settings, medians and A/A spread per scenario."""
    import math
    import statistics

    from rich.table import Table

    from perfaudit import baseline as bl
    from perfaudit.analysis.compare import GateSettings
    from perfaudit.analysis.metrics import compared_metrics, log_text
    from perfaudit.analysis.samples import repeats_by_metric
    from perfaudit.analysis.stats import t_quantile

    console, fail = ui.console, ui.fail
    try:
        b = bl.load(name, directory)
    except bl.BaselineError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    env = b.environment
    console.print(f"[bold]{b.label()}[/] {b.description}", highlight=False)
    console.print(
        f"recorded {b.source.get('recorded_at', b.created_at)} on {env.get('hostname')}: "
        f"{env.get('cpu_model')} ×{env.get('cpu_count')}, Python {env.get('python')}, "
        f"git {env.get('git_commit')}{' (dirty)' if env.get('git_dirty') else ''}",
        highlight=False,
    )
    cal = env.get("calibration") or {}
    console.print(
        f"machine calibration: {1000 * cal['median_s']:.1f} ms median ({cal.get('workload')})"
        if cal.get("median_s")
        else "machine calibration: none (its time metrics are never trusted as stored)",
        highlight=False,
    )
    console.print(f"command: {' '.join(b.source.get('command') or [])}", highlight=False)
    for scenario, recorded in b.by_scenario().items():
        # The values a comparison reads: valid repeats, latency without the worst seconds.
        entries = [e for e in recorded if (e.get("validity") or {}).get("valid", True)]
        if not entries:
            console.print(f"{scenario}: no valid repeat", highlight=False)
            continue
        metrics = compared_metrics(entries[0].get("kind", "http"))
        per_metric = repeats_by_metric(metrics, entries)
        settings = bl.settings_of(entries[0])
        load = settings["load"] or {}
        what = f"{load.get('model')} " + (
            f"{load.get('rate')}/s" if load.get("rate") else f"{load.get('users')} users"
        )
        table = Table(
            "metric", "median", "min", "max", "A/A spread (sd)", "noise floor at 3 v 3",
            title=f"{scenario}: {len(entries)} valid repeats of {len(recorded)}, {what}, "
            f"{settings['warmup_s']}s warm-up + {settings['duration_s']}s", title_justify="left",
        )  # fmt: skip
        for m in metrics:
            values = [r.value for r in per_metric[m.name]]
            if not values:
                continue
            spread = floor = "n/a"
            if len(values) > 1:
                log = m.scale == "log" and min(values) > 0
                sd = statistics.stdev([math.log(v) for v in values] if log else values)
                # the smallest change 3 repeats a side could tell from this much noise
                at3 = t_quantile(GateSettings().floor_quantile, 4) * sd * math.sqrt(2 / 3)
                spread = f"{100 * sd:.1f} %" if log else m.diff_text(sd, signed=False)
                floor = "±" + (
                    log_text(at3, signed=False) if log else m.diff_text(at3, signed=False)
                )
            table.add_row(
                m.label, m.fmt(statistics.median(values)), m.fmt(min(values)), m.fmt(max(values)),
                spread, floor,
            )  # fmt: skip
        console.print(table)
