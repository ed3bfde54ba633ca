"""``perfaudit audit``: the Phase 4 audit of the reference service, written to one folder.

Measures (perfaudit.audit.runner), analyses into summary.json (perfaudit.audit.analyze) and
renders the report (perfaudit.report.audit_render). ``--render`` re-renders a folder from
its stored results alone.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from perfaudit import exitcodes

HELP = (
    "Measure every optimization switch on its own (add-one: phase3 + the switch; drop-one: "
    "optimized - the switch), interleaved with its reference and repeated; search each key "
    "endpoint's capacity on both variants; check the seed's targets; profile the optimized "
    "variant for what is left. Writes <out>/audit-<id>/: results, summary.json, report.md, "
    "index.html and charts.\n\n"
    "Exit codes: 0 the audit ran (whatever its verdicts); 2 usage or configuration error; "
    "3 a part could not run (a target did not start); 130 interrupted (what finished is kept "
    "and rendered)."
)


def audit(
    quick: Annotated[
        bool, typer.Option("--quick", help="the CI form: under 8 minutes, see README")
    ] = False,
    switch: Annotated[
        list[str] | None,
        typer.Option("--switch", help="audit only this switch (repeatable; default: all)"),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", "-s", help="only these scenarios (repeatable)"),
    ] = None,
    repeat: Annotated[
        int | None, typer.Option(help="interleaved repeats of each configuration")
    ] = None,
    duration: Annotated[float | None, typer.Option(help="steady window per run (s)")] = None,
    warmup: Annotated[float | None, typer.Option(help="warm-up per run (s)")] = None,
    all_touched: Annotated[
        bool,
        typer.Option(
            "--all-touched",
            help="measure each switch on every scenario it touches (default: the first 3 in "
            "the catalog's order, the first with --quick)",
        ),
    ] = False,
    capacity: Annotated[
        bool, typer.Option("--capacity/--no-capacity", help="the capacity searches")
    ] = True,
    capacity_max_rate: Annotated[
        float | None,
        typer.Option(help="the highest rate a capacity search tries (req/s; default 1000)"),
    ] = None,
    instructions: Annotated[
        bool,
        typer.Option(
            "--instructions/--no-instructions",
            help="instructions per request under callgrind (needs valgrind)",
        ),
    ] = True,
    profiles: Annotated[
        bool, typer.Option("--profiles/--no-profiles", help="profile the optimized variant")
    ] = True,
    out: Annotated[Path, typer.Option(help="where the audit folder goes")] = Path("reports"),
    publish: Annotated[
        Path | None,
        typer.Option(help="also render the report here (e.g. reports/phase4), with summary.json"),
    ] = None,
    docs: Annotated[
        Path | None,
        typer.Option(help="also write the performance documentation here (docs/performance.md)"),
    ] = None,
    render: Annotated[
        Path | None,
        typer.Option(help="measure nothing: re-render this audit folder from its results"),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="go on with this interrupted audit folder: its complete parts are kept, the "
            "others run with this invocation's settings (e.g. --no-instructions)"
        ),
    ] = None,
) -> None:
    from perfaudit.cli_ui import console, fail

    if render is not None:
        _render_only(render, publish, docs)
        return
    from perfaudit.audit.plan import PRESETS, AuditPlanError, build_plan, with_overrides
    from perfaudit.scenario import ScenarioError, load_scenarios

    if repeat is not None and repeat < 1:
        raise fail(exitcodes.USAGE, f"--repeat must be >= 1, got {repeat}")
    if (duration is not None and duration <= 0) or (warmup is not None and warmup < 0):
        raise fail(exitcodes.USAGE, "--duration must be > 0 and --warmup >= 0")
    settings = with_overrides(
        PRESETS["quick" if quick else "full"], repeats=repeat, duration_s=duration,
        warmup_s=warmup,
    )  # fmt: skip
    if capacity_max_rate is not None and capacity_max_rate <= 0:
        raise fail(exitcodes.USAGE, f"--capacity-max-rate must be > 0, got {capacity_max_rate}")
    settings = with_overrides(settings, capacity_max_rate=capacity_max_rate)
    if all_touched:
        settings = replace(settings, max_touched=None)
    if not capacity:
        settings = with_overrides(settings, capacity=())
    if not instructions:
        settings = with_overrides(settings, instructions=False)
    if not profiles:
        settings = with_overrides(settings, profile=(), profile_scenarios=())
    try:
        found = {s.name: s for s in load_scenarios(None)}
    except ScenarioError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    reference = {n: s for n, s in found.items() if s.target.is_reference}
    try:
        plan = build_plan({n: s.kind for n, s in reference.items()}, settings, switch, scenario)
    except AuditPlanError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    stored = None
    if resume is not None:
        stored, plan = _resumed(resume, plan)
        out = resume.parent
    _preflight(plan)
    console.print(_plan_text(plan), highlight=False)
    folder = _measure(plan, reference, out, stored)
    _finish(folder, publish, docs)
    status = json.loads((folder / "audit.json").read_text()).get("status")
    if status == "failed":  # a part could not run: the rest is reported, the exit says so
        raise typer.Exit(exitcodes.INVALID)


def _preflight(plan: Any) -> None:
    """Instructions need valgrind: without it that part is left out, the audit goes on."""
    from perfaudit.cli_ui import err
    from perfaudit.measure import callgrind

    if not plan.instructions:
        return
    problems = callgrind.missing()
    for problem in problems:
        err.print(f"[yellow]warning:[/] instructions (left out): {problem}", highlight=False)
    if problems:
        plan.instructions.clear()


def _plan_text(plan: Any) -> str:
    s = plan.settings
    parts = [
        f"audit ({s.preset}): {len(plan.switches)} switches, {len(plan.configs)} configurations, "
        f"{plan.runs_per_repeat()} runs per repeat x {s.repeats} repeats "
        f"(warm-up {s.warmup_s:g} s, window {s.duration_s:g} s)",
    ]
    if plan.instructions:
        parts.append(f"instructions: {len(plan.instructions)} switches under callgrind")
    if plan.capacity:
        parts.append(f"capacity: {', '.join(plan.capacity)} on phase3 and optimized")
    if plan.profile_scenarios:
        parts.append(f"profiles ({', '.join(s.profile)}): {', '.join(plan.profile_scenarios)}")
    return "\n".join(parts)


def _resumed(folder: Path, now: Any) -> tuple[dict[str, Any], Any]:
    """The stored record of ``folder`` and the plan to go on with: the stored ablation
    (what the complete parts measured) with this invocation's settings for the rest."""
    from perfaudit.audit.plan import AuditPlan
    from perfaudit.audit.runner import AUDIT_FILE
    from perfaudit.cli_ui import fail

    try:
        record = json.loads((folder / AUDIT_FILE).read_text())
        stored = AuditPlan.from_dict(record["plan"])
    except (OSError, ValueError, KeyError) as exc:
        raise fail(exitcodes.USAGE, f"{folder}: cannot resume: {exc}") from None
    rest = {k: getattr(now.settings, k) for k in (
        "instructions", "instructions_switches", "instructions_roles", "instructions_requests",
        "capacity", "capacity_duration_s", "capacity_max_rate", "capacity_factor",
        "capacity_refine", "profile", "profile_scenarios")}  # fmt: skip
    plan = replace(
        stored, settings=replace(stored.settings, **rest), instructions=now.instructions,
        capacity=now.capacity, profile_scenarios=now.profile_scenarios,
    )  # fmt: skip
    return record, plan


