"""Commands of the CI gate: ``baseline save|list|show``, ``compare``, and the
``--baseline/--repeat/--junit/--summary`` path of ``run``. Thin: parse, call, print.

Imported by :mod:`perfaudit.cli` at start-up, so heavy modules are imported inside the
commands.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from perfaudit import exitcodes

if TYPE_CHECKING:
    from perfaudit.run.runner import RunOptions
    from perfaudit.scenario import Scenario

BASELINE = (
    "compare with this baseline: a name in scenarios/baselines/ or a baseline file; or, run "
    "side by side, variant:<label> (variant:phase3, variant:optimized-redis-pool) or "
    "git:<rev> (that revision's perfaudit). A stored baseline is used as stored only where "
    "this machine is shown to match it (time metrics: CPU, a calibration and a canary repeat; "
    "counts: the load settings; instructions: valgrind, CPU, Python, packages); otherwise its "
    "configuration is re-measured side by side"
)
REPEAT = "run each scenario N times, each with its own target start (default 3 with --baseline)"
CONFIRM = (
    "before failing on a time regression (latency, throughput, CPU), run that scenario again, "
    "both sides, N repeats each, and fail only if the second round shows it too"
)
JUNIT = "write JUnit XML here: a test case per scenario and check"
SUMMARY = "write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)"
EXIT_CODES = (
    "Exit codes: 0 pass; 1 a threshold failed or a regression was found; 2 usage or "
    "configuration error; 3 the run is invalid (generator saturated, a process crashed); "
    "130 interrupted."
)

baseline_app = typer.Typer(no_args_is_help=True, help="Save, list and show named baselines.")
DirOpt = Annotated[
    Path, typer.Option("--dir", help="where baselines live")
]  # default below: perfaudit.baseline.DEFAULT_DIR


def mount(app: typer.Typer) -> None:
    app.add_typer(baseline_app, name="baseline", help="Save, list and show named baselines.")
    app.command("compare", help=compare.__doc__ + "\n\n" + EXIT_CODES)(compare)


def _ui() -> tuple[Any, Any, Any]:
    from perfaudit.cli_ui import console, err, fail

    return console, err, fail


# -- run --baseline ------------------------------------------------------------------------
def gated_run(
    scenarios: list[Scenario],
    options: RunOptions,
    baseline: str | None,
    repeat: int | None,
    junit: Path | None,
    summary: Path | None,
    as_json: bool,
    confirm: bool = True,
) -> int:
    from perfaudit.cli_ui import sigterm_as_interrupt as _sigterm_as_interrupt
    from perfaudit.gate import DEFAULT_REPEAT, GateError, GateOptions, plan, print_gate, run_gate
    from perfaudit.results import new_run_id
    from perfaudit.run.display import LiveDisplay, QuietEvents
    from perfaudit.scenario import ScenarioError
    from perfaudit.stack.process import ProcessStartError
    from perfaudit.stack.redis_server import RedisNotFoundError

    console, err, fail = _ui()
    n = repeat if repeat is not None else (DEFAULT_REPEAT if baseline else 1)
    if n < 1:
        raise fail(exitcodes.USAGE, f"--repeat must be >= 1, got {n}")
    gate = GateOptions(baseline=baseline, repeat=n, junit=junit, summary=summary, confirm=confirm)
    try:
        plan(scenarios, options, gate)  # usage errors before anything starts
    except GateError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    run_id = new_run_id()
    _sigterm_as_interrupt()
    show = err if as_json else console
    try:
        if as_json:
            result = run_gate(scenarios, options, gate, QuietEvents(), sys.argv, run_id)
        else:
            with LiveDisplay(console) as live:
                result = run_gate(scenarios, options, gate, live, sys.argv, run_id)
    except KeyboardInterrupt:
        show.print(f"interrupted; finished repeats kept in {options.out_dir / run_id}")
        raise typer.Exit(exitcodes.INTERRUPTED) from None
    except GateError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    except ScenarioError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    except (ProcessStartError, RedisNotFoundError, ConnectionError, OSError) as exc:
        raise fail(exitcodes.INVALID, f"could not start a target: {exc}") from None
    written = _render_gated(result, show)
    if as_json:
        print(json.dumps(result.to_dict() | {"report": written}, indent=2, default=str))
    else:
        print_gate(result, console)
        for path in written:
            console.print(f"report: {path}", highlight=False)
    return result.report.exit_code


def _render_gated(result: Any, err: Any) -> list[str]:
    """The before/after report beside the candidate's results, as for a plain run."""
    from perfaudit.run.repeat import BASELINE

    comparison = result.report.comparison
    folder = result.out_dir / result.run_id
    if comparison is None:
        from perfaudit.cli_ui import render_report

        return render_report(folder, err)
    base = result.records[BASELINE].scenarios if BASELINE in result.records else []
    return _render_compared(str(folder), str(folder / "baseline"), comparison.baseline, base,
                            comparison.to_dict(), err)  # fmt: skip


