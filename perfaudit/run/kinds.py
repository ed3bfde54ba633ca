"""Driving one scenario of each kind; each returns the load result and kind-specific extras.

- http: the load engine with the scenario's compiled request (the product's core client);
- job: the Telegram message job, enqueued straight into the worker's queue — enqueue
  latency as the load latency, plus queue wait and run time read back from the queue;
- redis-store: the pending-request store's operations with the target's own switches;
- flow: the webhook, followed until the reply reaches the Telegram stand-in.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
from arq import create_pool
from arq.jobs import Job

from perfaudit.load import LatencyHistogram, LoadConfig, LoadResult, model_from_dict, run_load
from perfaudit.load.loop import new_event_loop
from perfaudit.load.ops import run_ops
from perfaudit.refservice.config import Settings
from perfaudit.refservice.jobqueue import PROCESS_UPDATE, redis_settings
from perfaudit.refservice.store import PendingStore, RedisProvider, pending_key
from perfaudit.run.targets import TargetSession
from perfaudit.scenario import Scenario
from perfaudit.scenario.template import PRODUCERS, RunIds, compile_job, compile_request
from perfaudit.stack.client import StackClient

HTTP_TIMEOUT_S = 10.0
DRAIN_TIMEOUT_S = 60.0


def _ms(hist: LatencyHistogram) -> dict[str, float]:
    return hist.summary()


def _run_async(coro_factory: Callable[[], Any]) -> Any:
    loop = new_event_loop(True)
    try:
        return loop.run_until_complete(coro_factory())
    finally:
        loop.close()


def _model(scenario: Scenario) -> Any:
    return model_from_dict(scenario.load_model_dict())


# -- http ------------------------------------------------------------------------------
def run_http(
    scenario: Scenario, session: TargetSession, progress: Any, stop_window: Callable[[], None]
) -> tuple[LoadResult, dict]:
    run = RunIds.new()
    extras: dict[str, Any] = {}
    if scenario.prepare.pending_callbacks:
        extras["seeded_pending"] = seed_pending(scenario, session, run, _request_budget(scenario))
    compiled = compile_request(scenario, session.secrets, host=f"{session.host}:{session.port}")
    config = LoadConfig(
        host=session.host,
        port=session.port,
        model=_model(scenario),
        request_factory=compiled.request_factory(run),
        warmup_s=scenario.warmup_s,
        timeout_s=HTTP_TIMEOUT_S,
        processes=scenario.load.processes,
        progress=progress,
        extra={"scenario": scenario.name},
    )
    result = run_load(config)
    stop_window()
    return result, extras


def seed_pending(scenario: Scenario, session: TargetSession, run: RunIds, count: int) -> int:
    """``count`` pending requests (one per request the run can send), as the job would
    have stored them."""
    import redis

    assert session.redis_url, "prepare.pending_callbacks needs the reference target"
    client = redis.Redis.from_url(session.redis_url)
    try:
        pipe = client.pipeline(transaction=False)
        for seq in range(count):
            data = {
                "chat_id": 900_000_000 + seq,
                "message_id": seq + 1,
                "prompt": "perfaudit seeded request",
                "original_was_audio": False,
                "created_at": "2026-01-01T00:00:00.000Z",
            }
            pipe.setex(pending_key(run.pending_id(seq)), 3600, json.dumps(data))
            if seq % 1000 == 999:
                pipe.execute()
        pipe.execute()
    finally:
        client.close()
    return count


def _request_budget(scenario: Scenario) -> int:
    expected = scenario.expected_requests()
    if expected is None:  # closed model: bounded by what users can send; be generous
        expected = int((scenario.warmup_s + scenario.duration_s) * 2000)
    return int(expected * 1.05) + 10


# -- job -------------------------------------------------------------------------------
def run_job(
    scenario: Scenario, session: TargetSession, progress: Any, stop_window: Callable[[], None]
) -> tuple[LoadResult, dict]:
    assert session.redis_url, "the job kind needs the reference target"
    template = compile_job(scenario, session.secrets)
    run = RunIds.new()
    prefix = f"perfaudit-job:{run.id_base}"
    enqueued: dict[int, float] = {}

    async def main() -> tuple[LoadResult, dict]:
        pool = await create_pool(redis_settings(Settings(redis_url=session.redis_url)))
        try:

            async def op(seq: int) -> str | None:
                values = {n: fn(run, seq) for n, fn in PRODUCERS.items()}
                update = json.loads(template.render(values))
                enqueued[seq] = time.time()
                job = await pool.enqueue_job(PROCESS_UPDATE, update, _job_id=f"{prefix}:{seq}")
                return None if job is not None else "status"

            result = await run_ops(
                op, _model(scenario), warmup_s=scenario.warmup_s, progress=progress,
                label="arq enqueue",
            )  # fmt: skip
            await _drain_queue(pool)
            stop_window()  # before reading results back, which is not the service's work
            return result, await _job_outcomes(pool, prefix, enqueued, scenario.warmup_s)
        finally:
            await pool.aclose()

    return _run_async(main)


async def _drain_queue(pool: Any) -> None:
    """Until the worker has taken and finished every queued job (or the drain times out)."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        queued = await pool.zcard(pool.default_queue_name)
        running = await pool.keys("arq:in-progress:*")
        if not queued and not running:
            return
        await asyncio.sleep(0.1)


