"""Run scenarios: start each target once, drive each scenario, collect, record.

The run record is written (atomically) after every scenario, so an interrupted run keeps
what it finished. Only this side measures; the summary it stores is what analysis reads.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from perfaudit.analysis.findings import diagnose
from perfaudit.analysis.thresholds import evaluate_entry, evaluate_scenario
from perfaudit.collect.derive import per_request
from perfaudit.collect.window import MetricsWindow, collectors_for
from perfaudit.load import LoadResult, is_valid
from perfaudit.load.histogram import LatencyHistogram
from perfaudit.profile import ProfileSpec
from perfaudit.profile import check as profile_preflight
from perfaudit.profile import union as profile_union
from perfaudit.profile.runs import WindowHook, profile_scenario
from perfaudit.results import RESULTS_FILE, RunRecord, utc_now, write_atomic
from perfaudit.run.kinds import RUNNERS, seed_pending, with_overrides
from perfaudit.run.targets import TargetSession, start_target, target_key
from perfaudit.scenario import Scenario
from perfaudit.stack.client import StackClient


@dataclass(frozen=True)
class RunOptions:
    out_dir: Path = Path("reports")
    duration_s: float | None = None
    warmup_s: float | None = None
    variant: str | None = None  # overrides the reference targets' variant
    with_: tuple[str, ...] = ()
    without: tuple[str, ...] = ()
    redis_url: str | None = None
    # Profilers for every scenario (--profile); None: each scenario's own ``profile:`` key.
    profile: tuple[ProfileSpec, ...] | None = None
    # Measures for every scenario (--measure); None: each scenario's own ``measure:`` key.
    measure: tuple[str, ...] | None = None
    cost_requests: int | None = None  # --cost-requests: overrides cost.requests
    # Reference targets: after the load, keep the metrics window open until the work the
    # requests caused (jobs, cursor-runner callbacks, replies) is done, up to this many
    # seconds, so per-request costs count all of it, not only what fitted in the window.
    drain_s: float = 0.0


class RunEvents(Protocol):
    def scenario_started(self, scenario: Scenario, index: int, total: int) -> None: ...
    def progress(self, item: Any) -> None: ...
    def scenario_finished(self, entry: dict[str, Any]) -> None: ...
    def note(self, message: str) -> None: ...


def profile_specs(scenario: Scenario, options: RunOptions) -> tuple[ProfileSpec, ...]:
    return scenario.profile if options.profile is None else options.profile


def apply_target_overrides(scenario: Scenario, options: RunOptions) -> Scenario:
    if not scenario.target.is_reference:
        return scenario
    if options.variant is None and not options.with_ and not options.without:
        return scenario
    target = scenario.target
    if options.variant is not None:
        target = replace(target, variant=options.variant, with_=(), without=())
    target = replace(
        target,
        with_=tuple(dict.fromkeys((*target.with_, *options.with_))),
        without=tuple(dict.fromkeys((*target.without, *options.without))),
    )
    return replace(scenario, target=target)


def with_measure(scenario: Scenario, options: RunOptions) -> Scenario:
    """``--measure`` and ``--cost-requests`` applied (recorded with the scenario as run)."""
    if options.measure is not None:
        scenario = replace(scenario, measure=options.measure)
    if options.cost_requests is not None:
        cost = scenario.cost
        windows = min(cost.windows, options.cost_requests)
        scenario = replace(
            scenario, cost=replace(cost, requests=options.cost_requests, windows=windows)
        )
    return scenario


def prepare(scenario: Scenario, options: RunOptions) -> Scenario:
    """A scenario as this run runs it: target, duration, warm-up and measure overrides."""
    s = apply_target_overrides(scenario, options)
    return with_measure(with_overrides(s, options.duration_s, options.warmup_s), options)


def run_scenarios(
    scenarios: list[Scenario],
    options: RunOptions,
    events: RunEvents,
    command: list[str],
    record: RunRecord | None = None,
) -> RunRecord:
    record = record or RunRecord.start(command)
    run_dir = options.out_dir / record.run_id
    results_path = run_dir / RESULTS_FILE
    prepared = [prepare(s, options) for s in scenarios]
    # Scenarios that share a target share one started target; first-seen order is kept.
    groups: dict[tuple[Any, ...], list[Scenario]] = {}
    for s in prepared:
        groups.setdefault(target_key(s.target), []).append(s)
    ordered = [s for group in groups.values() for s in group]
    # Checked once: a profiler missing here is skipped (recorded per scenario), the run goes on.
    problems = profile_preflight(profile_union(profile_specs(s, options) for s in prepared))
    for found in problems.values():
        for p in found:
            events.note(f"warning: {p}")
    write_atomic(results_path, record)
    try:
        index = 0
        for n, group in enumerate(groups.values()):
            timed = [s for s in group if "latency" in s.measure]
            counted = [s for s in group if "instructions" in s.measure]
            done: list[tuple[Scenario, dict[str, Any]]] = []
            first = len(record.scenarios)  # this group's entries start here
            if timed:
                events.note(f"starting {group[0].target.label()} ...")
                session = start_target(
                    group[0].target, run_dir / f"target-{n}", redis_url=options.redis_url
                )
                try:
                    for scenario in timed:
                        index += 1
                        events.scenario_started(scenario, index, len(ordered))
                        entry = run_one(scenario, session, events, drain_s=options.drain_s)
                        record.scenarios.append(entry)
                        write_atomic(results_path, record)
                        events.scenario_finished(entry)
                        done.append((scenario, entry))
                        _profile(scenario, entry, session, run_dir, options, events, problems)
                        write_atomic(results_path, record)
                finally:
                    session.close()
                # Profilers that need the target launched their way, once the shared one is down.
                for scenario, entry in done:
                    _profile(scenario, entry, None, run_dir, options, events, problems)
                    # Rules read the profiles too, so a scenario is diagnosed once they are in.
                    entry["diagnosis"] = diagnose(entry)
                    write_atomic(results_path, record)
            if counted:
                index = _count(counted, {s.name: e for s, e in done}, run_dir / f"target-{n}", options, events,
                               record, results_path, index, len(ordered))  # fmt: skip
                for entry in record.scenarios[first:]:  # again, with the instruction counts
                    entry["diagnosis"] = diagnose(entry)
                write_atomic(results_path, record)
        record.status = "complete"
    except KeyboardInterrupt:
        record.status = "interrupted"
        raise
    except BaseException:
        record.status = "failed"
        raise
    finally:
        # Interrupted: the finished scenarios are diagnosed on what they have.
        for entry in record.scenarios:
            if "diagnosis" not in entry:
                entry["diagnosis"] = diagnose(entry)
        record.finished_at = utc_now()
        write_atomic(results_path, record)
    return record


def _count(
    scenarios: list[Scenario],
    timed: dict[str, dict[str, Any]],
    target_dir: Path,
    options: RunOptions,
    events: RunEvents,
    record: RunRecord,
    results_path: Path,
    index: int,
    total: int,
) -> int:
    """The instructions measure of scenarios sharing a target: added to the load run's
    entry, or an entry of its own when it is the only measure."""
    from perfaudit.run.instructions import measure_group

    costs = measure_group(scenarios, target_dir, options.redis_url, events.note, seed_pending)
    for scenario in scenarios:
        entry = timed.get(scenario.name)
        if entry is None:
            index += 1
            events.scenario_started(scenario, index, total)
            entry = cost_entry(scenario, costs[scenario.name])
            record.scenarios.append(entry)
            events.scenario_finished(entry)
        else:
            add_cost(entry, costs[scenario.name])
        write_atomic(results_path, record)
    return index


def add_cost(entry: dict[str, Any], cost: dict[str, Any]) -> None:
    entry.setdefault("cost", {})["instructions"] = cost
    entry["measures"] = sorted({*entry.get("measures", ["latency"]), "instructions"})
    entry["checks"] = [c.to_dict() for c in evaluate_entry(entry)]
    _cost_validity(entry, cost)


def _cost_validity(entry: dict[str, Any], cost: dict[str, Any]) -> None:
    if cost.get("status") != "ok":
        why = "; ".join(cost.get("errors") or []) or cost.get("status", "?")
        entry["validity"]["reasons"].append(f"instructions {cost.get('status')}: {why}")
        entry["validity"]["valid"] = False
    failed = [c for c in entry["checks"] if not c["passed"]]
    valid = entry["validity"]["valid"]
    entry["verdict"] = "invalid" if not valid else ("fail" if failed else "pass")


def cost_entry(scenario: Scenario, cost: dict[str, Any]) -> dict[str, Any]:
    """An entry whose only measure is instructions: no latency, no server metrics."""
    sent = cost.get("sent") or {}
    requests = int(sent.get("requests", 0))
    errors = requests - int(sent.get("ok", 0))
    target = scenario.target.to_dict() | {"label": scenario.target.label()}
    entry: dict[str, Any] = {
        "name": scenario.name,
        "file": str(scenario.path),
        "kind": scenario.kind,
        "description": scenario.description,
        "target": target,
        "scenario": scenario.to_dict(),
        "measures": ["instructions"],
        "started_at": utc_now(),
        "finished_at": utc_now(),
        "summary": {
            "requests": requests,
            "ok": requests - errors,
            "errors": errors,
            "error_rate": errors / requests if requests else 0.0,
        },  # fmt: skip
        "load": {},
        "extras": {},
        "server": {},
        "derived": {},
        "cost": {"instructions": cost},
        "validity": {"valid": True, "reasons": []},
    }
    entry["checks"] = [c.to_dict() for c in evaluate_entry(entry)]
    _cost_validity(entry, cost)
    return entry


def _profile(
    scenario: Scenario,
    entry: dict[str, Any],
    session: TargetSession | None,
    run_dir: Path,
    options: RunOptions,
    events: RunEvents,
    problems: Any,
) -> None:
    """One more run per profiler (see perfaudit.profile.runs); the entry's own figures and
    verdict stay those of the unprofiled run."""
    specs = profile_specs(scenario, options)
    if specs:
        profile_scenario(
            scenario, entry, specs, session, run_dir, run_one=run_one,
            start_target=start_target, events=events, problems=problems,
            redis_url=options.redis_url,
        )  # fmt: skip


def _configure_standins(scenario: Scenario, session: TargetSession) -> None:
    if session.stack is None:
        return
    with StackClient(session.stack) as client:
        if session.default_standins is not None:
            client.configure(session.default_standins)
        if scenario.standins:
            client.configure(dict(scenario.standins))
        client.reset()


def run_one(
    scenario: Scenario,
    session: TargetSession,
    events: RunEvents,
    hooks: Sequence[WindowHook] = (),
    drain_s: float = 0.0,
) -> dict[str, Any]:
    """One run of ``scenario``; ``hooks`` (profilers) start and stop with the steady window;
    ``drain_s``: see :attr:`RunOptions.drain_s`."""
    _configure_standins(scenario, session)
    canary = scenario.target.canary
    collectors = collectors_for(
        pids=session.pids,
        redis_url=session.measured_redis_url,
        standin_control_url=session.standin_control_url,
        service_url=session.base_url,
        instrumented=session.instrumented,
        canary=(canary.path, canary.rate_hz) if canary else None,  # before the load: idle
        connect_log=session.connect_log,
    )
    window = MetricsWindow(collectors)
    state: dict[str, Any] = {"started": False, "result": None}
    lock = threading.Lock()
    # The service's live objects: its full collection (~20-100 ms on the service's loop) is
    # taken inside the warm-up, so it neither delays the window's counters nor shows as lag.
    memory = _MemoryEdges(session.base_url) if session.instrumented else None

    def start_window() -> None:
        with lock:
            if not state["started"]:
                state["started"] = True
                window.start()
                for hook in hooks:
                    if hook.lead_s <= 0:
                        hook.start()

    def stop_window() -> None:
        start_window()  # a run shorter than its warm-up still gets a (short) window
        if drain_s > 0 and state["result"] is None:
            state["drained"] = _drain(session, drain_s)
        with lock:
            if state["result"] is None:
                state["result"] = window.stop()
                for hook in hooks:
                    hook.stop()
                if memory is not None:
                    state["result"]["memory"] = memory.stop()

    # Server metrics cover the steady window: they start when the warm-up ends. A profiler
    # that is slow to attach (lead_s) is started that much earlier, inside the warm-up.
    timers = [threading.Timer(scenario.warmup_s, start_window)]
    if memory is not None:
        timers.append(threading.Timer(max(0.0, scenario.warmup_s - MEMORY_LEAD_S), memory.start))
    timers += [
        threading.Timer(max(0.0, scenario.warmup_s - hook.lead_s), hook.start)
        for hook in hooks
        if hook.lead_s > 0
    ]
    progress = _ProgressPump(events)
    started_at = utc_now()
    for timer in timers:
        timer.daemon = True
        timer.start()
    try:
        load, extras = RUNNERS[scenario.kind](scenario, session, progress.queue, stop_window)
    finally:
        for timer in timers:
            timer.cancel()
        stop_window()
        progress.close()
    if "drained" in state:
        extras["drain"] = state["drained"]
    return build_entry(scenario, session, load, extras, state["result"] or {}, started_at)


MEMORY_LEAD_S = 0.5


class _MemoryEdges:
    """The memory probe read before the window (in the warm-up) and after it; a failure is
    reported in its place, as a collector's is."""

    def __init__(self, service_url: str) -> None:
        from perfaudit.collect.memory_probe import MemoryProbeDelta

        self.probe = MemoryProbeDelta(service_url)
        self.error: str | None = None
        self.called = False
        self.started = threading.Event()

    def start(self) -> None:
        self.called = True
        try:
            self.probe.start()
        except Exception as exc:  # noqa: BLE001 - reported in the result instead
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.started.set()

    def stop(self) -> dict[str, Any]:
        if not self.called or not self.started.wait(10.0):
            return {"error": "the memory probe was not read before the window"}
        if self.error:
            return {"error": self.error}
        try:
            return self.probe.stop()
        except Exception as exc:  # noqa: BLE001
            return {"error": f"{type(exc).__name__}: {exc}"}


