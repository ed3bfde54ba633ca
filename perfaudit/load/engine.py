"""The load engine: drives a load model with :mod:`perfaudit.load.client` and records
latencies, counters, a per-second timeline and its own CPU cost.

Everything on the request path is a plain callback (no tasks or futures per request):

* open model: ``_pump`` releases every arrival whose intended time has passed, onto a
  free connection, a new connection (up to ``max_connections``), the wait queue (up to
  ``max_queue``), or counts it ``dropped``. ``_pump`` runs from one timer set to the next
  arrival and, at high rates, right after each response (the loop is awake anyway), which
  keeps the send lag below the ~1 ms timer granularity of epoll/libuv.
* closed model: each response immediately (or after think time) sends the user's next
  request on the same connection.

``run_load`` runs one process in-process, or N generator processes (each with its own
loop and 1/N of the rate or users, started together through a barrier) and merges their
results exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import queue as queue_mod
import random
import resource
import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from time import perf_counter
from typing import Any

from perfaudit.load.client import (
    ERR_CONNECT,
    ERR_TIMEOUT,
    ERROR_KINDS,
    Connection,
    ConnectionPool,
)
from perfaudit.load.histogram import LatencyHistogram
from perfaudit.load.loop import loop_name, new_event_loop
from perfaudit.load.models import (
    ClosedModel,
    ConstantArrivalRate,
    LoadConfig,
    RampingArrivalRate,
    RequestSource,
)
from perfaudit.load.result import LoadResult, ProcessStats, Progress, SecondStats, merge_results
from perfaudit.load.schedulers import arrival_offsets, expected_arrivals, with_warmup
from perfaudit.load.timer import LoopTimer, TimerFd, make_timer

_INF = math.inf
_CONNECT_BACKOFF_S = 0.010
# Thread CPU time when the platform has it: only the event-loop thread's work counts,
# even if the caller runs a server in another thread of the same process.
_RUSAGE = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)


def _cpu_now() -> tuple[float, float, float]:
    ru = resource.getrusage(_RUSAGE)
    return ru.ru_utime, ru.ru_stime, perf_counter()


class Engine:
    """One generator process's run. Use :func:`run_load` unless already inside a loop."""

    def __init__(
        self,
        config: LoadConfig,
        *,
        process_index: int = 0,
        process_count: int = 1,
        phase: float = 0.0,
        start_barrier: Any = None,
    ) -> None:
        self.config = config
        self.model = config.model
        self.index = process_index
        self.count = process_count
        self.phase = phase
        self._barrier = start_barrier
        source: RequestSource = (
            config.request_factory(process_index, process_count)
            if config.request_factory
            else config.request
        )
        if isinstance(source, bytes | bytearray):
            if not source:
                raise ValueError("LoadConfig.request is empty")
            data = bytes(source)
            self._source: Callable[[], bytes] = lambda: data
            self._fixed: bytes | None = data
        else:
            self._source = source
            self._fixed = None

        # counters (measured window)
        self.sent = 0
        self.sent_in_window = 0
        self.scheduled = 0
        self.completed = 0
        self.ok = 0
        self.errors: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
        self.error_status: dict[int, int] = {}
        self.status_codes: dict[int, int] = {}
        self.late = 0
        self.dropped = 0
        self.warmup_requests = 0
        self.bytes_sent = 0
        self.bytes_received = 0
        self.lag_sum = 0.0
        self.lag_max = 0.0
        self.latency = LatencyHistogram()
        self.service = LatencyHistogram()
        self.warmup_latency = LatencyHistogram()
        self._seconds: list[SecondStats] = []
        self._cur = SecondStats(0)
        self._sent_secs: list[int] = []

        self._inflight = 0
        self._stopping = False
        self._t0 = 0.0
        self._t_meas = 0.0
        self._t_end = 0.0
        self._cpu_start: tuple[float, float, float] | None = None
        self._cpu_end: tuple[float, float, float] | None = None
        self._done: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: ConnectionPool | None = None

        # open model
        self._free: list[Connection] = []
        self._queue: deque[float] = deque()
        self._next_at = _INF
        self._exhausted = False
        self._timer: LoopTimer | TimerFd | None = None
        self._arrivals: Any = iter(())
        # closed model
        self._idle = 0
        self._users = 0

    # -- public ------------------------------------------------------------------------

    async def run(self) -> LoadResult:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._done = loop.create_future()
        cfg = self.config
        model = self.model
        open_model = not isinstance(model, ClosedModel)
        pool = ConnectionPool(
            cfg.host,
            cfg.port,
            self._on_done_open if open_model else self._on_done_closed,
            timeout_s=cfg.timeout_s,
            connect_timeout_s=cfg.connect_timeout_s,
            loop=loop,
        )
        self._pool = pool
        n = model.users if isinstance(model, ClosedModel) else model.initial_connections()
        conns = [pool.new_connection() for _ in range(n)]
        await pool.connect_all(conns)
        if self._barrier is not None:
            self._barrier.wait(timeout=120)  # blocking is fine: nothing runs on this loop yet
        total = cfg.warmup_s + model.total_duration_s
        self._sent_secs = [0] * (int(total + cfg.timeout_s) + 8)
        t0 = perf_counter()
        self._t0 = t0
        self._t_meas = t0 + cfg.warmup_s
        self._t_end = self._t_meas + model.total_duration_s
        if cfg.warmup_s > 0:
            loop.call_later(cfg.warmup_s, self._snap_start)
        else:
            self._snap_start()
        loop.call_at(loop.time() + total, self._snap_end)

        if isinstance(model, ClosedModel):
            self._start_closed(conns)
        else:
            self._start_open(model, conns)
        # Drain: requests already sent get their timeout (+ sweep slack), then are aborted.
        deadline = total + cfg.timeout_s + 1.0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._done), timeout=deadline)
        self._stop()
        if self._cpu_end is None:
            self._snap_end()
        for _ in range(3):  # let cancelled connects and closing transports settle
            await asyncio.sleep(0)
        return self._result()

    # -- open model --------------------------------------------------------------------

    def _start_open(
        self, model: ConstantArrivalRate | RampingArrivalRate, conns: list[Connection]
    ) -> None:
        loop = self._loop
        assert loop is not None
        self._timer = (
            make_timer(loop, self._pump)
            if self.config.precise_timer
            else LoopTimer(loop, self._pump)
        )
        segs = with_warmup(model.segments(), self.config.warmup_s, model.warmup_rate)
        self._arrivals = arrival_offsets(segs, self.phase)
        self._free = list(reversed(conns))
        self._max_conns = model.max_connections
        self._max_queue = model.max_queue
        self._late_tol = model.late_tolerance_s
        try:
            self._next_at = self._t0 + next(self._arrivals)
        except StopIteration:
            self._exhausted = True
            self._finish()
            return
        self._pump()

    def _pump(self) -> None:
        now = perf_counter()
        nxt = self._next_at
        if nxt <= now:
            free = self._free
            q = self._queue
            pool = self._pool
            assert pool is not None
            t0 = self._t0
            t_meas = self._t_meas
            arrivals = self._arrivals
            while nxt <= now:
                if nxt >= t_meas:
                    self.scheduled += 1
                if free:
                    self._send(free.pop(), nxt)
                elif len(pool.conns) < self._max_conns:
                    self._send(pool.new_connection(), nxt)
                elif len(q) < self._max_queue:
                    q.append(nxt)
                elif nxt >= t_meas:
                    self.dropped += 1
                try:
                    nxt = t0 + next(arrivals)
                except StopIteration:
                    nxt = _INF
                    self._exhausted = True
            self._next_at = nxt
        if nxt != _INF:
            timer = self._timer
            # nxt only grows, so an armed timer is due no later than nxt: keep it (an
            # early wake-up just re-arms) instead of paying a syscall on every pump.
            if not timer.armed:  # type: ignore[union-attr]
                timer.arm(nxt)  # type: ignore[union-attr]
        elif self._inflight == 0 and not self._queue:
            self._finish()

    def _send(self, conn: Connection, intended: float) -> None:
        data = self._fixed or self._source()
        conn.tag = intended
        conn.send(data)
        t = conn.t_send
        self._inflight += 1
        self.bytes_sent += len(data)
        sec = int(t - self._t0)
        if sec < len(self._sent_secs):  # else: sent after the timeline's end (long drain)
            self._sent_secs[sec] += 1
        if intended >= self._t_meas:
            self.sent += 1
            lag = t - intended
            self.lag_sum += lag
            if lag > self.lag_max:
                self.lag_max = lag
            if lag > self._late_tol:
                self.late += 1
        else:
            self.warmup_requests += 1
        if self._t_meas <= t < self._t_end:
            self.sent_in_window += 1

    def _on_done_open(self, conn: Connection, status: int, err: str | None, t_done: float) -> None:
        self._record(conn.tag, conn, status, err, t_done)
        if self._stopping:
            return
        q = self._queue
        if q:
            self._send(conn, q.popleft())
        else:
            self._free.append(conn)
        if self._next_at <= t_done:
            self._pump()
        elif self._exhausted and self._inflight == 0 and not q:
            self._finish()

    # -- closed model ------------------------------------------------------------------

    def _start_closed(self, conns: list[Connection]) -> None:
        self._users = len(conns)
        model = self.model
        assert isinstance(model, ClosedModel)
        think = model.think_time_s
        if isinstance(think, tuple):
            lo, hi = think
            self._think: Callable[[], float] | None = lambda: random.uniform(lo, hi)
        elif think > 0:
            self._think = lambda: think
        else:
            self._think = None
        if not conns:
            self._finish()
        for conn in conns:
            self._user_send(conn)

    def _user_send(self, conn: Connection) -> None:
        if self._stopping or perf_counter() >= self._t_end:
            self._user_idle()
            return
        data = self._fixed or self._source()
        conn.send(data)
        t = conn.t_send
        self._inflight += 1
        self.bytes_sent += len(data)
        sec = int(t - self._t0)
        if sec < len(self._sent_secs):
            self._sent_secs[sec] += 1
        if t >= self._t_meas:
            self.sent += 1
            if t < self._t_end:
                self.sent_in_window += 1
        else:
            self.warmup_requests += 1

    def _user_idle(self) -> None:
        self._idle += 1
        if self._idle >= self._users:
            self._finish()

    def _on_done_closed(
        self, conn: Connection, status: int, err: str | None, t_done: float
    ) -> None:
        self._record(conn.t_send, conn, status, err, t_done)
        if self._stopping:
            return
        if t_done >= self._t_end:
            self._user_idle()
        elif err == ERR_CONNECT:
            delay = max(_CONNECT_BACKOFF_S, self._think() if self._think else 0.0)
            self._loop.call_later(delay, self._user_send, conn)  # type: ignore[union-attr]
        elif self._think is not None:
            self._loop.call_later(self._think(), self._user_send, conn)  # type: ignore[union-attr]
        else:
            self._user_send(conn)

    # -- recording ---------------------------------------------------------------------

    def _record(
        self, start: float, conn: Connection, status: int, err: str | None, t_done: float
    ) -> None:
        self._inflight -= 1
        cur = self._cur
        sec = int(t_done - self._t0)
        if sec != cur.t:
            cur = self._roll(sec)
        cur.completed += 1
        measured = start >= self._t_meas
        if err is None:
            self.bytes_received += conn.nbytes
            lat = int((t_done - start) * 1_000_000)
            cur.hist.record_us(lat)
            if measured:
                self.latency.record_us(lat)
                self.service.record_us(int((t_done - conn.t_send) * 1_000_000))
                self.completed += 1
                codes = self.status_codes
                codes[status] = codes.get(status, 0) + 1
                if status >= 400:
                    cur.errors += 1
                    self.errors["status"] += 1
                    self.error_status[status] = self.error_status.get(status, 0) + 1
                else:
                    self.ok += 1
            else:
                self.warmup_latency.record_us(lat)
                if status >= 400:
                    cur.errors += 1
        else:
            cur.errors += 1
            if measured:
                self.errors[err] += 1

    def _roll(self, sec: int) -> SecondStats:
        """Close the current second (and any silent seconds, e.g. a full stall)."""
        seconds = self._seconds
        cur = self._cur
        seconds.append(cur)
        progress = self.config.progress
        if progress is not None:
            sent = self._sent_secs[cur.t] if cur.t < len(self._sent_secs) else 0
            progress.put(
                Progress(self.index, cur.t, sent, cur.completed, cur.errors,
                         cur.hist.percentile_us(99.0))
            )  # fmt: skip
        for t in range(cur.t + 1, sec):
            seconds.append(SecondStats(t))
        cur = SecondStats(sec)
        self._cur = cur
        return cur

    # -- lifecycle ---------------------------------------------------------------------

    def _snap_start(self) -> None:
        self._cpu_start = _cpu_now()

    def _snap_end(self) -> None:
        if self._cpu_end is None:
            self._cpu_end = _cpu_now()

    def _finish(self) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_result(None)

    def _stop(self) -> None:
        self._stopping = True
        if self._timer is not None:
            self._timer.close()
        measured_queued = sum(1 for t in self._queue if t >= self._t_meas)
        self.dropped += measured_queued
        self._queue.clear()
        pool = self._pool
        if pool is not None:
            pool.abort_inflight(ERR_TIMEOUT)
            pool.close()

    def _result(self) -> LoadResult:
        cfg = self.config
        model = self.model
        duration = model.total_duration_s
        # timeline: every second up to the last send or completion
        seconds = [*self._seconds, self._cur]
        last_sent = max((i for i, n in enumerate(self._sent_secs) if n), default=0)
        while seconds[-1].t < last_sent:
            seconds.append(SecondStats(seconds[-1].t + 1))
        for s in seconds:
            if s.t < len(self._sent_secs):
                s.sent = self._sent_secs[s.t]
        if isinstance(model, ClosedModel):
            kind, target, scheduled, concurrency = "closed", None, self.sent, self._users
        else:
            kind = "open"
            target = expected_arrivals(model.segments()) / duration if duration > 0 else 0.0
            scheduled, concurrency = self.scheduled, model.max_connections
        c0 = self._cpu_start or self._cpu_end or _cpu_now()
        c1 = self._cpu_end or _cpu_now()
        pool = self._pool
        cpu = ProcessStats(
            index=self.index,
            cpu_s=(c1[0] - c0[0]) + (c1[1] - c0[1]),
            user_s=c1[0] - c0[0],
            sys_s=c1[1] - c0[1],
            wall_s=c1[2] - c0[2],
            loop=loop_name(self._loop) if self._loop else "?",
            connections=pool.connects if pool else 0,
            connect_errors=pool.connect_errors if pool else 0,
        )
        return LoadResult(
            model=kind,
            duration_s=duration,
            warmup_s=cfg.warmup_s,
            processes=1,
            concurrency=concurrency,
            target_rps=target,
            achieved_rps=self.sent_in_window / duration if duration > 0 else 0.0,
            scheduled=scheduled,
            sent=self.sent,
            completed=self.completed,
            ok=self.ok,
            errors=dict(self.errors),
            error_status=dict(self.error_status),
            status_codes=dict(self.status_codes),
            late=self.late,
            dropped=self.dropped,
            warmup_requests=self.warmup_requests,
            bytes_sent=self.bytes_sent,
            bytes_received=self.bytes_received,
            send_lag_mean_ms=1000.0 * self.lag_sum / self.sent
            if self.sent and kind == "open"
            else 0.0,
            send_lag_max_ms=1000.0 * self.lag_max,
            latency=self.latency,
            service=self.service,
            warmup_latency=self.warmup_latency,
            timeline=seconds,
            cpu=[cpu],
            extra={"target": f"{cfg.host}:{cfg.port}", **cfg.extra},
        )


