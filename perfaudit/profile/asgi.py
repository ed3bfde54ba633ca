"""pyinstrument inside an ASGI service, switched on and off over HTTP by perfaudit.

Wrap your app once; it is a no-op unless ``PERFAUDIT_PYINSTRUMENT=1`` is in the environment
(perfaudit sets it, together with ``PERFAUDIT_LOOP=asyncio``, when it starts the service for
a pyinstrument run)::

    from perfaudit.profile.asgi import wrap
    app = wrap(app)                       # any ASGI app: Starlette, FastAPI, Django, ...
    uvicorn.run(app, loop=os.environ.get("PERFAUDIT_LOOP", "auto"))

or ``PerfauditProfilingMiddleware(app)`` to have it on unconditionally. Endpoints:

- ``POST /__perfaudit/pyinstrument/start`` body ``{"mode": "requests"|"thread", "interval": s}``
  -> ``{"ok": true, "loop": "asyncio", "pid": ...}``;
- ``POST /__perfaudit/pyinstrument/stop`` -> the session as pyinstrument JSON
  (``Session.to_json()``; load it with ``Session.from_json`` or save it as ``.pyisession``).

Modes: ``requests`` (default) profiles each HTTP request in its own async-aware profiler and
merges them, so time a request spends awaiting (Redis, an upstream) is attributed to the
``await`` — what pyinstrument adds over py-spy. ``thread`` runs one profiler over the whole
event-loop thread (background tasks included, awaits not attributed). Use the asyncio loop:
under uvloop pyinstrument loses the await attribution. Work that a sync endpoint does in a
thread pool is not seen by either mode.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

ENV_VAR = "PERFAUDIT_PYINSTRUMENT"
LOOP_ENV_VAR = "PERFAUDIT_LOOP"
PREFIX = "/__perfaudit/pyinstrument"


def enabled(env: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get(ENV_VAR, "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def wrap(app: ASGIApp, env: Mapping[str, str] | None = None) -> ASGIApp:
    """``app`` with the profiling endpoints when ``PERFAUDIT_PYINSTRUMENT`` is on, else ``app``."""
    return PerfauditProfilingMiddleware(app) if enabled(env) else app


class _Merged:
    """Per-request sessions folded into one: identical stacks are summed as they arrive, so
    memory stays bounded by the number of distinct stacks, not by the number of requests."""

    def __init__(self) -> None:
        self.stacks: dict[tuple[str, ...], float] = defaultdict(float)
        self.start_time: float | None = None
        self.duration = 0.0
        self.cpu_time = 0.0
        self.sample_count = 0
        self.min_interval = float("inf")
        self.max_interval = 0.0
        self.sys_path: list[str] = []
        self.sys_prefixes: set[str] = set()
        self.start_call_stack: list[str] = []
        self.requests = 0
        self.lock = threading.Lock()

    def add(self, session: Any) -> None:
        with self.lock:
            for stack, time_s in session.frame_records:
                self.stacks[tuple(stack)] += time_s
            if self.start_time is None or session.start_time < self.start_time:
                self.start_time = session.start_time
            self.duration += session.duration
            self.cpu_time += session.cpu_time or 0.0
            self.sample_count += session.sample_count
            self.min_interval = min(self.min_interval, session.min_interval)
            self.max_interval = max(self.max_interval, session.max_interval)
            if not self.sys_path:
                self.sys_path = list(session.sys_path)
                self.start_call_stack = list(session.start_call_stack)
            self.sys_prefixes.update(session.sys_prefixes)
            self.requests += 1

    def to_json(self, description: str) -> dict[str, Any]:
        from pyinstrument.session import Session

        return {
            "frame_records": [[list(s), t] for s, t in self.stacks.items()],
            "start_time": self.start_time or 0.0,
            "duration": self.duration,
            "min_interval": self.min_interval if self.requests else 0.001,
            "max_interval": self.max_interval or 0.001,
            "sample_count": self.sample_count,
            "start_call_stack": self.start_call_stack,
            "target_description": description,
            "cpu_time": self.cpu_time,
            "sys_path": self.sys_path or list(sys.path),
            "sys_prefixes": sorted(self.sys_prefixes) or Session.current_sys_prefixes(),
        }


class PerfauditProfilingMiddleware:
    """The start/stop endpoints and, while on, the profiling itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.mode: str | None = None  # None: off
        self.interval = 0.001
        self.merged = _Merged()
        self.thread_profiler: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"].startswith(PREFIX + "/"):
            await self._control(scope, receive, send)
        elif self.mode == "requests":
            await self._profiled(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _profiled(self, scope: Scope, receive: Receive, send: Send) -> None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=self.interval, async_mode="enabled")
        try:
            profiler.start()
        except RuntimeError:  # a profiler already runs in this context (nested apps)
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.merged.add(profiler.stop())

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        action = scope["path"][len(PREFIX) + 1 :]
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if scope["method"] != "POST" or action not in ("start", "stop"):
            await _json(send, 404, {"error": f"POST {PREFIX}/start or /stop"})
            return
        if action == "start":
            try:
                options = json.loads(body or b"{}")
            except ValueError:
                options = {}
            await _json(send, *self.start(options))
        else:
            status, payload = self.stop()
            await _json(send, status, payload)

    def start(self, options: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.mode is not None:
            return 409, {"error": "already profiling"}
        mode = options.get("mode", "requests")
        if mode not in ("requests", "thread"):
            return 400, {"error": f"mode must be requests or thread, got {mode!r}"}
        self.interval = float(options.get("interval", 0.001))
        self.merged = _Merged()
        if mode == "thread":
            from pyinstrument import Profiler

            # Whole thread: samples every task on the loop, so no context to attribute awaits to.
            self.thread_profiler = Profiler(interval=self.interval, async_mode="disabled")
            self.thread_profiler.start()
        self.mode = mode
        loop = type(asyncio.get_running_loop())
        return 200, {"ok": True, "mode": mode, "loop": loop.__module__.split(".")[0],
                     "loop_class": f"{loop.__module__}.{loop.__qualname__}",
                     "pid": os.getpid()}  # fmt: skip

    def stop(self) -> tuple[int, dict[str, Any]]:
        if self.mode is None:
            return 409, {"error": "not profiling"}
        mode, self.mode = self.mode, None
        description = f"perfaudit pyinstrument ({mode}) in pid {os.getpid()}"
        if mode == "thread":
            session = self.thread_profiler.stop()
            self.thread_profiler = None
            data = session.to_json()
            data["target_description"] = description
            return 200, data
        return 200, self.merged.to_json(f"{description}, {self.merged.requests} requests merged")


async def _json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }  # fmt: skip
    )
    await send({"type": "http.response.body", "body": body})
