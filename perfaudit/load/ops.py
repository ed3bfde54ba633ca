"""Load of arbitrary async operations (enqueue a job, a Redis round-trip, a flow step).

The same models, schedules, histograms and ``LoadResult`` as the HTTP engine, for work
that is not one HTTP request. Rates here are modest (jobs, store operations), so each
arrival is a task; the HTTP engine stays callback-only for its much higher rates.

An operation is ``async op(seq) -> str | None``: ``None`` on success, else an error kind
(``status``, ``timeout``, ``connect``, ``closed``, ``protocol``) — or it raises, which
counts as ``closed`` for connection errors and ``protocol`` otherwise.
"""

from __future__ import annotations

import asyncio
import random
import resource
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from perfaudit.load.client import ERROR_KINDS
from perfaudit.load.histogram import LatencyHistogram
from perfaudit.load.models import ClosedModel, ConstantArrivalRate, LoadModel, RampingArrivalRate
from perfaudit.load.result import LoadResult, ProcessStats, Progress, SecondStats
from perfaudit.load.schedulers import arrival_offsets, expected_arrivals, with_warmup

Operation = Callable[[int], Awaitable[str | None]]
_RUSAGE = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


def _cpu() -> tuple[float, float]:
    ru = resource.getrusage(_RUSAGE)
    return ru.ru_utime, ru.ru_stime


class _Recorder:
    def __init__(self, t0: float, t_meas: float, progress: Any) -> None:
        self.t0, self.t_meas, self.progress = t0, t_meas, progress
        self.latency = LatencyHistogram()
        self.service = LatencyHistogram()
        self.warmup_latency = LatencyHistogram()
        self.errors: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
        self.sent = self.completed = self.ok = self.late = self.warmup_requests = 0
        self.seconds: dict[int, SecondStats] = {}
        self.sent_secs: dict[int, int] = {}
        self.lag_sum = self.lag_max = 0.0
        self._last_reported = -1

    def second(self, t: float) -> SecondStats:
        sec = int(t - self.t0)
        cur = self.seconds.get(sec)
        if cur is None:
            cur = self.seconds[sec] = SecondStats(sec)
            self._report(sec - 1)
        return cur

    def _report(self, sec: int) -> None:
        if self.progress is None or sec <= self._last_reported or sec not in self.seconds:
            return
        s = self.seconds[sec]
        self.progress.put(
            Progress(0, sec, self.sent_secs.get(sec, 0), s.completed, s.errors,
                     s.hist.percentile_us(99.0))
        )  # fmt: skip
        self._last_reported = sec

    def on_send(self, intended: float, actual: float, late_tolerance: float) -> None:
        sec = int(actual - self.t0)
        self.sent_secs[sec] = self.sent_secs.get(sec, 0) + 1
        if intended >= self.t_meas:
            self.sent += 1
            lag = actual - intended
            self.lag_sum += lag
            self.lag_max = max(self.lag_max, lag)
            if lag > late_tolerance:
                self.late += 1
        else:
            self.warmup_requests += 1

    def on_done(self, intended: float, started: float, err: str | None) -> None:
        now = perf_counter()
        cur = self.second(now)
        cur.completed += 1
        measured = intended >= self.t_meas
        if err is None:
            lat_us = int((now - intended) * 1e6)
            cur.hist.record_us(lat_us)
            if measured:
                self.completed += 1
                self.ok += 1
                self.latency.record_us(lat_us)
                self.service.record_us(int((now - started) * 1e6))
            else:
                self.warmup_latency.record_us(lat_us)
            return
        cur.errors += 1
        if measured:
            self.completed += 1
            self.errors[err if err in self.errors else "protocol"] += 1


async def _call(op: Operation, seq: int) -> str | None:
    try:
        return await op(seq)
    except (ConnectionError, OSError):
        return "closed"
    except TimeoutError:
        return "timeout"
    except Exception:  # noqa: BLE001 - an operation's failure is a result, not a crash
        return "protocol"


