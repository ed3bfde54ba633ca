"""The ``perfaudit`` command line. Thin: parse, call, print."""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from perfaudit import cli_ui as ui
from perfaudit import exitcodes
from perfaudit import gate_cli as gate_help
from perfaudit.refservice import switches as sw
from perfaudit.report.commands import report as report_command
from perfaudit.scenario.commands import scenarios_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=(
        "perfaudit: load, profile and compare Python services.\n\n"
        "Exit codes: 0 ok; 1 a threshold failed or a regression was found; "
        "2 usage or configuration error; 3 the run is invalid (generator saturated, "
        "a process crashed); 130 interrupted."
    ),
)
app.add_typer(scenarios_app, name="scenarios", help="List and validate scenario files.")
app.command("report")(report_command)  # perfaudit/report/commands.py
gate_help.mount(app)  # baseline save|list|show, compare
console, err = ui.console, ui.err

VariantOpt = Annotated[
    str, typer.Option("--variant", help="phase3 (the review's findings) or optimized (all fixes)")
]
WithOpt = Annotated[
    list[str] | None,
    typer.Option("--with", help="turn on one optimization switch (repeatable)"),
]
WithoutOpt = Annotated[
    list[str] | None,
    typer.Option("--without", help="turn off one optimization switch (repeatable)"),
]


fail = ui.fail
resolve_switches = ui.resolve_switches
_sigterm_as_interrupt = ui.sigterm_as_interrupt


@app.command("switches")
def list_switches() -> None:
    """List the optimization switches of the reference service."""
    table = Table("switch", "Phase 3 finding", "phase3 does", "the switch changes it to")
    for s in sw.CATALOG:
        table.add_row(s.name, s.finding, s.phase3, s.optimized)
    console.print(table)


