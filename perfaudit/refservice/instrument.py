"""Event-loop lag probe inside the service (clinic.js doctor's "delay"), opt-in.

With ``PERFAUDIT_INSTRUMENT=1`` a background task sleeps ``interval`` (50 ms) over and over;
the time it wakes up late is the loop lag: how long a ready callback (a request, a Redis reply)
waited behind other work. Without the variable nothing is mounted or started, so production
behaviour is untouched.

Memory stays constant: lags go into a fixed log-bucket histogram (5 % relative error on
percentiles) and a per-second timeline of bounded length.

HTTP: ``GET /__perfaudit/loop`` -> ``{"samples", "mean_ms", "p50_ms", "p99_ms", "max_ms",
"interval_ms", "since", "timeline": [{"t", "samples", "mean_ms", "max_ms"}]}``,
``POST /__perfaudit/loop/reset``; ``GET /__perfaudit/memory`` -> ``{"gc_objects", "loggers"}``
after a full collection: what the process still holds (per-request leaks show as growth). Under uvloop timers have 1 ms granularity, so lags below
about 1 ms are noise.

Starlette apps: :func:`routes` + :func:`wrap_lifespan`; any ASGI app: :class:`InstrumentedASGI`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import logging
import math
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENV_VAR = "PERFAUDIT_INSTRUMENT"
PREFIX = "/__perfaudit"
DEFAULT_INTERVAL_S = 0.05
DEFAULT_TIMELINE_S = 600  # ten minutes of per-second points

# Bucket upper bounds in ms: 0.01 ms .. ~100 s, each 5 % above the previous (~330 buckets).
_GROWTH = 1.05
_BOUNDS_MS: list[float] = [0.01 * _GROWTH**i for i in range(math.ceil(math.log(1e7, _GROWTH)) + 1)]


def enabled(env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(ENV_VAR, "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


class LagHistogram:
    """Counts per log bucket: constant memory, percentiles within one bucket (5 %)."""

    def __init__(self) -> None:
        self.counts = [0] * (len(_BOUNDS_MS) + 1)  # the last bucket catches anything larger
        self.n = 0
        self.total_ms = 0.0
        self.max_ms = 0.0

    def record(self, lag_ms: float) -> None:
        self.counts[bisect.bisect_left(_BOUNDS_MS, lag_ms)] += 1
        self.n += 1
        self.total_ms += lag_ms
        self.max_ms = max(self.max_ms, lag_ms)

    def percentile(self, p: float) -> float:
        if not self.n:
            return 0.0
        rank = max(1, math.ceil(p / 100.0 * self.n))
        seen = 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                upper = _BOUNDS_MS[i] if i < len(_BOUNDS_MS) else self.max_ms
                return min(upper, self.max_ms)  # never above what was seen
        return self.max_ms


class LoopLagProbe:
    def __init__(
        self, interval: float = DEFAULT_INTERVAL_S, timeline_seconds: int = DEFAULT_TIMELINE_S
    ) -> None:
        self.interval = interval
        self.timeline: deque[dict[str, float]] = deque(maxlen=timeline_seconds)
        self._task: asyncio.Task[None] | None = None
        self.reset()

    def reset(self) -> None:
        self.hist = LagHistogram()
        self.timeline.clear()
        self.since = time.time()
        self._sec = 0  # the wall-clock second being accumulated, and its figures
        self._sec_n = 0
        self._sec_sum = 0.0
        self._sec_max = 0.0

    def record(self, lag_ms: float, now: float | None = None) -> None:
        sec = int(time.time() if now is None else now)
        if sec != self._sec:
            self._flush()
            self._sec = sec
        self.hist.record(lag_ms)
        self._sec_n += 1
        self._sec_sum += lag_ms
        self._sec_max = max(self._sec_max, lag_ms)

    def _flush(self) -> None:
        if self._sec_n:
            self.timeline.append(self._point())
        self._sec_n, self._sec_sum, self._sec_max = 0, 0.0, 0.0

    def _point(self) -> dict[str, float]:
        return {
            "t": self._sec,
            "samples": self._sec_n,
            "mean_ms": round(self._sec_sum / self._sec_n, 3),
            "max_ms": round(self._sec_max, 3),
        }

    def snapshot(self) -> dict[str, Any]:
        h = self.hist
        timeline = list(self.timeline)
        if self._sec_n:  # the second in progress, too
            timeline.append(self._point())
        return {
            "samples": h.n,
            "mean_ms": round(h.total_ms / h.n, 3) if h.n else 0.0,
            "p50_ms": round(h.percentile(50), 3),
            "p99_ms": round(h.percentile(99), 3),
            "max_ms": round(h.max_ms, 3),
            "interval_ms": self.interval * 1000.0,
            "since": round(self.since, 3),
            "timeline": timeline,
        }

    # -- the background task -----------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="perfaudit-lag")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        # perf_counter, not loop.time(): uvloop's clock only has millisecond steps.
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(self.interval)
            late_s = time.perf_counter() - t0 - self.interval
            self.record(max(0.0, late_s) * 1000.0)


def from_env(env: Mapping[str, str] | None = None) -> LoopLagProbe | None:
    """A probe when ``PERFAUDIT_INSTRUMENT`` is on, else None (and nothing gets mounted)."""
    return LoopLagProbe() if enabled(env) else None


def routes(probe: LoopLagProbe | None) -> list[Route]:
    if probe is None:
        return []

    async def loop(request: Request) -> Response:
        return JSONResponse(probe.snapshot())

    async def reset(request: Request) -> Response:
        probe.reset()
        return JSONResponse({"ok": True, "since": probe.since})

    async def memory(request: Request) -> Response:
        return JSONResponse(memory_snapshot())

    return [
        Route(f"{PREFIX}/loop", loop, methods=["GET"]),
        Route(f"{PREFIX}/loop/reset", reset, methods=["POST"]),
        Route(f"{PREFIX}/memory", memory, methods=["GET"]),
    ]


def memory_snapshot() -> dict[str, int]:
    """Objects the process still holds after a full collection (leaks show as growth)."""
    gc.collect()
    return {
        "gc_objects": len(gc.get_objects()),
        "loggers": len(logging.Logger.manager.loggerDict),
    }


Lifespan = Callable[[Any], AbstractAsyncContextManager[Any]]


def wrap_lifespan(lifespan: Lifespan, probe: LoopLagProbe | None) -> Lifespan:
    """The app's lifespan with the probe running around it (unchanged when probe is None)."""
    if probe is None:
        return lifespan

    @asynccontextmanager
    async def wrapped(app: Any) -> AsyncIterator[Any]:
        await probe.start()
        try:
            async with lifespan(app) as state:
                yield state
        finally:
            await probe.stop()

    return wrapped


class InstrumentedASGI:
    """Any ASGI app plus the probe: answers ``/__perfaudit/...`` and runs the probe over the
    lifespan (for services that are not Starlette; the server must send lifespan events)."""

    def __init__(self, app: ASGIApp, probe: LoopLagProbe | None = None) -> None:
        self.app = app
        self.probe = probe or LoopLagProbe()
        self.router = Router(routes=routes(self.probe))
        # Only the probe's own paths: other /__perfaudit/ routes (the pyinstrument hook, when
        # the app is wrapped by it too) belong to the app.
        self.paths = frozenset(r.path for r in self.router.routes if isinstance(r, Route))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":

            async def observed() -> Message:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.probe.start()
                elif message["type"] == "lifespan.shutdown":
                    await self.probe.stop()
                return message

            await self.app(scope, observed, send)
        elif scope["type"] == "http" and scope["path"] in self.paths:
            await self.router(scope, receive, send)
        else:
            await self.app(scope, receive, send)