async def run_ops(
    op: Operation,
    model: LoadModel,
    *,
    warmup_s: float = 0.0,
    progress: Any = None,
    label: str = "ops",
) -> LoadResult:
    """Drive ``op`` with ``model`` on the running loop; latency from intended send time."""
    total = warmup_s + model.total_duration_s
    t0 = perf_counter()
    rec = _Recorder(t0, t0 + warmup_s, progress)
    cpu0: tuple[float, float] | None = None
    wall0 = 0.0
    tasks: set[asyncio.Task[None]] = set()
    dropped = scheduled = 0

    async def one(seq: int, intended: float, started: float) -> None:
        rec.on_done(intended, started, await _call(op, seq))

    if isinstance(model, ClosedModel):

        async def user(index: int) -> None:
            seq = index
            rng = random.Random(index)
            while perf_counter() < t0 + total:
                started = perf_counter()
                rec.on_send(started, started, float("inf"))
                rec.on_done(started, started, await _call(op, seq))
                seq += model.users
                think = model.think_time_s
                pause = rng.uniform(*think) if isinstance(think, tuple) else think
                if pause:
                    await asyncio.sleep(pause)

        async def closed() -> None:
            await asyncio.gather(*(user(i) for i in range(model.users)))

        runner: Awaitable[None] = closed()
        concurrency, target = model.users, None
    else:
        assert isinstance(model, ConstantArrivalRate | RampingArrivalRate)
        segments = with_warmup(model.segments(), warmup_s, model.warmup_rate)
        slots = asyncio.Semaphore(model.max_connections)

        async def gated(seq: int, intended: float) -> None:
            async with slots:
                started = perf_counter()
                rec.on_send(intended, started, model.late_tolerance_s)
                rec.on_done(intended, started, await _call(op, seq))

        async def open_loop() -> None:
            nonlocal dropped, scheduled
            for seq, offset in enumerate(arrival_offsets(segments)):
                intended = t0 + offset
                delay = intended - perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if intended >= t0 + warmup_s:
                    scheduled += 1
                if len(tasks) >= model.max_connections + model.max_queue:
                    if intended >= t0 + warmup_s:
                        dropped += 1
                    continue
                task = asyncio.create_task(gated(seq, intended))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:
                await asyncio.wait(set(tasks), timeout=30.0)

        runner = open_loop()
        concurrency = model.max_connections
        target = expected_arrivals(model.segments()) / model.total_duration_s

    loop = asyncio.get_running_loop()

    def snap() -> None:
        nonlocal cpu0, wall0
        cpu0, wall0 = _cpu(), perf_counter()

    if warmup_s > 0:
        loop.call_later(warmup_s, snap)
    else:
        snap()
    await runner
    cpu1, wall1 = _cpu(), perf_counter()
    c0 = cpu0 or cpu1
    rec.second(perf_counter())  # closes the last full second for the progress feed
    duration = model.total_duration_s
    seconds = [rec.seconds[k] for k in sorted(rec.seconds)]
    for s in seconds:
        s.sent = rec.sent_secs.get(s.t, 0)
    if isinstance(model, ClosedModel):
        scheduled = rec.sent
    return LoadResult(
        model=model.kind,
        duration_s=duration,
        warmup_s=warmup_s,
        processes=1,
        concurrency=concurrency,
        target_rps=target,
        achieved_rps=rec.sent / duration if duration > 0 else 0.0,
        scheduled=scheduled,
        sent=rec.sent,
        completed=rec.completed,
        ok=rec.ok,
        errors=rec.errors,
        error_status={},
        status_codes={},
        late=rec.late,
        dropped=dropped,
        warmup_requests=rec.warmup_requests,
        bytes_sent=0,
        bytes_received=0,
        send_lag_mean_ms=1000 * rec.lag_sum / rec.sent if rec.sent and target else 0.0,
        send_lag_max_ms=1000 * rec.lag_max,
        latency=rec.latency,
        service=rec.service,
        warmup_latency=rec.warmup_latency,
        timeline=seconds,
        cpu=[
            ProcessStats(
                index=0,
                cpu_s=(cpu1[0] - c0[0]) + (cpu1[1] - c0[1]),
                user_s=cpu1[0] - c0[0],
                sys_s=cpu1[1] - c0[1],
                wall_s=max(1e-9, wall1 - (wall0 or wall1)),
                loop=type(loop).__module__.split(".")[0],
                connections=0,
                connect_errors=0,
            )
        ],
        extra={"target": label},
    )
