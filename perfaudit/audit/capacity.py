"""Capacity search: the highest open-model arrival rate at which a scenario still meets
its target (its thresholds), on one started target.

Two parts, kept apart so the strategy can be tested without processes:

* :func:`search` — the strategy. Steps the rate geometrically (``start_rate``,
  ``× factor`` ..., capped at ``max_rate``) until the first step that does not pass, then
  bisects ``refine`` times between the last passing and the first failing rate. It only
  sees a ``step(rate) -> CapacityStep`` callable.
* :func:`search_capacity` — the driver. Starts the scenario's target once (with the run's
  variant / switch overrides), runs the scenario once per step on that session with the
  rate, warm-up and duration replaced, lets background work drain between steps, and
  always stops the target again.

How a step is judged (:func:`classify_entry`): ``pass`` needs a valid entry (the load
generator's self-check and process liveness) whose threshold checks all pass. A failed
check is ``fail``: the target's limit. An entry that is not valid is ``invalid``: it
never counts as a pass nor as the target's limit: it is measured once more
(``invalid_retries``; not when the target died), and a rate that stays invalid stops
the search with ``limited_by = "invalid"`` and the reasons. Two invalidity reasons are
the target's own doing and are judged ``fail`` instead, each with the reason kept:

* measured jobs that did not finish within the drain time (the worker cannot keep up);
* late / dropped arrivals or a short achieved rate *with the open model's connection cap
  reached* and the generator below its CPU limit, when a threshold check failed as well:
  every connection was held by a request the target had not answered, so the schedule
  slipped because of the target (backpressure), not the generator; latencies are taken
  from the intended send times, so they still include that wait.

Between steps the reference target's background work (queued and running jobs, pending
cursor-runner callbacks: a webhook's response is only the start of its work) is left to
finish (:func:`drain`), so one step's backlog does not slow the next. A backlog that
outlasts ``drain_timeout_s`` is discarded (queued jobs only; recorded in the step),
because the scenario's target is what the step measured: for the job and flow kinds
``run_one`` has already waited for, and judged, their own jobs and replies. A target that
is still busy after that makes the next step invalid.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from perfaudit.analysis.thresholds import CHECKS
from perfaudit.run.runner import RunEvents, RunOptions, prepare, run_one
from perfaudit.run.targets import TargetSession, start_target
from perfaudit.scenario import Scenario

PASS, FAIL, INVALID = "pass", "fail", "invalid"
DRAIN_TIMEOUT_S = 5.0  # how long a backlog may take before it is discarded; see drain()
SETTLE_TIMEOUT_S = 30.0  # then, for running jobs and pending callbacks to end
DRAIN_QUIET_S = 0.5  # background work must stay at zero this long
_SCHEDULE_MARKERS = ("were sent late", "were dropped", "achieved rate")
_JOBS_MARKER = "jobs did not finish within the drain time"


@dataclass
class CapacityStep:
    rate: float
    verdict: str  # "pass" | "fail" | "invalid"
    p95_ms: float | None = None
    p99_ms: float | None = None
    error_rate: float | None = None
    achieved_rps: float | None = None
    reasons: list[str] = field(default_factory=list)  # failed checks, invalidity reasons
    phase: str = "step"  # "step" (geometric) | "refine" (bisection)
    attempt: int = 1  # > 1: an invalid measurement of this rate repeated
    fatal: bool = False  # invalid because the target died: not worth repeating
    drain: dict[str, Any] | None = None  # the wait for background work after the step
    wall_s: float | None = None

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CapacityStep:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class CapacityResult:
    scenario: str
    label: str  # the target's label, e.g. reference/phase3
    steps: list[CapacityStep]
    capacity: float | None  # highest passing rate; None: the first step did not pass
    limited_by: str  # "target" | "invalid" | "max_rate"
    first_failing: float | None  # lowest rate judged "fail" (None: none failed)
    wall_s: float
    reason: str = ""  # why the search stopped, in words
    settings: dict[str, Any] = field(default_factory=dict)  # start/max rate, factor, ...

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["steps"] = [s.to_dict() for s in self.steps]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CapacityResult:
        return cls(
            scenario=d["scenario"],
            label=d["label"],
            steps=[CapacityStep.from_dict(s) for s in d.get("steps", [])],
            capacity=d.get("capacity"),
            limited_by=d["limited_by"],
            first_failing=d.get("first_failing"),
            wall_s=float(d.get("wall_s", 0.0)),
            reason=d.get("reason", ""),
            settings=dict(d.get("settings") or {}),
        )

    def describe(self) -> str:
        cap = "none" if self.capacity is None else f"{self.capacity:g} req/s"
        return f"{self.scenario} ({self.label}): capacity {cap}, limited by {self.limited_by}"


# -- the strategy ----------------------------------------------------------------------
@dataclass
class SearchOutcome:
    steps: list[CapacityStep]
    capacity: float | None
    limited_by: str
    first_failing: float | None
    reason: str


def step_rates(start_rate: float, max_rate: float, factor: float) -> list[float]:
    """``start_rate, start_rate·factor, ...`` below ``max_rate``, then ``max_rate`` (a rate
    within 2 % of ``max_rate`` is replaced by it rather than followed by it)."""
    if start_rate <= 0 or max_rate < start_rate:
        raise ValueError(f"need 0 < start_rate <= max_rate (got {start_rate:g}, {max_rate:g})")
    if factor <= 1:
        raise ValueError(f"factor must be > 1 (got {factor:g})")
    rates: list[float] = []
    r = float(start_rate)
    while r < max_rate * 0.98:
        rates.append(_round_rate(r))
        r *= factor
    rates.append(float(max_rate))
    return rates


def _round_rate(r: float) -> float:
    """Three significant digits (80.0, 128.0, 204.8 -> 205.0): readable, stable rates."""
    if r <= 0:
        return r
    digits = 3 - int(math.floor(math.log10(r))) - 1
    return float(round(r, max(0, digits)))


def search(
    step: Callable[[float], CapacityStep],
    *,
    start_rate: float,
    max_rate: float,
    factor: float = 1.6,
    refine: int = 2,
    invalid_retries: int = 1,
) -> SearchOutcome:
    """Geometric steps up to the first non-passing one, then ``refine`` bisections
    between the last pass and the first fail. ``step`` runs one rate; the phase and
    attempt of the returned step are set here.

    An invalid step is measured again at the same rate up to ``invalid_retries`` times
    (a generator that was starved of CPU once, on a shared machine), unless it is
    ``fatal`` (the target died): only a rate that stays invalid stops the search. Every
    attempt is kept in ``steps``."""
    if refine < 0 or invalid_retries < 0:
        raise ValueError(
            f"refine and invalid_retries must be >= 0 (got {refine}, {invalid_retries})"
        )
    steps: list[CapacityStep] = []

    def run(rate: float, phase: str) -> CapacityStep:
        for attempt in range(1, invalid_retries + 2):
            s = step(rate)
            s.phase, s.attempt = phase, attempt
            steps.append(s)
            if s.verdict != INVALID or s.fatal:
                break
        return s

    last_pass: float | None = None
    first_fail: float | None = None
    for rate in step_rates(start_rate, max_rate, factor):
        s = run(rate, "step")
        if s.verdict == PASS:
            last_pass = rate
            continue
        if s.verdict == INVALID:
            return SearchOutcome(steps, last_pass, "invalid", None, _invalid_reason(s))
        first_fail = rate
        break
    else:
        return SearchOutcome(
            steps, last_pass, "max_rate", None, f"every step passed up to max_rate {max_rate:g}"
        )
    assert first_fail is not None
    reason = f"{first_fail:g} req/s failed: " + ("; ".join(steps[-1].reasons) or "fail")
    if last_pass is None:
        return SearchOutcome(steps, None, "target", first_fail, reason)
    lo, hi = last_pass, first_fail
    for _ in range(refine):
        mid = _round_rate((lo + hi) / 2)
        if not lo < mid < hi:
            break  # the rates are as close as rounding allows
        s = run(mid, "refine")
        if s.verdict == PASS:
            lo = mid
        elif s.verdict == FAIL:
            hi = mid
            reason = f"{mid:g} req/s failed: " + ("; ".join(s.reasons) or "fail")
        else:
            return SearchOutcome(steps, lo, "invalid", hi, _invalid_reason(s))
    return SearchOutcome(steps, lo, "target", hi, reason)


def _invalid_reason(s: CapacityStep) -> str:
    return f"{s.rate:g} req/s invalid: " + ("; ".join(s.reasons) or "no reason recorded")


# -- judging one entry -----------------------------------------------------------------
def classify_entry(entry: dict[str, Any]) -> tuple[str, list[str]]:
    """(verdict, reasons) of one run's entry as a capacity step (see the module doc)."""
    failed = [_check_text(c) for c in entry.get("checks", []) if not c.get("passed")]
    validity = entry.get("validity") or {"valid": False, "reasons": ["no validity recorded"]}
    reasons = list(validity.get("reasons") or [])
    if validity.get("valid") and entry.get("verdict") == PASS and not failed:
        return PASS, []
    if validity.get("valid"):
        return FAIL, failed or [f"verdict {entry.get('verdict')!r}"]
    target_caused = [r for r in reasons if _JOBS_MARKER in r]
    rest = [r for r in reasons if _JOBS_MARKER not in r]
    if rest and failed and all(any(m in r for m in _SCHEDULE_MARKERS) for r in rest):
        cap = _connection_cap_reached(entry.get("load") or {})
        if cap is not None:
            target_caused += [f"{r} (all {cap} connections busy: backpressure)" for r in rest]
            rest = []
    if rest:
        return INVALID, rest + target_caused
    return FAIL, failed + target_caused


