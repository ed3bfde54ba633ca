"""Call log (bounded) and counters (never truncated) of the stand-ins.

Everything runs on one event loop, so plain ints/dicts need no locking.
"""

from __future__ import annotations

import fnmatch
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from perfaudit.upstreams.routes import UPSTREAMS


@dataclass
class ConnectionStats:
    new: int = 0  # TCP connections accepted since start/reset
    open: int = 0  # currently open (live state, not reset)


@dataclass
class RouteCounter:
    calls: int = 0
    errors: int = 0  # status >= 400 or an undelivered callback


class Recorder:
    def __init__(self, max_calls: int = 100_000, text_limit: int = 8192) -> None:
        self._calls: deque[dict[str, Any]] = deque(maxlen=max_calls)
        # seq keeps growing across resets so ``since=`` cursors held by clients stay valid.
        self._seq = itertools.count(1)
        self.text_limit = text_limit
        self.routes: dict[str, RouteCounter] = {}
        self.connections: dict[str, ConnectionStats] = {u: ConnectionStats() for u in UPSTREAMS}
        self.callbacks_sent = 0
        self.callbacks_failed = 0
        self.started = time.monotonic()

    def set_max_calls(self, max_calls: int) -> None:
        self._calls = deque(self._calls, maxlen=max_calls)

    def record(
        self,
        route: str,
        method: str,
        path: str,
        status: int,
        body: Any,
        duration_ms: float,
        ts: float,
        *,
        failed: bool | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        counter = self.routes.get(route)
        if counter is None:
            counter = self.routes[route] = RouteCounter()
        counter.calls += 1
        if (status >= 400 or status == 0) if failed is None else failed:
            counter.errors += 1
        call = {
            "seq": next(self._seq),
            "route": route,
            "ts": ts,
            "method": method,
            "path": path,
            "status": status,
            "json": self._clip(body),
            "duration_ms": round(duration_ms, 3),
        }
        if extra:
            call.update(extra)
        self._calls.append(call)
        return call

    def _clip(self, value: Any) -> Any:
        # Long texts (4 KiB messages, big cursor outputs) x 100k calls would balloon memory.
        if isinstance(value, str):
            if len(value) > self.text_limit:
                return (
                    value[: self.text_limit] + f"...[{len(value) - self.text_limit} chars clipped]"
                )
            return value
        if isinstance(value, dict):
            return {k: self._clip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._clip(v) for v in value]
        return value

    def calls(
        self, route: str | None = None, since: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Oldest first; ``route`` may be an exact name or a glob like ``telegram.*``."""
        if route and ("*" in route or "?" in route):
            wanted = [c for c in self._calls if fnmatch.fnmatchcase(c["route"], route)]
        else:
            wanted = [c for c in self._calls if not route or c["route"] == route]
        out = [c for c in wanted if c["seq"] > since]
        return out if limit is None else out[:limit]

    def reset(self) -> None:
        self._calls.clear()
        self.routes.clear()
        for stats in self.connections.values():
            stats.new = 0
        self.callbacks_sent = 0
        self.callbacks_failed = 0

    def stats(self, pending_callbacks: int) -> dict[str, Any]:
        return {
            "routes": {
                name: {"calls": c.calls, "errors": c.errors}
                for name, c in sorted(self.routes.items())
            },
            "connections": {
                name: {"new": s.new, "open": s.open} for name, s in self.connections.items()
            },
            "callbacks": {
                "sent": self.callbacks_sent,
                "failed": self.callbacks_failed,
                "pending": pending_callbacks,
            },
            "calls_logged": len(self._calls),
            "uptime_s": round(time.monotonic() - self.started, 3),
        }
