"""Running an audit: every part measures and writes its results; nothing here analyses.

Layout of ``<out>/<audit-id>/``:

- ``audit.json``: the plan, what each part cost (wall time, runs) and the status;
- ``ablation/<config>/results.json``: every interleaved repeat of one configuration
  (``ablation/repeats/<config>-<n>/``: each repeat's own run folder and target logs);
- ``instructions/<config>/results.json``: instructions per request under callgrind;
- ``capacity.json`` (and ``capacity/``): the capacity searches, step by step;
- ``profiles/optimized/results.json``: the optimized variant, profiled.

:mod:`perfaudit.audit.analyze` reads these into ``summary.json``; reports render from it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from perfaudit.audit.plan import OPTIMIZED, PHASE3, AuditPlan, Config
from perfaudit.profile import ProfileSpec, parse_cli
from perfaudit.results import RunRecord, environment, new_run_id, utc_now
from perfaudit.run.repeat import Runner, Side, run_repeats
from perfaudit.run.runner import RunEvents, RunOptions, run_scenarios
from perfaudit.scenario import Scenario
from perfaudit.stack.process import ProcessStartError

AUDIT_FILE = "audit.json"
# cursor-runner "works" 200-300 ms (as in e2e-flow) instead of the stand-in's 3-5 s, and
# every run waits (up to DRAIN_S) for the work its requests caused before its metrics
# window closes: per-request costs then count the job, the callback and the reply, not
# only what fitted in a short window (phase3, being slower, would otherwise look cheaper).
AUDIT_STANDINS = {"callback_delay_ms": 200, "callback_jitter_ms": 100}
DRAIN_S = 30.0
SCHEMA_VERSION = 1
PARTS = ("ablation", "instructions", "capacity", "profiles")


@dataclass
class AuditRecord:
    audit_id: str
    command: list[str]
    plan: dict[str, Any]
    created_at: str = field(default_factory=utc_now)
    environment: dict[str, Any] = field(default_factory=environment)
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    status: str = "running"
    finished_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "audit_id": self.audit_id,
                "created_at": self.created_at, "finished_at": self.finished_at,
                "status": self.status, "command": self.command,
                "environment": self.environment, "plan": self.plan,
                "parts": self.parts}  # fmt: skip


def write_record(folder: Path, record: AuditRecord) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{AUDIT_FILE}.tmp"
    tmp.write_text(json.dumps(record.to_dict(), indent=1, default=str))
    tmp.replace(folder / AUDIT_FILE)


def read_record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / AUDIT_FILE).read_text())


def _options(config: Config, out: Path, base: RunOptions, **extra: Any) -> RunOptions:
    return replace(base, out_dir=out, variant=config.variant, with_=config.with_,
                   without=config.without, **extra)  # fmt: skip


def _select(
    scenarios: dict[str, Scenario], names: tuple[str, ...], max_rate: float | None = None
) -> list[Scenario]:
    return [audited(scenarios[n], max_rate) for n in names]


def audited(scenario: Scenario, max_rate: float | None = None) -> Scenario:
    """The scenario as the audit's ablation runs it: quick cursor-runner callbacks (its own
    settings win), and an open-model rate of at most ``max_rate``."""
    out = replace(scenario, standins={**AUDIT_STANDINS, **dict(scenario.standins)})
    load = scenario.load
    if max_rate is not None and getattr(load, "rate", None) and load.rate > max_rate:
        out = replace(out, load=replace(load, rate=float(max_rate), stages=()))
    return out


def tolerant(runner: Runner = run_scenarios, attempts: int = 2) -> Runner:
    """``runner`` for an audit's many short runs: a target that fails to start (a port taken
    between choosing and binding it, on a busy machine) is tried again, and after the last
    attempt that run is left out with a note instead of ending the whole part."""

    def run(
        scenarios: list[Scenario], options: RunOptions, events: RunEvents, command: list[str],
        record: RunRecord,
    ) -> RunRecord:  # fmt: skip
        for attempt in range(1, attempts + 1):
            try:
                return runner(scenarios, options, events, command, record)
            except (ProcessStartError, ConnectionError, OSError) as exc:
                if record.scenarios:  # it started and measured: keep what it has
                    events.note(f"run ended early ({exc}); its finished scenarios are kept")
                    return record
                first = str(exc).splitlines()[0]
                if attempt == attempts:
                    events.note(f"left out after {attempts} attempts: {first}")
                    record.status = "failed"
                    return record
                events.note(f"target did not start ({first}); trying again")
        return record

    return run


def run_ablation(
    plan: AuditPlan, scenarios: dict[str, Scenario], folder: Path, events: RunEvents,
    command: list[str],
) -> int:  # fmt: skip
    """Every configuration, ``repeats`` times, interleaved (A B ... then ... B A)."""
    s = plan.settings
    base = RunOptions(duration_s=s.duration_s, warmup_s=s.warmup_s, profile=(),
                      measure=("latency",), drain_s=DRAIN_S)  # fmt: skip
    # One side per configuration and scenario: every run is a fresh target, so a figure
    # never depends on which scenarios ran before it in the same process (peak RSS, a
    # leak's cost, warm caches); sides of one scenario are adjacent, so a drift over the
    # invocation touches a comparison's two sides alike.
    sides = [
        Side(
            key=c.key,
            scenarios=_select(scenarios, (name,), s.ablation_max_rate),
            options=_options(c, folder, base),
            runner=tolerant(),
            folder=f"{c.key}--{name}",
        )
        for name in plan.scenarios
        for c in plan.configs
        if name in c.scenarios
    ]
    run_repeats(sides, s.repeats, folder, events, command, run_id="ablation")
    return plan.runs_per_repeat() * s.repeats


def run_instructions(
    plan: AuditPlan, scenarios: dict[str, Scenario], folder: Path, events: RunEvents,
    command: list[str],
) -> int:  # fmt: skip
    """Instructions per request of the planned switches' first touched http scenario, with
    and without the switch (deterministic: one repeat each)."""
    base = RunOptions(profile=(), measure=("instructions",),
                      cost_requests=plan.settings.instructions_requests)  # fmt: skip
    wanted: dict[str, set[str]] = {}
    for c in plan.configs:
        if c.switch in plan.instructions and c.role in plan.settings.instructions_roles:
            scenario = plan.instructions[c.switch]
            wanted.setdefault(c.key, set()).add(scenario)
            wanted.setdefault(c.reference, set()).add(scenario)
    sides = [
        Side(
            key=c.key,
            options=_options(c, folder, base),
            scenarios=[scenarios[n] for n in plan.scenarios if n in wanted[c.key]],
            runner=tolerant(),
        )  # fmt: skip
        for c in plan.configs
        if c.key in wanted
    ]
    if sides:
        run_repeats(sides, 1, folder, events, command, run_id="instructions")
    return sum(len(side.scenarios) for side in sides)


def run_capacity(
    plan: AuditPlan, scenarios: dict[str, Scenario], folder: Path, events: RunEvents,
    command: list[str],
) -> int:  # fmt: skip
    from perfaudit.audit.capacity import search_capacity
    from perfaudit.audit.plan import CAPACITY_START

    s = plan.settings
    out: list[dict[str, Any]] = []
    path = folder / "capacity.json"
    steps = 0
    for name in plan.capacity:
        for variant in (PHASE3, OPTIMIZED):
            events.note(f"capacity: {name} on {variant}")
            try:
                result = search_capacity(
                    scenarios[name], RunOptions(variant=variant, profile=(), measure=("latency",)),
                    start_rate=CAPACITY_START.get(name, 10.0), max_rate=s.capacity_max_rate,
                    refine=s.capacity_refine, factor=s.capacity_factor, warmup_s=s.warmup_s, duration_s=s.capacity_duration_s,
                    run_dir=folder / "capacity" / f"{variant}-{name}", events=events,
                )  # fmt: skip
            except (ProcessStartError, ConnectionError, OSError, ValueError) as exc:
                # this search is left out (said in the report); the others still run
                out.append(
                    {"scenario": name, "variant": variant, "error": str(exc).splitlines()[0]}
                )
                path.write_text(json.dumps({"results": out}, indent=1, default=str))
                continue
            out.append({"scenario": name, "variant": variant, **result.to_dict()})
            steps += len(result.steps)
            path.write_text(json.dumps({"results": out}, indent=1, default=str))
    return steps


def run_profiles(
    plan: AuditPlan, scenarios: dict[str, Scenario], folder: Path, events: RunEvents,
    command: list[str],
) -> int:  # fmt: skip
    """The optimized variant under each profiler: what is left to optimize."""
    if not plan.profile_scenarios:
        return 0
    specs: tuple[ProfileSpec, ...] = parse_cli(list(plan.settings.profile)) or ()
    s = plan.settings
    opt = Config(OPTIMIZED, OPTIMIZED, None, plan.profile_scenarios)
    # Profiles need a steady window long enough for enough samples.
    base = RunOptions(duration_s=max(s.duration_s, 4.0), warmup_s=s.warmup_s, profile=specs,
                      measure=("latency",))  # fmt: skip
    side = Side(key=OPTIMIZED, runner=tolerant(), scenarios=_select(scenarios, opt.scenarios),
                options=_options(opt, folder, base))  # fmt: skip
    run_repeats([side], 1, folder, events, command, run_id="profiles")
    return len(opt.scenarios) * (1 + len(specs))


PART_RUNNERS: dict[str, Callable[..., int]] = {
    "ablation": run_ablation,
    "instructions": run_instructions,
    "capacity": run_capacity,
    "profiles": run_profiles,
}


def wanted_parts(plan: AuditPlan) -> list[str]:
    parts = ["ablation"]
    if plan.instructions:
        parts.append("instructions")
    if plan.capacity:
        parts.append("capacity")
    if plan.profile_scenarios:
        parts.append("profiles")
    return parts


def run_audit(
    plan: AuditPlan,
    scenarios: dict[str, Scenario],
    out_dir: Path,
    events: RunEvents,
    command: list[str],
    audit_id: str | None = None,
    on_part: Callable[[str, dict[str, Any]], None] | None = None,
    resume: dict[str, Any] | None = None,
) -> Path:
    """Run every part of ``plan``; returns the audit folder. What finished is kept (and
    recorded) when a part fails or the audit is interrupted. ``resume``: the stored
    ``audit.json`` of an audit to go on with: its complete parts are kept, not run again."""
    if resume is not None:
        audit_id = resume["audit_id"]
    audit_id = audit_id or f"audit-{new_run_id()}"
    folder = out_dir / audit_id
    record = AuditRecord(audit_id=audit_id, command=command, plan=plan.to_dict())
    if resume is not None:
        record.created_at, record.environment = resume["created_at"], resume["environment"]
        record.command = [*resume["command"], "&&", *command]
        record.parts = {k: v for k, v in resume["parts"].items() if v.get("status") == "complete"}
    write_record(folder, record)
    try:
        for part in wanted_parts(plan):
            if part in record.parts:
                continue  # complete in the audit this one resumes
            t0 = time.monotonic()
            record.parts[part] = {"status": "running", "started_at": utc_now()}
            write_record(folder, record)
            try:
                runs = PART_RUNNERS[part](plan, scenarios, folder, events, command)
            except KeyboardInterrupt:
                record.parts[part].update(status="interrupted", wall_s=time.monotonic() - t0)
                raise
            except Exception as exc:  # one part failing (a target that would not start) is
                # recorded and reported; the other parts still run
                record.parts[part].update(
                    status="failed", wall_s=round(time.monotonic() - t0, 1),
                    error=f"{type(exc).__name__}: {exc}",
                )  # fmt: skip
                write_record(folder, record)
                events.note(f"{part} failed: {exc}")
                if on_part:
                    on_part(part, record.parts[part])
                continue
            record.parts[part].update(status="complete", wall_s=round(time.monotonic() - t0, 1),
                                      runs=runs)  # fmt: skip
            write_record(folder, record)
            if on_part:
                on_part(part, record.parts[part])
        failed = [p for p, info in record.parts.items() if info.get("status") == "failed"]
        record.status = "failed" if failed else "complete"
    except KeyboardInterrupt:
        record.status = "interrupted"
        raise
    except BaseException:
        record.status = "failed"
        raise
    finally:
        record.finished_at = utc_now()
        write_record(folder, record)
    return folder