def _connection_cap_reached(load: dict[str, Any]) -> int | None:
    """The open model's connection cap when the HTTP engine opened that many sockets
    and no generator process was CPU-bound; else None (no evidence of backpressure)."""
    if load.get("model") != "open":
        return None
    cap = int(load.get("concurrency") or 0)
    cpu = (load.get("cpu") or {}).get("processes") or []
    opened = sum(int(p.get("connections") or 0) for p in cpu)
    if cap <= 0 or opened < cap:
        return None
    if any(float(p.get("cpu_pct") or 0.0) > 90.0 for p in cpu):
        return None
    return cap


def _check_text(check: dict[str, Any]) -> str:
    """``p95_ms 656.4 ms > 200`` — a failed check, in words."""
    name = str(check.get("name") or check.get("metric") or "check")
    actual, limit = check.get("actual"), check.get("limit")
    if actual is None or limit is None:
        return f"{name}: not measured" if actual is None else name
    op = "<" if CHECKS.get(name, ("", "max"))[1] == "min" else ">"
    return f"{name} {actual:.4g} {op} {limit:g}"


def step_from_entry(rate: float, entry: dict[str, Any]) -> CapacityStep:
    verdict, reasons = classify_entry(entry)
    s = entry.get("summary") or {}
    return CapacityStep(
        rate=rate,
        verdict=verdict,
        p95_ms=s.get("p95_ms"),
        p99_ms=s.get("p99_ms"),
        error_rate=s.get("error_rate"),
        achieved_rps=s.get("rps"),
        reasons=reasons,
    )


