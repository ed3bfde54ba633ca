"""What every command module shares: the consoles, the one-line error exit, switch
resolution, SIGTERM as Ctrl-C and the report written beside a run. Below perfaudit.cli
and the command modules in perfaudit/commands/, so they can all import it; it imports
neither."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from perfaudit import exitcodes
from perfaudit.refservice import switches as sw

# Tables are wide; when output is not a terminal (CI logs, pipes) do not squeeze them to 80.
console = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def fail(code: int, message: str) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    return typer.Exit(code)


def resolve_switches(
    variant: str, with_: list[str] | None, without: list[str] | None
) -> frozenset[str]:
    try:
        return sw.resolve(variant, with_ or (), without or ())
    except sw.UnknownSwitchError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None


def sigterm_as_interrupt() -> None:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def render_report(run_dir: Path, show: Console) -> list[str]:
    """index.html and report.md beside the results; a report failure never fails the run."""
    from perfaudit.report.render import render

    try:
        written = render(run_dir)
    except Exception as exc:  # noqa: BLE001 - the measurements are safe in results.json
        show.print(f"warning: the report could not be rendered: {exc}", highlight=False)
        return []
    return [str(written.html), str(written.markdown)]


def render_compared(
    candidate: str,
    baseline: str,
    label: str,
    baseline_entries: list[dict[str, Any]],
    comparison: dict[str, Any],
    show: Console,
) -> list[str]:
    """When B is a run, its before/after report goes beside its results (issue: reports)."""
    from perfaudit.report.render import render

    path = Path(candidate)
    if not (path.is_dir() or path.name == "results.json"):
        return []
    by_name: dict[str, list[dict[str, Any]]] = {}
    for e in baseline_entries:
        if not e.get("profiled"):
            by_name.setdefault(e["name"], []).append(e)
    base = Path(baseline)
    base_dir = (base if base.is_dir() else base.parent) if base.exists() else None
    try:
        written = render(path, None, by_name, label, comparison, base_dir)
    except Exception as exc:  # noqa: BLE001 - the comparison itself is already printed
        show.print(f"warning: the report could not be rendered: {exc}", highlight=False)
        return []
    return [str(written.html), str(written.markdown)]


def load_selected(paths: list[Path] | None, only: list[str] | None) -> list[Any]:
    """The scenario files under ``paths`` (default: scenarios/), only those named in ``only``;
    a bad file or an unknown name is a one-line usage error."""
    from perfaudit.scenario import ScenarioError, UnknownScenarioError, load_scenarios, select

    try:
        return select(load_scenarios(paths or None), only)
    except (ScenarioError, UnknownScenarioError) as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
