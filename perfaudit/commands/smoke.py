"""``perfaudit smoke``: one update of each kind through the whole stack."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from perfaudit import cli_ui as ui
from perfaudit import exitcodes
from perfaudit.commands.options import VariantOpt, WithOpt, WithoutOpt


def smoke(
    variant: VariantOpt = "optimized",
    with_: WithOpt = None,
    without: WithoutOpt = None,
    run_dir: Annotated[Path | None, typer.Option(help="where logs go")] = None,
) -> None:
    """Run one update of each kind through the whole stack and show each reply's latency."""
    from rich.table import Table

    from perfaudit.smoke import run_smoke
    from perfaudit.stack.process import ProcessStartError
    from perfaudit.stack.redis_server import RedisNotFoundError

    switches = ui.resolve_switches(variant, with_, without)
    run_dir = run_dir or Path(".perfaudit") / f"smoke-{datetime.now():%Y%m%d-%H%M%S}"
    ui.sigterm_as_interrupt()
    try:
        with ui.console.status(f"smoke flow on variant {variant}..."):
            results = run_smoke(run_dir, switches)
    except KeyboardInterrupt:
        raise typer.Exit(exitcodes.INTERRUPTED) from None
    except (ProcessStartError, RedisNotFoundError, OSError) as exc:
        raise ui.fail(exitcodes.INVALID, str(exc)) from None
    table = Table(
        "step", "webhook", "ack ms", "reply", "reply after ms", title=f"smoke — {variant}"
    )
    for r in results:
        table.add_row(
            r.name,
            str(r.ack_status),
            f"{r.ack_ms:.1f}",
            r.reply_route,
            f"{r.reply_ms:.0f}" if r.reply_ms is not None else "[red]no reply[/]",
        )
    ui.console.print(table)
    ui.console.print(f"logs: {run_dir}/logs")
    if not all(r.ok for r in results):
        raise ui.fail(exitcodes.FAILED, "some steps got no reply; see the logs above")