# -- the driver ------------------------------------------------------------------------
def at_rate(scenario: Scenario, rate: float, warmup_s: float, duration_s: float) -> Scenario:
    """``scenario`` at a constant open-model ``rate`` (stages dropped), no profilers, the
    latency measure only."""
    load = replace(scenario.load, rate=float(rate), stages=())
    return replace(
        scenario, load=load, warmup_s=warmup_s, duration_s=duration_s, profile=(),
        measure=("latency",),
    )  # fmt: skip


def search_capacity(
    scenario: Scenario,
    options: RunOptions,
    *,
    start_rate: float,
    max_rate: float,
    factor: float = 1.6,
    refine: int = 2,
    warmup_s: float = 1.0,
    duration_s: float = 4.0,
    run_dir: Path,
    events: RunEvents,
    entries: list[dict[str, Any]] | None = None,
    drain_timeout_s: float = DRAIN_TIMEOUT_S,
    invalid_retries: int = 1,
) -> CapacityResult:
    """The capacity of ``scenario`` on one target started for it (see the module doc).

    Each step's entry, tagged ``entry["capacity_step"] = rate``, is appended to
    ``entries`` when given. Raises ValueError for a closed-model scenario."""
    if scenario.load.model != "open":
        raise ValueError(
            f"{scenario.name}: capacity search needs an open load model (arrival rate); "
            f"this scenario uses the {scenario.load.model} model ({scenario.load.describe()})"
        )
    step_rates(start_rate, max_rate, factor)  # argument errors before anything starts
    t0 = time.monotonic()
    prepared = prepare(scenario, replace(options, duration_s=None, warmup_s=None))
    label = prepared.target.label()
    events.note(f"capacity {prepared.name}: starting {label} ...")
    session = start_target(prepared.target, run_dir, redis_url=options.redis_url)
    try:
        driver = _Driver(prepared, session, warmup_s, duration_s, events, entries, drain_timeout_s)
        outcome = search(driver.step, start_rate=start_rate, max_rate=max_rate, factor=factor,
                         refine=refine, invalid_retries=invalid_retries)  # fmt: skip
    finally:
        session.close()
    return CapacityResult(
        scenario=prepared.name,
        label=label,
        steps=outcome.steps,
        capacity=outcome.capacity,
        limited_by=outcome.limited_by,
        first_failing=outcome.first_failing,
        wall_s=time.monotonic() - t0,
        reason=outcome.reason,
        settings={
            "start_rate": start_rate, "max_rate": max_rate, "factor": factor,
            "refine": refine, "warmup_s": warmup_s, "duration_s": duration_s,
            "invalid_retries": invalid_retries,
            "kind": prepared.kind, "thresholds": prepared.thresholds.to_dict(),
        },
    )  # fmt: skip


