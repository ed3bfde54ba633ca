"""What every command module shares: the consoles, the one-line error exit, switch
resolution, SIGTERM as Ctrl-C and the report written beside a run. Below perfaudit.cli
and the command modules it wires, so they can all import it."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

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