def _drain(session: TargetSession, timeout_s: float) -> dict[str, Any]:
    """Wait until a reference target is quiet; how long it took, or why it did not get there."""
    from perfaudit.measure.quiet import QuietTimeout, ReferenceQuiet

    if session.stack is None:
        return {"status": "skipped", "reason": "not a reference target"}
    t0 = time.monotonic()
    quiet = ReferenceQuiet(session.stack)
    try:
        quiet.wait(timeout_s, settle_s=0.2)
        return {"status": "quiet", "wait_s": round(time.monotonic() - t0, 2)}
    except QuietTimeout as exc:
        return {"status": "timeout", "wait_s": round(time.monotonic() - t0, 2), "reason": str(exc)}
    finally:
        quiet.close()


def build_entry(
    scenario: Scenario,
    session: TargetSession,
    load: LoadResult,
    extras: dict[str, Any],
    server: dict[str, Any],
    started_at: str,
) -> dict[str, Any]:
    summary = summarize(scenario.kind, load, extras)
    derived = per_request(
        load.sent,
        server.get("redis") if "redis" in server else None,  # type: ignore[arg-type]
        server.get("standins") if "standins" in server else None,  # type: ignore[arg-type]
        server.get("connections"),
    )
    checks = [c.to_dict() for c in evaluate_scenario(scenario.to_dict(), summary, derived, server)]
    valid, reasons = is_valid(load)
    reasons = list(reasons)
    for name, proc in (server.get("process") or {}).get("processes", {}).items():
        if proc.get("exited"):
            reasons.append(f"process {name} exited during the run")
    if extras.get("jobs_unfinished"):
        reasons.append(f"{extras['jobs_unfinished']} jobs did not finish within the drain time")
    valid = not reasons
    failed = [c for c in checks if not c["passed"]]
    verdict = "invalid" if not valid else ("fail" if failed else "pass")
    return {
        "name": scenario.name,
        "file": str(scenario.path),
        "kind": scenario.kind,
        "description": scenario.description,
        "target": session.describe(),
        "scenario": scenario.to_dict(),
        "started_at": started_at,
        "finished_at": utc_now(),
        "summary": summary,
        "load": load.to_dict(),
        "extras": extras,
        "server": server,
        "derived": derived,
        "checks": checks,
        "validity": {"valid": valid, "reasons": reasons},
        "verdict": verdict,
    }