@app.command()
def serve(
    variant: VariantOpt = "optimized",
    with_: WithOpt = None,
    without: WithoutOpt = None,
    redis_url: Annotated[
        str | None, typer.Option(help="use this Redis instead of starting a private one")
    ] = None,
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

    switches = resolve_switches(variant, with_, without)
    run_dir = run_dir or Path(".perfaudit") / f"serve-{datetime.now():%Y%m%d-%H%M%S}"
    options = StackOptions(
        run_dir=run_dir,
        switches=switches,
        redis_url=redis_url,
        standin_config=None if realistic else FAST_STANDINS,
    )
    stack = Stack(options)
    _sigterm_as_interrupt()
    try:
        with console.status("starting Redis, stand-ins, service and worker..."):
            info = stack.start()
    except KeyboardInterrupt:
        stack.stop()
        raise typer.Exit(exitcodes.INTERRUPTED) from None
    except (ProcessStartError, RedisNotFoundError, ConnectionError, OSError) as exc:
        raise fail(exitcodes.INVALID, str(exc)) from None
    try:
        _print_stack(info, variant)
        while True:
            dead = stack.dead()
            if dead:
                names = ", ".join(f"{p.name} (log {p.log_path})" for p in dead)
                raise fail(exitcodes.INVALID, f"stopped because a process exited: {names}")
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("\nstopping...")
        raise typer.Exit(exitcodes.OK) from None
    finally:
        stack.stop()


@app.command()
def smoke(
    variant: VariantOpt = "optimized",
    with_: WithOpt = None,
    without: WithoutOpt = None,
    run_dir: Annotated[Path | None, typer.Option(help="where logs go")] = None,
) -> None:
    """Run one update of each kind through the whole stack and show each reply's latency."""
    from perfaudit.smoke import run_smoke
    from perfaudit.stack.process import ProcessStartError
    from perfaudit.stack.redis_server import RedisNotFoundError

    switches = resolve_switches(variant, with_, without)
    run_dir = run_dir or Path(".perfaudit") / f"smoke-{datetime.now():%Y%m%d-%H%M%S}"
    _sigterm_as_interrupt()
    try:
        with console.status(f"smoke flow on variant {variant}..."):
            results = run_smoke(run_dir, switches)
    except KeyboardInterrupt:
        raise typer.Exit(exitcodes.INTERRUPTED) from None
    except (ProcessStartError, RedisNotFoundError, OSError) as exc:
        raise fail(exitcodes.INVALID, str(exc)) from None
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
    console.print(table)
    console.print(f"logs: {run_dir}/logs")
    if not all(r.ok for r in results):
        raise fail(exitcodes.FAILED, "some steps got no reply; see the logs above")


@app.command()
def run(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="scenario files or folders (default: the scenarios/ folder)"),
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--scenario", "-s", help="run only this scenario (repeatable)"),
    ] = None,
    variant: Annotated[
        str | None, typer.Option(help="override the reference targets' variant")
    ] = None,
    with_: WithOpt = None,
    without: WithoutOpt = None,
    duration: Annotated[
        float | None, typer.Option(help="override every scenario's duration (seconds)")
    ] = None,
    warmup: Annotated[
        float | None, typer.Option(help="override every scenario's warm-up (seconds)")
    ] = None,
    out: Annotated[Path, typer.Option(help="where run folders go")] = Path("reports"),
    redis_url: Annotated[
        str | None, typer.Option(help="use this Redis instead of starting a private one")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the run summary as JSON on stdout")
    ] = False,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            help="profile each scenario's steady window: py-spy, pyinstrument, memray, with "
            "options after a colon (py-spy:idle,gil,rate=200); 'none' turns off the scenarios' "
            "profile: keys. One extra run per profiler (the run takes that much longer)",
        ),
    ] = None,
    measure: Annotated[
        str | None,
        typer.Option(
            "--measure",
            help="what to measure, comma-separated: latency (the load run; the default) and "
            "instructions (instructions per request under valgrind callgrind: deterministic "
            "to ~0.1 %, for the CI gate); replaces the scenarios' measure: keys",
        ),
    ] = None,
    cost_requests: Annotated[
        int | None,
        typer.Option(help="requests the instructions measure sends (overrides cost.requests)"),
    ] = None,
    baseline: Annotated[str | None, typer.Option(help=gate_help.BASELINE)] = None,
    repeat: Annotated[int | None, typer.Option(help=gate_help.REPEAT)] = None,
    junit: Annotated[Path | None, typer.Option(help=gate_help.JUNIT)] = None,
    summary_md: Annotated[Path | None, typer.Option("--summary", help=gate_help.SUMMARY)] = None,
    confirm: Annotated[
        bool,
        typer.Option(
            "--confirm/--no-confirm",
            help="before a time-based regression fails the run, confirm it with a second, "
            "independent round of repeats (default on; instruction and count regressions "
            "are deterministic and never rerun)",
        ),
    ] = True,
) -> None:
    """Drive each scenario's target with load and measure it; write reports/<run-id>/."""
    import json as json_mod

    from perfaudit.profile import ProfileSpecError, parse_cli
    from perfaudit.profile.terminal import print_profiles
    from perfaudit.report.cost_terminal import cost_summary, print_cost
    from perfaudit.run.display import LiveDisplay, QuietEvents, explain, final_table
    from perfaudit.run.runner import RunOptions, run_scenarios
    from perfaudit.scenario import ScenarioError, UnknownScenarioError, load_scenarios, select
    from perfaudit.stack.process import ProcessStartError
    from perfaudit.stack.redis_server import RedisNotFoundError

    if variant is not None:
        resolve_switches(variant, with_, without)
    elif with_ or without:
        resolve_switches("phase3", with_, without)
    if (duration is not None and duration <= 0) or (warmup is not None and warmup < 0):
        raise fail(exitcodes.USAGE, "--duration must be > 0 and --warmup >= 0")
    try:
        scenarios = load_scenarios(paths or None)
    except ScenarioError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    try:
        scenarios = select(scenarios, only)
    except UnknownScenarioError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    if not scenarios:
        raise fail(exitcodes.USAGE, "no scenarios to run")
    try:
        profile_specs = parse_cli(profile)
    except ProfileSpecError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    measures = _measures(measure, cost_requests)
    options = RunOptions(
        out_dir=out, duration_s=duration, warmup_s=warmup, variant=variant,
        with_=tuple(with_ or ()), without=tuple(without or ()), redis_url=redis_url,
        profile=profile_specs, measure=measures, cost_requests=cost_requests,
    )  # fmt: skip
    _profile_preflight(scenarios, options)
    _measure_preflight(scenarios, options)
    if baseline or repeat is not None or junit or summary_md:  # the CI gate: perfaudit.gate_cli
        code = gate_help.gated_run(
            scenarios, options, baseline, repeat, junit, summary_md, as_json, confirm
        )
        raise typer.Exit(code)
    from perfaudit.results import RunRecord

    record = RunRecord.start(sys.argv)
    _sigterm_as_interrupt()
    show = err if as_json else console
    try:
        if as_json:
            run_scenarios(scenarios, options, QuietEvents(), sys.argv, record)
        else:
            with LiveDisplay(console) as live:
                run_scenarios(scenarios, options, live, sys.argv, record)
    except KeyboardInterrupt:
        show.print(
            f"interrupted; {len(record.scenarios)} finished scenario(s) kept in "
            f"{out / record.run_id}", highlight=False,
        )  # fmt: skip
        raise typer.Exit(exitcodes.INTERRUPTED) from None
    except ScenarioError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    except (ProcessStartError, RedisNotFoundError, ConnectionError, OSError) as exc:
        raise fail(exitcodes.INVALID, f"could not start a target: {exc}") from None
    entries = record.scenarios
    code = _exit_code(entries)
    report_paths = _render_report(out / record.run_id, show)
    if as_json:
        summary = {
            "run_id": record.run_id,
            "results": str(out / record.run_id / "results.json"),
            "report": report_paths,
            "exit_code": code,
            "scenarios": [
                {k: e[k] for k in ("name", "kind", "verdict", "summary", "checks", "validity")}
                | {"target": e["target"]["label"]}
                | {k: e[k] for k in ("profiles", "overhead") if k in e}
                for e in entries
            ],
            "instructions_per_request": cost_summary(entries),
        }
        print(json_mod.dumps(summary, indent=2, default=str))
    else:
        console.print(final_table(entries, f"run {record.run_id}"))
        explain(entries, console)
        print_profiles(entries, console)
        print_cost(entries, console)
        console.print(f"results: {out / record.run_id / 'results.json'}", highlight=False)
        for path in report_paths:
            console.print(f"report: {path}", highlight=False)
    raise typer.Exit(code)