def _measure(
    plan: Any, scenarios: dict[str, Any], out: Path, resume: dict[str, Any] | None = None
) -> Path:
    from perfaudit.audit.runner import run_audit
    from perfaudit.cli_ui import console, fail, sigterm_as_interrupt
    from perfaudit.results import new_run_id
    from perfaudit.run.display import LiveDisplay
    from perfaudit.stack.process import ProcessStartError
    from perfaudit.stack.redis_server import RedisNotFoundError

    audit_id = resume["audit_id"] if resume else f"audit-{new_run_id()}"
    folder = out / audit_id
    sigterm_as_interrupt()

    def done(part: str, info: dict[str, Any]) -> None:
        if info.get("status") == "failed":
            console.print(f"[red]{part} failed[/] after {info.get('wall_s', 0):.0f} s: "
                          f"{info.get('error')}", highlight=False)  # fmt: skip
            return
        console.print(
            f"{part}: {info.get('runs', 0)} runs in {info.get('wall_s', 0):.0f} s", highlight=False
        )

    try:
        with LiveDisplay(console) as live:
            run_audit(plan, scenarios, out, live, sys.argv, audit_id, on_part=done, resume=resume)
    except KeyboardInterrupt:
        console.print(f"interrupted; what finished is kept in {folder}", highlight=False)
        _finish(folder, None, None, quiet=True)
        raise typer.Exit(exitcodes.INTERRUPTED) from None
    except (ProcessStartError, RedisNotFoundError, ConnectionError, OSError) as exc:
        _finish(folder, None, None, quiet=True)
        raise fail(exitcodes.INVALID, f"could not start a target: {exc}") from None
    return folder


