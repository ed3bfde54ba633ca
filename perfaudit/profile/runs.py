"""Profiled runs of a scenario, after its unprofiled run, and what they add to its entry.

Each chosen profiler gets a run of its own. Profilers that attach to the target as it is
(py-spy) run right after the unprofiled run, on the same target, so the pair is close in time.
Profilers that need the target started differently (pyinstrument, memray) get a fresh target
of their own once the shared one is stopped — an external service keeps its port, and a stack
left running would compete for the CPU. Their figures go under ``entry["profiled_runs"]``
marked ``"profiled": true`` — never into the entry's summary, checks or verdict, which come
from the unprofiled run only — and their cost under ``entry["overhead"]``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfaudit.profile import overhead, prepare
from perfaudit.profile.base import Capture, CaptureContext, Problem, result, skipped
from perfaudit.profile.spec import ProfileSpec

if TYPE_CHECKING:
    from perfaudit.profile.session import ScenarioLike, StartTarget, TargetSessionLike

# run_one(scenario, session, events, hooks) -> entry; passed in (as is start_target, see
# perfaudit.profile.session) so this package does not import the run layer (which imports it).
RunOne = Callable[..., dict[str, Any]]
SETTLE_TIMEOUT_S = 60.0
PROFILED_KEYS = ("started_at", "finished_at", "target", "summary", "load", "extras", "server",
                 "derived", "validity")  # fmt: skip


@dataclass
class WindowHook:
    """A capture bound to the target it profiles, as the runner's window callbacks see it."""

    capture: Capture
    session: TargetSessionLike

    @property
    def lead_s(self) -> float:
        return self.capture.lead_s

    def start(self) -> None:
        self.capture.start(self.session)

    def stop(self) -> None:
        self.capture.stop()


class _NotesOnly:
    """The run's events without per-second progress (the live rows belong to unprofiled runs)."""

    def __init__(self, events: Any) -> None:
        self._events = events

    def note(self, message: str) -> None:
        self._events.note(message)

    def scenario_started(self, *args: Any) -> None: ...
    def progress(self, item: Any) -> None: ...
    def scenario_finished(self, entry: dict[str, Any]) -> None: ...


def profile_scenario(
    scenario: ScenarioLike,
    entry: dict[str, Any],
    specs: Sequence[ProfileSpec],
    session: TargetSessionLike | None,
    run_dir: Path,
    *,
    run_one: RunOne,
    start_target: StartTarget,
    events: Any,
    problems: Mapping[ProfileSpec, list[Problem]],
    redis_url: str | None = None,
) -> None:
    """Run ``scenario`` once per profiler and add ``profiles``, ``overhead`` and
    ``profiled_runs`` to ``entry`` (in place). With ``session``: the profilers that attach to
    it; without: those that need a target of their own, started with ``start_target``."""
    profiles: dict[str, Any] = entry.setdefault("profiles", {})
    costs: dict[str, Any] = entry.setdefault("overhead", {})
    runs: dict[str, Any] = entry.setdefault("profiled_runs", {})
    out_dir = run_dir / "profiles" / scenario.name
    quiet = _NotesOnly(events)
    for i, spec in enumerate(specs, 1):
        found = problems.get(spec, [])
        if any(p.blocking for p in found):
            if session is not None:
                profiles[spec.name] = skipped(spec, [p for p in found if p.blocking])
            continue
        ctx = CaptureContext(
            scenario.name, scenario.target, out_dir, run_dir, scenario.duration_s,
            scenario.warmup_s,
        )  # fmt: skip
        capture = prepare(spec, ctx)
        own_target = capture.launch is not None
        if own_target == (session is not None):
            continue  # the other phase's
        if capture.errors:  # cannot work with this target: say why without a wasted run
            profiles[spec.name] = result(spec, "failed", ctx, errors=list(capture.errors))
            continue
        events.note(f"profiling {scenario.name} with {spec.label()} ({i}/{len(specs)}) ...")
        profiled, failure = _profiled_run(
            scenario, capture, session, run_dir / f"target-{scenario.name}-{spec.name}",
            run_one, start_target, quiet, redis_url,
        )  # fmt: skip
        record = capture.collect() if failure is None else result(spec, "failed", ctx)
        if failure:
            record.setdefault("errors", []).append(failure)
        record["notes"] = [*record.get("notes", []), *(str(p) for p in found)]
        profiles[spec.name] = record
        if profiled is not None:
            runs[spec.name] = {
                "profiled": True,
                "profiler": spec.label(),
                "own_target": own_target,
                **{k: profiled[k] for k in PROFILED_KEYS if k in profiled},
            }
            costs[spec.name] = {
                **overhead.ratios(entry["summary"], profiled["summary"]),
                "profiled_run_valid": profiled["validity"]["valid"],
            }


def _settle(session: TargetSessionLike) -> None:
    """Wait until the worker has finished the jobs the unprofiled run left queued, so the
    profiled run on the same target starts from the same state (a saturating run can leave
    thousands)."""
    if not session.redis_url:
        return
    import redis
    from arq.constants import default_queue_name, in_progress_key_prefix

    client = redis.Redis.from_url(session.redis_url)
    try:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while time.monotonic() < deadline:
            busy = client.zcard(default_queue_name) or client.keys(f"{in_progress_key_prefix}*")
            if not busy:
                return
            time.sleep(0.2)
    except redis.RedisError:
        return  # nothing to wait for that we can see
    finally:
        client.close()


def _profiled_run(
    scenario: ScenarioLike,
    capture: Capture,
    session: TargetSessionLike | None,
    target_dir: Path,
    run_one: RunOne,
    start_target: StartTarget,
    events: Any,
    redis_url: str | None,
) -> tuple[dict[str, Any] | None, str | None]:
    """(the run's entry, None) or (None, why it failed); the capture is stopped either way."""
    own: TargetSessionLike | None = None
    try:
        if session is not None:
            _settle(session)
        else:
            own = session = start_target(
                scenario.target, target_dir, redis_url=redis_url, launch=capture.launch
            )
        if capture.min_warmup_s > scenario.warmup_s:  # room for a slow attach (memray)
            scenario = replace(scenario, warmup_s=capture.min_warmup_s)  # a dataclass
        return run_one(scenario, session, events, hooks=[WindowHook(capture, session)]), None
    except Exception as exc:  # noqa: BLE001 - a failed profiled run must not end the run
        capture.abort()
        return None, f"the profiled run failed: {type(exc).__name__}: {exc}"
    except BaseException:
        capture.abort()
        raise
    finally:
        if own is not None:
            own.close()