_render_report = ui.render_report


def _profile_preflight(scenarios: list[object], options: object) -> None:
    """Say before the run what the chosen profilers miss; those are skipped, the run goes on."""
    from perfaudit.profile import check, union
    from perfaudit.run.runner import profile_specs

    specs = union(profile_specs(s, options) for s in scenarios)  # type: ignore[arg-type]
    for found in check(specs).values():
        for p in found:
            skip = " (skipped)" if p.blocking else ""
            err.print(
                f"[yellow]warning:[/] {p.profiler}{skip}: {p.message}. Fix: {p.fix}",
                highlight=False,
            )


def _measures(measure: str | None, cost_requests: int | None) -> tuple[str, ...] | None:
    from perfaudit.scenario.model import MEASURES

    if cost_requests is not None and cost_requests < 2:
        raise fail(exitcodes.USAGE, f"--cost-requests must be >= 2, got {cost_requests}")
    if measure is None:
        return None
    items = tuple(dict.fromkeys(m.strip() for m in measure.split(",") if m.strip()))
    bad = [m for m in items if m not in MEASURES]
    if bad or not items:
        raise fail(
            exitcodes.USAGE,
            f"--measure: unknown measure {(bad or [measure])[0]!r} (known: {', '.join(MEASURES)})",
        )
    return items


def _measure_preflight(scenarios: list[object], options: object) -> None:
    """Say before the run what the instructions measure misses, and what it cannot drive."""
    from perfaudit.measure import callgrind
    from perfaudit.run.runner import prepare

    counted = [prepare(s, options) for s in scenarios]  # type: ignore[arg-type]
    counted = [s for s in counted if "instructions" in s.measure]
    if not counted:
        return
    for s in counted:
        if s.kind != "http":
            raise fail(exitcodes.USAGE, f"{s.display_path}: measure instructions: only for kind "
                       f"http, not {s.kind} (leave it out with -s, or use --measure latency)")  # fmt: skip
        if not s.target.is_reference and not s.target.start:
            raise fail(exitcodes.USAGE, f"{s.display_path}: measure instructions needs "
                       "target.start: perfaudit starts the service under valgrind")  # fmt: skip
    for problem in callgrind.missing():
        err.print(f"[yellow]warning:[/] instructions (skipped): {problem}", highlight=False)


def _exit_code(entries: list[dict[str, object]]) -> int:
    verdicts = {e["verdict"] for e in entries}
    if "invalid" in verdicts:
        return exitcodes.INVALID
    if "fail" in verdicts:
        return exitcodes.FAILED
    return exitcodes.OK


def _print_stack(info: object, variant: str) -> None:
    from perfaudit.stack.stack import StackInfo

    assert isinstance(info, StackInfo)
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


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
