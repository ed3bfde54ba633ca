"""Capacity search (perfaudit.audit.capacity).

The strategy (stepping, bisecting, stopping) is checked with an injected step function;
the driver end to end on tests/apps/queue_app.py: one thread burning CPU per request, so
its latency really grows once the arrival rate nears what it can serve. Assertions are on
the search's structure, never on timings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from perfaudit.audit.capacity import (
    CapacityResult,
    CapacityStep,
    capacity_ratio,
    classify_entry,
    search,
    search_capacity,
    step_rates,
)
from perfaudit.run.display import QuietEvents
from perfaudit.run.runner import RunOptions
from perfaudit.scenario import Scenario, load_scenario
from perfaudit.stack.net import free_port

QUEUE_APP = Path(__file__).parent / "apps" / "queue_app.py"


# -- the strategy, with an injected step -----------------------------------------------
def fake_step(
    limit: float, invalid: frozenset[float] = frozenset(), seen: list[float] | None = None
) -> Any:
    """Passes below ``limit``, fails at or above it; rates in ``invalid`` are invalid."""

    def step(rate: float) -> CapacityStep:
        if seen is not None:
            seen.append(rate)
        if rate in invalid:
            return CapacityStep(rate, "invalid", reasons=["generator self-check failed"])
        if rate < limit:
            return CapacityStep(rate, "pass", p95_ms=10.0)
        return CapacityStep(rate, "fail", p95_ms=900.0, reasons=["p95_ms 900 > 200"])

    return step


def test_step_rates_are_geometric_and_end_at_max_rate() -> None:
    assert step_rates(50, 800, 1.6) == [50.0, 80.0, 128.0, 205.0, 328.0, 524.0, 800.0]
    assert step_rates(100, 160, 1.6) == [160.0] or step_rates(100, 160, 1.6) == [100.0, 160.0]
    assert step_rates(10, 10, 2) == [10.0]
    with pytest.raises(ValueError):
        step_rates(0, 10, 2)
    with pytest.raises(ValueError):
        step_rates(10, 20, 1.0)


def test_search_stops_at_first_failing_step_and_bisects() -> None:
    seen: list[float] = []
    out = search(fake_step(300, seen=seen), start_rate=50, max_rate=800, factor=1.6, refine=2)
    # geometric up to the first failure (328), nothing above it
    assert seen[:5] == [50.0, 80.0, 128.0, 205.0, 328.0]
    assert max(seen) == 328.0
    # two bisections between 205 (pass) and 328 (fail): 266 passes, then 297 passes
    assert seen[5:] == [266.0, 297.0]
    assert [s.phase for s in out.steps] == ["step"] * 5 + ["refine"] * 2
    assert out.capacity == 297.0
    assert out.first_failing == 328.0
    assert out.limited_by == "target"
    assert "328 req/s failed" in out.reason


def test_search_refine_narrows_towards_fail() -> None:
    out = search(fake_step(210), start_rate=50, max_rate=800, factor=1.6, refine=3)
    refine = [s for s in out.steps if s.phase == "refine"]
    assert [s.rate for s in refine] == [266.0, 236.0, 220.0]
    assert all(s.verdict == "fail" for s in refine)
    assert out.capacity == 205.0
    assert out.first_failing == 220.0  # the lowest failing rate
    assert out.limited_by == "target"


def test_search_all_pass_is_limited_by_max_rate() -> None:
    out = search(fake_step(1e9), start_rate=50, max_rate=800)
    assert out.capacity == 800.0
    assert out.limited_by == "max_rate"
    assert out.first_failing is None
    assert [s.phase for s in out.steps] == ["step"] * 7


def test_search_first_step_failing_has_no_capacity() -> None:
    out = search(fake_step(10), start_rate=50, max_rate=800)
    assert len(out.steps) == 1
    assert out.capacity is None
    assert out.limited_by == "target"
    assert out.first_failing == 50.0


def test_invalid_step_stops_and_never_counts() -> None:
    # 205 is invalid although it would have passed: neither a pass nor the limit; it is
    # measured once more (invalid_retries=1) before the search gives up
    out = search(fake_step(300, invalid=frozenset({205.0})), start_rate=50, max_rate=800)
    assert [s.rate for s in out.steps] == [50.0, 80.0, 128.0, 205.0, 205.0]
    assert [s.attempt for s in out.steps][-2:] == [1, 2]
    assert out.capacity == 128.0
    assert out.limited_by == "invalid"
    assert out.first_failing is None
    assert "generator self-check failed" in out.reason
    first = search(
        fake_step(300, invalid=frozenset({50.0})), start_rate=50, max_rate=800, invalid_retries=0
    )
    assert first.capacity is None and first.limited_by == "invalid" and len(first.steps) == 1


def test_invalid_step_is_measured_again_once() -> None:
    attempts: dict[float, int] = {}
    inner = fake_step(300)

    def flaky(rate: float) -> CapacityStep:  # the first measurement of 128 is invalid
        attempts[rate] = attempts.get(rate, 0) + 1
        if rate == 128.0 and attempts[rate] == 1:
            return CapacityStep(rate, "invalid", reasons=["5 of 150 requests were sent late"])
        return inner(rate)

    out = search(flaky, start_rate=50, max_rate=800, refine=0)
    assert [(s.rate, s.verdict) for s in out.steps] == [
        (50.0, "pass"), (80.0, "pass"), (128.0, "invalid"), (128.0, "pass"),
        (205.0, "pass"), (328.0, "fail"),
    ]  # fmt: skip
    assert out.capacity == 205.0 and out.limited_by == "target"
    # a target that died is not measured again
    dead = CapacityStep(80.0, "invalid", reasons=["process service is gone"], fatal=True)
    out = search(lambda r: dead if r == 80.0 else inner(r), start_rate=50, max_rate=800)
    assert [s.rate for s in out.steps] == [50.0, 80.0]
    assert out.limited_by == "invalid" and out.capacity == 50.0


def test_invalid_step_during_bisection_stops() -> None:
    out = search(
        fake_step(300, invalid=frozenset({266.0})), start_rate=50, max_rate=800, refine=3,
        invalid_retries=0,
    )  # fmt: skip
    assert [s.rate for s in out.steps][-1] == 266.0
    assert out.capacity == 205.0
    assert out.first_failing == 328.0
    assert out.limited_by == "invalid"


# -- judging an entry ------------------------------------------------------------------
def entry(valid: bool = True, reasons: tuple[str, ...] = (), failed: bool = False,
          opened: int = 10, cpu: float = 30.0) -> dict[str, Any]:  # fmt: skip
    checks = [{"name": "p95_ms", "metric": "p95_ms", "limit": 200.0, "actual": 900.0 if failed
               else 20.0, "passed": not failed}]  # fmt: skip
    verdict = "invalid" if not valid else ("fail" if failed else "pass")
    return {
        "checks": checks,
        "validity": {"valid": valid, "reasons": list(reasons)},
        "verdict": verdict,
        "summary": {"p95_ms": checks[0]["actual"], "rps": 100.0, "error_rate": 0.0},
        "load": {
            "model": "open",
            "concurrency": 256,
            "cpu": {"processes": [{"connections": opened, "cpu_pct": cpu}]},
        },  # fmt: skip
    }


LATE = "400 of 1000 requests (40.0%) were sent late (> 1%)"


def test_classify_entry() -> None:
    assert classify_entry(entry()) == ("pass", [])
    assert classify_entry(entry(failed=True)) == ("fail", ["p95_ms 900 > 200"])
    # the generator's self-check failed: invalid, whatever the checks say
    cpu = "generator process 0 used 97% of a core (> 90%)"
    assert classify_entry(entry(False, (cpu,), failed=True))[0] == "invalid"
    assert classify_entry(entry(False, ("process service exited during the run",)))[0] == (
        "invalid"
    )
    # late sends without the connection cap reached: no evidence it was the target
    assert classify_entry(entry(False, (LATE,), failed=True, opened=40))[0] == "invalid"
    # ... with every connection held by the target and a failed check: its limit
    verdict, reasons = classify_entry(entry(False, (LATE,), failed=True, opened=256))
    assert verdict == "fail"
    assert any("backpressure" in r for r in reasons)
    # ... but not when the generator was CPU-bound, nor when the checks passed
    assert classify_entry(entry(False, (LATE,), failed=True, opened=256, cpu=95))[0] == ("invalid")
    assert classify_entry(entry(False, (LATE,), opened=256))[0] == "invalid"
    jobs = "12 jobs did not finish within the drain time"
    assert classify_entry(entry(False, (jobs,), failed=True)) == (
        "fail", ["p95_ms 900 > 200", jobs]
    )  # fmt: skip


# -- comparing -------------------------------------------------------------------------
def result(capacity: float | None, limited_by: str, first_failing: float | None,
           label: str = "x") -> CapacityResult:  # fmt: skip
    return CapacityResult("webhook-text", label, [], capacity, limited_by, first_failing, 1.0)


def test_capacity_ratio_texts() -> None:
    exact = capacity_ratio(result(100, "target", 128), result(300, "target", 328))
    assert exact["ratio"] == 3.0 and exact["bound"] == "exact"
    assert exact["text"].startswith("3.00×")
    assert exact["low"] == pytest.approx(300 / 128) and exact["high"] == pytest.approx(3.28)
    lower = capacity_ratio(result(100, "target", 128), result(800, "max_rate", None))
    assert lower["bound"] == "lower" and lower["text"].startswith("≥ 8.00×")
    assert "max_rate" in lower["text"] and lower["high"] is None
    lower2 = capacity_ratio(result(100, "target", 128), result(205, "invalid", None))
    assert lower2["text"].startswith("≥ 2.05×") and "invalid" in lower2["text"]
    upper = capacity_ratio(result(205, "invalid", None), result(410, "target", 500))
    assert upper["bound"] == "upper" and upper["text"].startswith("≤ 2.00×")
    both = capacity_ratio(result(800, "max_rate", None), result(800, "max_rate", None))
    assert both["bound"] == "unknown"
    none = capacity_ratio(result(None, "target", 50), result(128, "target", 205))
    assert none["ratio"] is None and none["text"].startswith("> 2.56×")


def test_result_round_trips_through_json() -> None:
    r = CapacityResult(
        "webhook-text", "reference/phase3",
        [CapacityStep(50.0, "pass", 12.0, 20.0, 0.0, 50.0), CapacityStep(80.0, "fail",
         reasons=["p95_ms 300 > 200"], phase="step")],
        50.0, "target", 80.0, 12.5, "80 req/s failed", {"start_rate": 50},
    )  # fmt: skip
    back = CapacityResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back == r


# -- end to end on a real single-threaded target ---------------------------------------
def queue_scenario(tmp: Path, *, cpu_ms: float, extra_args: str = "", model: str = "") -> Scenario:
    port = free_port()
    load = model or "load:\n  rate: 10"
    f = tmp / "queue.yaml"
    f.write_text(
        f"""name: queue