def _finish(folder: Path, publish: Path | None, docs: Path | None, quiet: bool = False) -> None:
    """Analyse and render; print the verdict per switch and where everything went."""
    from perfaudit.audit.analyze import write_summary
    from perfaudit.cli_ui import err
    from perfaudit.report.audit_render import publish as publish_to
    from perfaudit.report.audit_render import render_audit

    try:
        summary_path = write_summary(folder)
        written = render_audit(folder)
    except (OSError, ValueError, KeyError) as exc:
        err.print(f"[red]error:[/] could not render {folder}: {exc}", highlight=False)
        return
    if publish is not None:
        written += publish_to(folder, publish, docs)
    if quiet:
        return
    _print_summary(summary_path)
    _print_written(written)


def _print_summary(path: Path) -> None:
    import json

    from rich.table import Table

    from perfaudit.cli_ui import console

    summary = json.loads(path.read_text())
    table = Table("switch", "verdict", "largest effects (without -> with the switch)",
                  title=summary["headline"])  # fmt: skip
    for s in summary["switches"]:
        effects = "; ".join(_effect_text(m) for m in s.get("best", [])) or "-"
        table.add_row(s["name"], s["verdict"], effects)
    console.print(table)
    for row in summary.get("capacity", []):
        ratio = (row.get("ratio") or {}).get("text", "n/a")
        console.print(f"capacity {row['scenario']}: {ratio}", highlight=False)
    costs = ", ".join(f"{k} {v.get('wall_s', 0):.0f} s" for k, v in summary["parts"].items())
    console.print(f"cost: {costs}; summary: {path}", highlight=False)


def _effect_text(m: dict[str, Any]) -> str:
    from perfaudit.analysis.metrics import rel_text

    if m.get("change") is not None and m.get("scale") == "log":
        return f"{m['label']} {rel_text(m['change'])}"
    return f"{m['label']} {m.get('baseline', 0):.3g} -> {m.get('candidate', 0):.3g}"


def _render_only(folder: Path, publish: Path | None, docs: Path | None) -> None:
    from perfaudit.audit.runner import AUDIT_FILE
    from perfaudit.cli_ui import fail
    from perfaudit.report.audit_render import publish as publish_to
    from perfaudit.report.audit_render import render_audit

    if not (folder / AUDIT_FILE).exists() and not (folder / "summary.json").exists():
        raise fail(
            exitcodes.USAGE, f"{folder}: not an audit folder (no {AUDIT_FILE} or summary.json)"
        )
    try:
        if (folder / AUDIT_FILE).exists():
            from perfaudit.audit.analyze import write_summary

            write_summary(folder)
        written = render_audit(folder)
        if publish is not None:
            written += publish_to(folder, publish, docs)
    except (OSError, ValueError, KeyError) as exc:
        raise fail(exitcodes.USAGE, f"{folder}: cannot render: {exc}") from None
    _print_written(written)


def _print_written(written: list[Path]) -> None:
    """The reports and docs written (their charts sit beside them)."""
    from perfaudit.cli_ui import console

    for path in written:
        if Path(path).suffix in (".md", ".html"):
            console.print(f"report: {path}", highlight=False)
