"""``perfaudit run``: load and measure each scenario; write reports/<run-id>/.

With --baseline, --repeat, --junit or --summary it is the CI gate: see
:mod:`perfaudit.commands.gated`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from perfaudit import cli_ui as ui
from perfaudit import exitcodes
from perfaudit.commands import options as opt
from perfaudit.commands.diagnose import FailOnFindingsOpt
from perfaudit.commands.options import WithOpt, WithoutOpt


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
        str | None,
        typer.Option(
            help="reference targets: use this Redis instead of starting a private one; "
            "external targets: the service's Redis, read for per-request costs (overrides "
            "target.redis_url)"
        ),
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
    baseline: Annotated[str | None, typer.Option(help=opt.BASELINE)] = None,
    repeat: Annotated[int | None, typer.Option(help=opt.REPEAT)] = None,
    junit: Annotated[Path | None, typer.Option(help=opt.JUNIT)] = None,
    summary_md: Annotated[Path | None, typer.Option("--summary", help=opt.SUMMARY)] = None,
    diagnose: Annotated[
        bool,
        typer.Option(
            "--diagnose",
            help="also run the profilers the diagnosis rules read (py-spy:idle, pyinstrument, "
            "memray), added to --profile or the scenarios' own: one more run per profiler; the "
            "unprofiled run's figures and verdict are unaffected",
        ),
    ] = False,
    fail_on_findings: FailOnFindingsOpt = None,
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

    from perfaudit.analysis.findings._gather import check_level, gather
    from perfaudit.analysis.findings._gather import exit_code as findings_exit_code
    from perfaudit.profile import ProfileSpecError, parse_cli
    from perfaudit.profile.terminal import print_profiles
    from perfaudit.report.cost_terminal import cost_summary, print_cost
    from perfaudit.report.findings_terminal import print_findings
    from perfaudit.run.display import LiveDisplay, QuietEvents, explain, final_table
    from perfaudit.run.runner import RunOptions, run_scenarios
    from perfaudit.scenario import ScenarioError
    from perfaudit.stack.process import ProcessStartError
    from perfaudit.stack.redis_server import RedisNotFoundError

    fail, console, err = ui.fail, ui.console, ui.err
    if variant is not None:
        ui.resolve_switches(variant, with_, without)
    elif with_ or without:
        ui.resolve_switches("phase3", with_, without)
    if (duration is not None and duration <= 0) or (warmup is not None and warmup < 0):
        raise fail(exitcodes.USAGE, "--duration must be > 0 and --warmup >= 0")
    scenarios = ui.load_selected(paths, only)
    if not scenarios:
        raise fail(exitcodes.USAGE, "no scenarios to run")
    try:
        profile_specs = parse_cli(profile)
    except ProfileSpecError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    try:
        level = check_level(fail_on_findings)
    except ValueError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    if diagnose:
        scenarios, profile_specs = with_diagnosis_profilers(scenarios, profile_specs)
    measures = parse_measures(measure, cost_requests)
    options = RunOptions(
        out_dir=out, duration_s=duration, warmup_s=warmup, variant=variant,
        with_=tuple(with_ or ()), without=tuple(without or ()), redis_url=redis_url,
        profile=profile_specs, measure=measures, cost_requests=cost_requests,
    )  # fmt: skip
    _profile_preflight(scenarios, options)
    _measure_preflight(scenarios, options)
    if baseline or repeat is not None or junit or summary_md:  # the CI gate
        from perfaudit.commands.gated import gated_run

        code = gated_run(
            scenarios, options, baseline, repeat, junit, summary_md, as_json, confirm, level
        )
        raise typer.Exit(code)
    from perfaudit.results import RunRecord

    record = RunRecord.start(sys.argv)
    ui.sigterm_as_interrupt()
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
    diagnosis = gather(entries)
    code = findings_exit_code(exit_code(entries), diagnosis, level)
    report_paths = ui.render_report(out / record.run_id, show)
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
            "diagnosis": diagnosis.to_dict(),
        }
        print(json_mod.dumps(summary, indent=2, default=str))
    else:
        console.print(final_table(entries, f"run {record.run_id}"))
        explain(entries, console)
        print_findings(diagnosis, console, record.run_id)
        hits = diagnosis.at_least(level)
        if hits:
            console.print(f"[bold red]FAILED[/]: {len(hits)} finding(s) at or above "
                          f"{level} (--fail-on-findings)", highlight=False)  # fmt: skip
        print_profiles(entries, console)
        print_cost(entries, console)
        console.print(f"results: {out / record.run_id / 'results.json'}", highlight=False)
        for path in report_paths:
            console.print(f"report: {path}", highlight=False)
    raise typer.Exit(code)


def exit_code(entries: list[dict[str, Any]]) -> int:
    """A plain run's exit code: 3 if any scenario is invalid, else 1 if any failed, else 0."""
    verdicts = {e["verdict"] for e in entries}
    if "invalid" in verdicts:
        return exitcodes.INVALID
    if "fail" in verdicts:
        return exitcodes.FAILED
    return exitcodes.OK