async def _job_outcomes(
    pool: Any, prefix: str, enqueued: dict[int, float], warmup_s: float
) -> dict[str, Any]:
    """Queue wait and run time of the measured jobs, once the worker has finished them."""
    if not enqueued:
        return {"jobs": 0}
    start = min(enqueued.values())
    measured = [seq for seq, t in enqueued.items() if t >= start + warmup_s]
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    infos: dict[int, Any] = {}
    while time.monotonic() < deadline:
        for seq in measured:
            if seq not in infos:
                info = await Job(f"{prefix}:{seq}", pool).result_info()
                if info is not None:
                    infos[seq] = info
        if len(infos) == len(measured):
            break
        await asyncio.sleep(0.2)
    wait, run_time = LatencyHistogram(), LatencyHistogram()
    failed = 0
    for info in infos.values():
        wait.record_s(max(0.0, (info.start_time - info.enqueue_time).total_seconds()))
        run_time.record_s(max(0.0, (info.finish_time - info.start_time).total_seconds()))
        failed += 0 if info.success else 1
    finishes = [i.finish_time.timestamp() for i in infos.values()]
    firsts = [enqueued[s] for s in infos]
    span = (max(finishes) - min(firsts)) if infos else 0.0
    return {
        "jobs": len(measured),
        "jobs_completed": len(infos),
        "jobs_failed": failed,
        "jobs_unfinished": len(measured) - len(infos),
        "jobs_per_s": len(infos) / span if span > 0 else 0.0,
        "queue_wait": wait.to_dict(),
        "run_time": run_time.to_dict(),
    }


# -- redis-store -----------------------------------------------------------------------
def run_redis_store(
    scenario: Scenario, session: TargetSession, progress: Any, stop_window: Callable[[], None]
) -> tuple[LoadResult, dict]:
    assert session.redis_url and scenario.redis_store, "redis-store needs the reference target"
    settings = Settings(redis_url=session.redis_url, switches=scenario.target.switches)
    spec = scenario.redis_store
    pad = "x" * max(0, spec.payload_bytes - 120)
    per_op = {name: LatencyHistogram() for name in spec.operations}
    run = RunIds.new()

    async def main() -> tuple[LoadResult, dict]:
        provider = RedisProvider(settings)
        try:

            async def op(seq: int) -> str | None:
                rid = run.pending_id(seq)
                async with provider.store() as store:
                    for name in spec.operations:
                        t0 = time.perf_counter()
                        await _store_op(store, name, rid, seq, pad)
                        per_op[name].record_s(time.perf_counter() - t0)
                return None

            result = await run_ops(
                op, _model(scenario), warmup_s=scenario.warmup_s, progress=progress,
                label="pending-request store",
            )  # fmt: skip
        finally:
            await provider.aclose()
        stop_window()
        return result, {
            "operations": list(spec.operations),
            "per_operation": {k: h.to_dict() for k, h in per_op.items()},
            "switches": sorted(settings.switches & {"redis-pool", "atomic-getdel"}),
        }

    return _run_async(main)


async def _store_op(store: PendingStore, name: str, rid: str, seq: int, pad: str) -> None:
    if name == "store":
        await store.store(rid, {"chat_id": seq, "message_id": seq, "prompt": pad,
                                "original_was_audio": False})  # fmt: skip
    elif name == "get":
        await store.get(rid)
    elif name == "remove":
        await store.remove(rid)
    else:
        raise ValueError(f"unknown store operation {name!r}")