# -- entry points ----------------------------------------------------------------------


async def run_load_async(config: LoadConfig) -> LoadResult:
    """Single-process run on the caller's running loop (``processes`` is ignored)."""
    return await Engine(config).run()


def run_load(config: LoadConfig) -> LoadResult:
    """Run a load test to completion (blocking). Multi-process when ``processes > 1``."""
    n = _process_count(config)
    if n <= 1:
        return _run_one(config, 0, 1, None)
    method = config.start_method or ("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    ctx = mp.get_context(method)
    barrier = ctx.Barrier(n)
    results_q = ctx.Queue()
    procs = [
        ctx.Process(target=_child_main, args=(config, i, n, barrier, results_q), daemon=True)
        for i in range(n)
    ]
    for p in procs:
        p.start()
    budget = config.warmup_s + config.model.total_duration_s + config.timeout_s + 180.0
    deadline = time.monotonic() + budget
    got: dict[int, LoadResult] = {}
    failure: str | None = None
    try:
        while len(got) < n and failure is None:
            try:
                status, idx, payload = results_q.get(timeout=0.5)
            except queue_mod.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    failure = f"generator process exited with code {dead[0].exitcode}"
                elif time.monotonic() > deadline:
                    failure = "generator processes did not finish in time"
                continue
            if status == "ok":
                got[idx] = LoadResult.from_dict(payload)
            else:
                failure = f"generator process {idx} failed:\n{payload}"
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
    if failure is not None:
        raise RuntimeError(failure)
    merged = merge_results([got[i] for i in range(n)])
    merged.extra = {"target": f"{config.host}:{config.port}", **config.extra}
    return merged


def _process_count(config: LoadConfig) -> int:
    n = max(1, config.processes)
    if isinstance(config.model, ClosedModel):
        n = min(n, max(1, config.model.users))
    return n


def _process_config(config: LoadConfig, index: int, count: int) -> LoadConfig:
    model = config.model
    if count == 1:
        return config
    if isinstance(model, ClosedModel):
        return replace(config, model=replace(model, users=model.scaled_users(index, count)))
    return replace(config, model=model.scaled(1.0 / count))


def _run_one(config: LoadConfig, index: int, count: int, barrier: Any) -> LoadResult:
    cfg = _process_config(config, index, count)
    loop = new_event_loop(cfg.use_uvloop)
    try:
        engine = Engine(
            cfg,
            process_index=index,
            process_count=count,
            phase=index / count,
            start_barrier=barrier,
        )
        return loop.run_until_complete(engine.run())
    finally:
        loop.close()


def _child_main(config: LoadConfig, index: int, count: int, barrier: Any, results_q: Any) -> None:
    try:
        # A fork from inside a running loop inherits "this thread runs a loop"; clear it.
        asyncio.events._set_running_loop(None)
        result = _run_one(config, index, count, barrier)
        results_q.put(("ok", index, result.to_dict()))
    except BaseException:
        with contextlib.suppress(Exception):
            barrier.abort()
        results_q.put(("error", index, traceback.format_exc()))