def summarize(kind: str, load: LoadResult, extras: dict[str, Any]) -> dict[str, Any]:
    """The flat figures thresholds and tables read."""
    lat = load.latency.summary()
    errors = load.error_count + load.dropped
    base = max(1, load.scheduled or load.sent)
    summary: dict[str, Any] = {
        "requests": load.sent,
        "ok": load.ok,
        "errors": load.error_count,
        "dropped": load.dropped,
        "late": load.late,
        "rps": load.achieved_rps,
        "target_rps": load.target_rps,
        "generator_cpu_pct": load.cpu_pct_max,
        **{f"{k}_ms": lat[k] for k in ("mean", "p50", "p90", "p95", "p99", "p99_9", "max")},
    }
    if kind == "job" and extras.get("jobs"):
        qw = LatencyHistogram.from_dict(extras["queue_wait"]).summary()
        rt = LatencyHistogram.from_dict(extras["run_time"]).summary()
        summary.update(
            queue_wait_p50_ms=qw["p50"], queue_wait_p95_ms=qw["p95"],
            run_p50_ms=rt["p50"], run_p95_ms=rt["p95"], jobs_per_s=extras["jobs_per_s"],
        )  # fmt: skip
        errors += extras.get("jobs_failed", 0) + extras.get("jobs_unfinished", 0)
    if kind == "flow" and extras.get("messages"):
        e2e = LatencyHistogram.from_dict(extras["e2e"]).summary()
        first = LatencyHistogram.from_dict(extras["first_reply"]).summary()
        summary.update(
            e2e_p50_ms=e2e["p50"], e2e_p95_ms=e2e["p95"], e2e_p99_ms=e2e["p99"],
            first_reply_p50_ms=first["p50"],
        )  # fmt: skip
        errors += extras.get("unanswered", 0)
    summary["error_rate"] = errors / base
    return summary


class _ProgressPump:
    """Carries per-second progress from generator processes to the display thread."""

    def __init__(self, events: RunEvents) -> None:
        self.queue = mp.get_context("fork").Queue()
        self._events = events
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        import queue as q

        while not self._stop.is_set():
            try:
                item = self.queue.get(timeout=0.2)
            except q.Empty:
                continue
            except (EOFError, OSError):
                return
            self._events.progress(item)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.queue.close()
        self.queue.join_thread()