# -- baseline save | list | show -------------------------------------------------------------
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
    directory: DirOpt = Path("scenarios/baselines"),
    force: Annotated[bool, typer.Option(help="replace an existing baseline")] = False,
) -> None:
    """Store a baseline from a finished run (--from) or a fresh run with --repeat N.

    Every repeat's full entries are kept (histograms included), with the environment
    and load settings they were measured under."""
    from perfaudit import baseline as bl
    from perfaudit import results

    console, err, fail = _ui()
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
    from perfaudit.cli_ui import resolve_switches
    from perfaudit.cli_ui import sigterm_as_interrupt as _sigterm_as_interrupt
    from perfaudit.gate import show_entries
    from perfaudit.run.display import LiveDisplay, final_table
    from perfaudit.run.repeat import CANDIDATE, Side, run_repeats
    from perfaudit.run.runner import RunOptions
    from perfaudit.scenario import ScenarioError, UnknownScenarioError, load_scenarios, select

    console, err, fail = _ui()
    resolve_switches(variant, with_, without)
    if repeat < 1:
        raise fail(exitcodes.USAGE, "--repeat must be >= 1")
    try:
        scenarios = load_scenarios(paths or None)
    except ScenarioError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    try:
        scenarios = select(scenarios, only)
    except UnknownScenarioError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    options = RunOptions(out_dir=out, duration_s=duration, warmup_s=warmup, variant=variant,
                         with_=tuple(with_ or ()), without=tuple(without or ()))  # fmt: skip
    _sigterm_as_interrupt()
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
def list_(directory: DirOpt = Path("scenarios/baselines")) -> None:
    """The stored baselines: what, where measured and how often."""
    from rich.table import Table

    from perfaudit import baseline as bl

    console, _, _ = _ui()
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
    directory: DirOpt = Path("scenarios/baselines"),
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

    console, _, fail = _ui()
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


# -- compare ---------------------------------------------------------------------------
def compare(
    baseline: Annotated[
        str, typer.Argument(help="A: a baseline name or file, a run folder or results.json")
    ],
    candidate: Annotated[str, typer.Argument(help="B: the same kinds of reference")],
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", "-s", help="only this scenario (repeatable)")
    ] = None,
    junit: Annotated[Path | None, typer.Option(help=JUNIT)] = None,
    summary: Annotated[Path | None, typer.Option("--summary", help=SUMMARY)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
    directory: DirOpt = Path("scenarios/baselines"),
) -> None:
    """Compare B with A per scenario and metric: change, CI, noise floor, verdict.

    Verdicts: improved, regressed, unchanged, inconclusive (too noisy to say). Nothing
    is re-run, so verdicts are given per class of metric only where the recordings show
    they can be: time (latency, throughput, CPU) needs the same machine, both recordings'
    calibrations within 10 % and the same load settings; counts (connections per request)
    the same load settings; instructions the same cost environment. Others are
    inconclusive (re-measure side by side with `perfaudit run --baseline A`)."""
    from perfaudit import baseline as bl
    from perfaudit.analysis.compare import compare_entries
    from perfaudit.report import junit as junit_mod
    from perfaudit.report import markdown_summary
    from perfaudit.report.cost_terminal import print_cost_diff
    from perfaudit.report.outcome import build_report
    from perfaudit.report.terminal import print_report

    console, err, fail = _ui()
    try:
        la, env_a, ea = bl.read_entries(baseline, directory)
        lb, env_b, eb = bl.read_entries(candidate, directory)
    except bl.BaselineError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    if scenario:
        ea = [e for e in ea if e["name"] in scenario]
        eb = [e for e in eb if e["name"] in scenario]
        if not eb:
            raise fail(exitcodes.USAGE, f"B has none of: {', '.join(scenario)}")
    untrusted, notes = bl.recorded_untrusted(env_a, ea, env_b, eb, baseline)
    comparison = compare_entries(
        ea, eb, baseline_label=la, candidate_label=lb, mode="recorded", untrusted=untrusted,
        notes=notes,
    )  # fmt: skip
    report = build_report(f"perfaudit compare {la} vs {lb}", eb, comparison, with_checks=False)
    if junit:
        junit_mod.write(report, junit)
    if summary:
        markdown_summary.write(report, summary)
    written = _render_compared(candidate, baseline, la, ea, comparison.to_dict(), err)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print_report(report, console)
        print_cost_diff(ea, eb, console)
        for path in written:
            console.print(f"report: {path}", highlight=False)
    raise typer.Exit(report.exit_code)


def _render_compared(
    candidate: str,
    baseline: str,
    label: str,
    baseline_entries: list[dict[str, Any]],
    comparison: dict[str, Any],
    err: Any,
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
        err.print(f"warning: the report could not be rendered: {exc}", highlight=False)
        return []
    return [str(written.html), str(written.markdown)]