class _Driver:
    """Runs the steps of one search on one started target."""

    def __init__(self, scenario: Scenario, session: TargetSession, warmup_s: float,
                 duration_s: float, events: RunEvents, entries: list[dict[str, Any]] | None,
                 drain_timeout_s: float) -> None:  # fmt: skip
        self.scenario, self.session, self.events, self.entries = scenario, session, events, entries
        self.warmup_s, self.duration_s, self.drain_timeout_s = warmup_s, duration_s, drain_timeout_s
        self.index = 0
        self.unsettled: str | None = None  # what the previous step left behind

    def step(self, rate: float) -> CapacityStep:
        self.index += 1
        t0 = time.monotonic()
        gone = _gone(self.session)
        if gone:
            return CapacityStep(rate, INVALID, reasons=gone, wall_s=0.0, fatal=True)
        if self.unsettled is not None:
            why = f"the target was still busy with an earlier step's work ({self.unsettled})"
            return CapacityStep(rate, INVALID, reasons=[why], wall_s=0.0, fatal=True)
        sc = at_rate(self.scenario, rate, self.warmup_s, self.duration_s)
        self.events.note(f"capacity {sc.name}: {rate:g} req/s")
        self.events.scenario_started(sc, self.index, self.index)
        try:
            entry = run_one(sc, self.session, self.events)
        except Exception as exc:  # a target that died mid-run can break the runner itself
            return CapacityStep(
                rate, INVALID, reasons=[f"the step crashed: {type(exc).__name__}: {exc}"],
                wall_s=time.monotonic() - t0, fatal=True,
            )  # fmt: skip
        entry["capacity_step"] = rate
        if self.entries is not None:
            self.entries.append(entry)
        step = step_from_entry(rate, entry)
        gone = [g for g in _gone(self.session) if g not in step.reasons]
        if gone:  # a crash the run's own collectors missed (it came at the very end)
            step.verdict = INVALID
            step.reasons += gone
            step.fatal = True
        else:
            self.events.note(f"capacity {sc.name}: {rate:g} req/s done, draining ...")
            step.drain = entry["capacity_drain"] = drain(self.session, self.drain_timeout_s)
            if not step.drain["drained"]:
                self.unsettled = step.drain["left"]
        self.events.scenario_finished(entry)
        step.wall_s = time.monotonic() - t0
        return step


def _gone(session: TargetSession) -> list[str]:
    out = []
    for name, pid in session.pids.items():
        try:
            alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            alive = False
        if not alive:
            out.append(f"process {name} (pid {pid}) is gone")
    return out


def drain(
    session: TargetSession, timeout_s: float, settle_timeout_s: float = SETTLE_TIMEOUT_S
) -> dict[str, Any]:
    """Let the reference target's background work end before the next step: nothing
    queued or running in arq, no cursor-runner callback pending (perfaudit.measure.quiet).

    Waits ``timeout_s``; jobs still *queued* then are discarded (taken off arq's queue
    before the worker starts them: a synthetic backlog the next step must not inherit),
    and the running ones and the pending callbacks (cursor-runner calls back seconds
    later) get ``settle_timeout_s``. External
    targets have nothing to wait for. Returns {drained, waited_s, discarded_jobs, left}."""
    t0 = time.monotonic()
    out: dict[str, Any] = {"drained": True, "waited_s": 0.0, "discarded_jobs": 0, "left": ""}
    if session.stack is None:
        return out
    from perfaudit.measure.quiet import QuietTimeout, ReferenceQuiet

    quiet = None
    try:
        quiet = ReferenceQuiet(session.stack)
        try:
            quiet.wait(timeout_s, settle_s=DRAIN_QUIET_S)
        except QuietTimeout:
            out["discarded_jobs"] = _discard_queued(quiet.redis)
            quiet.wait(settle_timeout_s, settle_s=DRAIN_QUIET_S)
    except QuietTimeout as exc:
        out.update(drained=False, left=str(exc))
    except Exception as exc:  # the stack died: the next step's liveness check says so
        out.update(drained=False, left=f"{type(exc).__name__}: {exc}")
    finally:
        if quiet is not None:
            quiet.close()
    out["waited_s"] = time.monotonic() - t0
    return out