target:
  service: external
  url: http://127.0.0.1:{port}
  start: "{sys.executable} {QUEUE_APP} --port {port} --cpu-ms {cpu_ms} {extra_args}"
  ready_path: /health
request:
  path: /work
{load}
warmup: 1s
duration: 2s
thresholds:
  p95_ms: 100
  error_rate: 0.01
"""
    )
    return load_scenario(f)


def target_pids(entries: list[dict[str, Any]]) -> set[int]:
    return {pid for e in entries for pid in e["target"]["pids"].values()}


def assert_all_gone(pids: set[int], scenario: Scenario) -> None:
    assert pids
    for pid in pids:
        try:
            status = psutil.Process(pid).status()
        except psutil.NoSuchProcess:
            continue
        assert status == psutil.STATUS_ZOMBIE, f"pid {pid} still {status}"
    port = f"--port {scenario.target.port}"
    left = [p for p in psutil.process_iter(["cmdline"]) if port in " ".join(p.info["cmdline"] or [])
            and "queue_app" in " ".join(p.info["cmdline"] or [])]  # fmt: skip
    assert not left


SHORT = {"warmup_s": 0.3, "duration_s": 1.0}


def test_search_finds_the_queueing_limit(tmp_path: Path) -> None:
    """10 ms of CPU per request on one thread: under 100 req/s in theory. 20 req/s passes
    a p95 < 100 ms target easily; 800 req/s cannot."""
    sc = queue_scenario(tmp_path, cpu_ms=10)
    entries: list[dict[str, Any]] = []
    r = search_capacity(sc, RunOptions(), start_rate=20, max_rate=800, factor=1.6, refine=2,
                        run_dir=tmp_path / "run", events=QuietEvents(), entries=entries, **SHORT)  # fmt: skip
    assert r.scenario == "queue" and r.label.startswith("external http://127.0.0.1:")
    steps = [s for s in r.steps if s.phase == "step"]
    refine = [s for s in r.steps if s.phase == "refine"]
    # geometric until the first step that does not pass, and it is a real failure
    assert [s.rate for s in steps] == step_rates(20, 800, 1.6)[: len(steps)]
    assert all(s.verdict == "pass" for s in steps[:-1]), r.steps
    assert steps[0].verdict == "pass"
    assert steps[-1].verdict == "fail", r.steps
    assert steps[-1].rate < 800
    assert any("p95_ms" in reason for reason in steps[-1].reasons)
    assert r.limited_by == "target"
    # bisection between the last pass and the first fail, narrowing each time
    assert len(refine) == 2
    lo, hi = steps[-2].rate, steps[-1].rate
    for s in refine:
        assert s.verdict in ("pass", "fail"), s
        assert lo < s.rate < hi
        lo, hi = (s.rate, hi) if s.verdict == "pass" else (lo, s.rate)
    assert r.capacity == max(s.rate for s in r.steps if s.verdict == "pass") == lo
    assert r.first_failing == min(s.rate for s in r.steps if s.verdict == "fail") == hi
    # every step's entry handed back, tagged with its rate, measured on one target
    assert [e["capacity_step"] for e in entries] == [s.rate for s in r.steps]
    assert all(e["scenario"]["load"]["rate"] == e["capacity_step"] for e in entries)
    assert all(e["scenario"]["duration_s"] == 1.0 for e in entries)
    assert len(target_pids(entries)) == 1
    assert r.wall_s > 0
    assert_all_gone(target_pids(entries), sc)


def test_a_target_that_dies_makes_the_step_invalid(tmp_path: Path) -> None:
    """The target exits after 40 requests: during the second step (32 req/s × 1.3 s). That
    step is invalid, not the target's limit, and the first step's rate is the capacity."""
    sc = queue_scenario(tmp_path, cpu_ms=1, extra_args="--exit-after 40")
    entries: list[dict[str, Any]] = []
    r = search_capacity(sc, RunOptions(), start_rate=20, max_rate=800, refine=2,
                        run_dir=tmp_path / "run", events=QuietEvents(), entries=entries, **SHORT)  # fmt: skip
    assert [s.verdict for s in r.steps] == ["pass", "invalid"], r.steps
    assert r.limited_by == "invalid"
    assert r.capacity == 20.0
    assert r.first_failing is None
    assert any("service" in reason and ("exited" in reason or "gone" in reason)
               for reason in r.steps[-1].reasons), r.steps[-1]  # fmt: skip
    assert "invalid" in r.reason
    assert_all_gone(target_pids(entries), sc)


class InterruptingEvents(QuietEvents):
    def scenario_finished(self, entry: dict[str, Any]) -> None:
        self.pids = set(entry["target"]["pids"].values())
        raise KeyboardInterrupt


def test_target_stopped_on_keyboard_interrupt(tmp_path: Path) -> None:
    sc = queue_scenario(tmp_path, cpu_ms=1)
    events = InterruptingEvents()
    with pytest.raises(KeyboardInterrupt):
        search_capacity(sc, RunOptions(), start_rate=20, max_rate=800,
                        run_dir=tmp_path / "run", events=events, **SHORT)  # fmt: skip
    assert_all_gone(events.pids, sc)


def test_closed_model_is_a_usage_error(tmp_path: Path) -> None:
    sc = queue_scenario(tmp_path, cpu_ms=1, model="load:\n  model: closed\n  users: 2")
    with pytest.raises(ValueError, match="open load model"):
        search_capacity(sc, RunOptions(), start_rate=20, max_rate=800,
                        run_dir=tmp_path / "run", events=QuietEvents())  # fmt: skip
    assert not (tmp_path / "run").exists()  # nothing was started


# -- discarding a backlog between steps ------------------------------------------------
def test_discard_queued_takes_only_queued_jobs_off(tmp_path: Path) -> None:
    """On a real redis-server with jobs enqueued through arq (no worker): the queued jobs
    and their data go; a job the worker has started (in progress, data kept) stays."""
    import asyncio

    import redis
    from arq import create_pool
    from arq.connections import RedisSettings

    from perfaudit.audit.capacity import _discard_queued
    from perfaudit.stack.redis_server import redis_process

    proc, url = redis_process(tmp_path)
    proc.start()
    try:
        proc.wait_ready(10)

        async def enqueue() -> None:
            pool = await create_pool(RedisSettings.from_dsn(url))
            try:
                for i in range(5):
                    assert await pool.enqueue_job("process_update", {"n": i}, _job_id=f"j{i}")
            finally:
                await pool.aclose()

        asyncio.run(enqueue())
        client = redis.Redis.from_url(url)
        try:
            # what arq's worker does when it starts j0: in progress, off the queue
            client.set("arq:in-progress:j0", b"1")
            client.zrem("arq:queue", "j0")
            assert _discard_queued(client) == 4
            assert client.zcard("arq:queue") == 0
            assert client.exists("arq:job:j0") == 1
            assert not any(client.exists(f"arq:job:j{i}") for i in range(1, 5))
        finally:
            client.close()
    finally:
        proc.stop()
