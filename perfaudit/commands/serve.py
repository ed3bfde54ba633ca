"""``perfaudit serve``: the whole stack, until Ctrl-C."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from perfaudit import cli_ui as ui
from perfaudit import exitcodes
from perfaudit.commands.options import RedisUrlOpt, VariantOpt, WithOpt, WithoutOpt


def serve(
    variant: VariantOpt = "optimized",
    with_: WithOpt = None,
    without: WithoutOpt = None,
    redis_url: RedisUrlOpt = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="where logs and state go (default .perfaudit/serve-<time>)")
    ] = None,
    realistic: Annotated[
        bool,
        typer.Option(
            "--realistic/--fast",
            help="stand-in latencies like the real APIs (default) or near zero",
        ),
    ] = True,
) -> None:
    """Start the whole stack (Redis, stand-ins, service, worker) until Ctrl-C."""
    from perfaudit.stack.process import ProcessStartError
    from perfaudit.stack.redis_server import RedisNotFoundError
    from perfaudit.stack.stack import FAST_STANDINS, Stack, StackOptions

    switches = ui.resolve_switches(variant, with_, without)
    run_dir = run_dir or Path(".perfaudit") / f"serve-{datetime.now():%Y%m%d-%H%M%S}"
    options = StackOptions(
        run_dir=run_dir,
        switches=switches,
        redis_url=redis_url,
        standin_config=None if realistic else FAST_STANDINS,
    )
    stack = Stack(options)
    ui.sigterm_as_interrupt()
    try:
        with ui.console.status("starting Redis, stand-ins, service and worker..."):
            info = stack.start()
    except KeyboardInterrupt:
        stack.stop()
        raise typer.Exit(exitcodes.INTERRUPTED) from None
    except (ProcessStartError, RedisNotFoundError, ConnectionError, OSError) as exc:
        raise ui.fail(exitcodes.INVALID, str(exc)) from None
    try:
        _print_stack(info, variant)
        while True:
            dead = stack.dead()
            if dead:
                names = ", ".join(f"{p.name} (log {p.log_path})" for p in dead)
                raise ui.fail(exitcodes.INVALID, f"stopped because a process exited: {names}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        ui.console.print("\nstopping...")
        raise typer.Exit(exitcodes.OK) from None
    finally:
        stack.stop()


def _print_stack(info: object, variant: str) -> None:
    from rich.table import Table

    from perfaudit.stack.stack import StackInfo

    assert isinstance(info, StackInfo)
    console = ui.console
    table = Table(title=f"perfaudit stack — variant {variant}", show_header=False)
    table.add_row("service", info.service_url)
    table.add_row("redis", info.redis_url)
    table.add_row("Telegram stand-in", info.telegram_url)
    table.add_row("cursor-runner stand-in", info.cursor_runner_url)
    table.add_row("ElevenLabs stand-in", info.elevenlabs_url)
    table.add_row("stand-in control", f"{info.standin_control_url}/_standin/stats")
    table.add_row("switches on", ", ".join(info.switches) or "(none)")
    s = info.secrets
    table.add_row("WEBHOOK_SECRET", s.webhook_secret)
    table.add_row("TELEGRAM_WEBHOOK_SECRET", s.telegram_webhook_secret)
    table.add_row("TELEGRAM_BOT_TOKEN", s.telegram_bot_token)
    table.add_row("ELEVENLABS_API_KEY", s.elevenlabs_api_key)
    for name, path in info.logs.items():
        table.add_row(f"log: {name}", path)
    console.print(table)
    console.print(
        "try: curl -s -X POST "
        f"-H 'X-Telegram-Bot-Api-Secret-Token: {s.telegram_webhook_secret}' "
        "-H 'Content-Type: application/json' "
        '-d \'{"update_id":1,"message":{"message_id":1,"chat":{"id":42},"text":"/status"}}\' '
        f"{info.service_url}/telegram/webhook",
        highlight=False,
        soft_wrap=True,
    )
    console.print("Ctrl-C stops everything.")