# -- flow ------------------------------------------------------------------------------
def run_flow(
    scenario: Scenario, session: TargetSession, progress: Any, stop_window: Callable[[], None]
) -> tuple[LoadResult, dict]:
    assert session.stack is not None, "the flow kind needs the reference target"
    compiled = compile_request(scenario, session.secrets)
    run = RunIds.new()
    sent_at: dict[int, float] = {}
    assert scenario.request is not None
    spec = scenario.request
    method = spec.method

    async def main() -> LoadResult:
        limits = httpx.Limits(max_connections=scenario.load.max_connections)
        async with httpx.AsyncClient(base_url=session.base_url, limits=limits,
                                     timeout=HTTP_TIMEOUT_S) as http:  # fmt: skip

            async def op(seq: int) -> str | None:
                values = {n: fn(run, seq) for n, fn in PRODUCERS.items()}
                path, headers, body = compiled.render(_Ctx(values))  # type: ignore[arg-type]
                sent_at[int(values["chat_id"])] = time.time()
                r = await http.request(method, path.decode(), headers=headers, content=body)
                return None if spec.is_success(r.status_code) else "status"

            return await run_ops(
                op, _model(scenario), warmup_s=scenario.warmup_s, progress=progress,
                label="webhook flow",
            )  # fmt: skip

    result = _run_async(main)
    return result, _flow_replies(session, sent_at, scenario.warmup_s, stop_window)


class _Ctx:
    __slots__ = ("values",)

    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values


def _flow_replies(
    session: TargetSession,
    sent_at: dict[int, float],
    warmup_s: float,
    stop_window: Callable[[], None],
) -> dict[str, Any]:
    """Webhook → first reply and → last reply, per message, from the stand-in's records."""
    assert session.stack is not None
    if not sent_at:
        stop_window()
        return {"messages": 0}
    start = min(sent_at.values())
    measured = {c: t for c, t in sent_at.items() if t >= start + warmup_s}
    replies: dict[int, list[float]] = {}
    with StackClient(session.stack) as client:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        quiet_since, last_count = time.monotonic(), -1
        while time.monotonic() < deadline:
            calls = [
                c
                for route in ("telegram.sendMessage", "telegram.sendVoice")
                for c in client.calls(route)
            ]
            count = len(calls)
            pending = client.stats()["callbacks"]["pending"]
            if count != last_count:
                quiet_since, last_count = time.monotonic(), count
            if pending == 0 and time.monotonic() - quiet_since > 1.0:
                break
            time.sleep(0.25)
    stop_window()
    for c in calls:
        chat = (c.get("json") or {}).get("chat_id")
        try:
            chat_id = int(chat)
        except (TypeError, ValueError):
            continue
        if chat_id in measured and c.get("status", 200) < 400:
            replies.setdefault(chat_id, []).append(float(c["ts"]))
    first, last = LatencyHistogram(), LatencyHistogram()
    for chat_id, stamps in replies.items():
        first.record_s(max(0.0, min(stamps) - measured[chat_id]))
        last.record_s(max(0.0, max(stamps) - measured[chat_id]))
    return {
        "messages": len(measured),
        "answered": len(replies),
        "unanswered": len(measured) - len(replies),
        "e2e": last.to_dict(),
        "first_reply": first.to_dict(),
    }


RUNNERS = {"http": run_http, "job": run_job, "redis-store": run_redis_store, "flow": run_flow}


def with_overrides(
    scenario: Scenario, duration_s: float | None, warmup_s: float | None
) -> Scenario:
    """A scenario with its duration/warm-up replaced (quick runs); stages scale to fit."""
    if duration_s is None and warmup_s is None:
        return scenario
    changes: dict[str, Any] = {}
    if warmup_s is not None:
        changes["warmup_s"] = warmup_s
    if duration_s is not None:
        if scenario.load.stages:
            total = sum(d for d, _ in scenario.load.stages)
            stages = tuple((d * duration_s / total, t) for d, t in scenario.load.stages)
            changes["load"] = replace(scenario.load, stages=stages)
        changes["duration_s"] = duration_s
    return replace(scenario, **changes)