def _discard_queued(client: Any) -> int:
    """Take the queued (not yet started) jobs off arq's queue; returns how many. A job
    the worker has started is in progress and stays: arq's worker only starts a job
    still scored in the queue."""
    from arq.constants import default_queue_name, job_key_prefix

    discarded = 0
    while True:
        ids = client.zrange(default_queue_name, 0, 999)
        if not ids:
            return discarded
        for job_id in ids:
            if client.zrem(default_queue_name, job_id):
                client.delete(job_key_prefix + job_id.decode())
                discarded += 1


# -- comparing two variants ------------------------------------------------------------
def _bounds(r: CapacityResult) -> tuple[float, float]:
    """Where the true capacity lies, given how the search ended: at least the highest
    passing rate, below the lowest failing one (unbounded when nothing failed)."""
    lo = r.capacity or 0.0
    hi = r.first_failing if r.first_failing is not None else math.inf
    return lo, hi


def capacity_ratio(phase3: CapacityResult, optimized: CapacityResult) -> dict[str, Any]:
    """optimized / phase3 capacity, and a text that says when it is only a bound.

    ``ratio``: optimized.capacity / phase3.capacity (None when either is missing);
    ``low``/``high``: the range the two searches allow, the steps' resolution included
    (None: unbounded); ``bound``: "exact" (both limited by their target), "lower" (the
    ratio is at least this: optimized stopped at max_rate or an invalid step), "upper"
    (phase3 did) or "unknown"."""
    p_lo, p_hi = _bounds(phase3)
    o_lo, o_hi = _bounds(optimized)
    low = o_lo / p_hi if p_hi > 0 else None  # x / inf == 0.0: no lower bound beyond 0
    high = o_hi / p_lo if p_lo > 0 and o_hi != math.inf else None
    p_cap, o_cap = phase3.capacity, optimized.capacity
    ratio = o_cap / p_cap if o_cap is not None and p_cap else None
    o_open = optimized.limited_by != "target"  # the true capacity may be higher
    p_open = phase3.limited_by != "target"
    if o_open and p_open:
        bound = "unknown"
        text = (f"unknown (optimized limited by {optimized.limited_by}, "
                f"phase3 limited by {phase3.limited_by})")  # fmt: skip
    elif ratio is not None and o_open:
        bound, text = "lower", f"≥ {ratio:.2f}× (optimized limited by {optimized.limited_by})"
    elif ratio is not None and p_open:
        bound, text = "upper", f"≤ {ratio:.2f}× (phase3 limited by {phase3.limited_by})"
    elif ratio is not None:
        bound, text = "exact", f"{ratio:.2f}×"
        if low is not None and high is not None:
            text += f" (within the step resolution {low:.2f}–{high:.2f}×)"
    elif o_cap is not None and p_cap is None and phase3.first_failing:
        # phase3 failed its very first step: its capacity is below that rate
        bound = "lower"
        text = f"> {o_cap / phase3.first_failing:.2f}× (phase3 failed its first step)"
    else:
        bound, text = "unknown", "unknown (" + _none_of(phase3, optimized) + ")"
    return {
        "scenario": optimized.scenario,
        "phase3": p_cap,
        "optimized": o_cap,
        "ratio": ratio,
        "low": low,
        "high": high,
        "bound": bound,
        "text": text,
    }


def _none_of(phase3: CapacityResult, optimized: CapacityResult) -> str:
    return ", ".join(
        f"no {n} capacity: limited by {r.limited_by}"
        for n, r in (("phase3", phase3), ("optimized", optimized))
        if r.capacity is None
    )