def with_diagnosis_profilers(
    scenarios: list[Any], given: tuple[Any, ...] | None
) -> tuple[list[Any], tuple[Any, ...] | None]:
    """``--diagnose``: the profilers the rules read, merged into --profile when it was given
    (``given``), else into each scenario's own ``profile:`` key."""
    from dataclasses import replace

    if given is not None:
        return scenarios, merge_profiles(given)
    return [replace(s, profile=merge_profiles(s.profile)) for s in scenarios], None


def merge_profiles(specs: tuple[Any, ...]) -> tuple[Any, ...]:
    """``specs`` plus what the diagnosis needs; a profiler already chosen keeps its options
    and gains the ones the rules need (py-spy: idle, so a thread blocked in a sleep or a
    sync socket read on the event loop is sampled at all)."""
    from perfaudit.profile.spec import make_spec

    # 250 Hz (a default the user's own rate overrides): logging and per-call regex work
    # cost a fraction of a ms per request, a few samples a second at 100 Hz.
    defaults: dict[str, dict[str, Any]] = {"py-spy": {"rate": 250}}
    needed: dict[str, dict[str, Any]] = {"py-spy": {"idle": True}, "pyinstrument": {}, "memray": {}}
    merged = {s.name: dict(s.options) for s in specs}
    for name, options in needed.items():
        merged[name] = defaults.get(name, {}) | merged.get(name, {}) | options
    return tuple(make_spec(name, options) for name, options in merged.items())


def parse_measures(measure: str | None, cost_requests: int | None) -> tuple[str, ...] | None:
    """``--measure a,b`` → the measures (None: the scenarios' own); usage errors exit 2."""
    from perfaudit.scenario.model import MEASURES

    if cost_requests is not None and cost_requests < 2:
        raise ui.fail(exitcodes.USAGE, f"--cost-requests must be >= 2, got {cost_requests}")
    if measure is None:
        return None
    items = tuple(dict.fromkeys(m.strip() for m in measure.split(",") if m.strip()))
    bad = [m for m in items if m not in MEASURES]
    if bad or not items:
        raise ui.fail(
            exitcodes.USAGE,
            f"--measure: unknown measure {(bad or [measure])[0]!r} (known: {', '.join(MEASURES)})",
        )
    return items


def _profile_preflight(scenarios: list[Any], options: Any) -> None:
    """Say before the run what the chosen profilers miss; those are skipped, the run goes on."""
    from perfaudit.profile import check, union
    from perfaudit.run.runner import profile_specs

    specs = union(profile_specs(s, options) for s in scenarios)
    for found in check(specs).values():
        for p in found:
            skip = " (skipped)" if p.blocking else ""
            ui.err.print(
                f"[yellow]warning:[/] {p.profiler}{skip}: {p.message}. Fix: {p.fix}",
                highlight=False,
            )


def _measure_preflight(scenarios: list[Any], options: Any) -> None:
    """Say before the run what the instructions measure misses, and what it cannot drive."""
    from perfaudit.measure import callgrind
    from perfaudit.run.runner import prepare

    counted = [prepare(s, options) for s in scenarios]
    counted = [s for s in counted if "instructions" in s.measure]
    if not counted:
        return
    for s in counted:
        if s.kind != "http":
            raise ui.fail(exitcodes.USAGE, f"{s.display_path}: measure instructions: only for "
                          f"kind http, not {s.kind} (leave it out with -s, or use --measure latency)")  # fmt: skip
        if not s.target.is_reference and not s.target.start:
            raise ui.fail(exitcodes.USAGE, f"{s.display_path}: measure instructions needs "
                          "target.start: perfaudit starts the service under valgrind")  # fmt: skip
    for problem in callgrind.missing():
        ui.err.print(f"[yellow]warning:[/] instructions (skipped): {problem}", highlight=False)
