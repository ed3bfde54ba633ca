"""What the window cost the upstreams: stand-in call and connection counter deltas.

Read over the stand-ins' control port (``GET /_standin/stats``), which is neither an upstream
nor a recorded route, so the collector's own requests do not show up in the figures.
"""

from __future__ import annotations

from typing import Any

import httpx

from perfaudit.collect.base import Result
from perfaudit.upstreams import routes as r

# Calls the stand-ins make *to* the service; not upstream calls of the service.
OUTGOING_ROUTES = frozenset({r.CR_CALLBACK})
_PREFIXES = {"telegram.": r.TELEGRAM, "cursor.": r.CURSOR_RUNNER, "git.": r.CURSOR_RUNNER,
             "elevenlabs.": r.ELEVENLABS}  # fmt: skip


def upstream_of(route: str) -> str | None:
    """``telegram.sendMessage`` -> ``telegram``; None for outgoing callbacks and unknowns."""
    if route in OUTGOING_ROUTES:
        return None
    for prefix, upstream in _PREFIXES.items():
        if route.startswith(prefix):
            return upstream
    return None


class StandinDelta:
    def __init__(self, control_url: str, timeout: float = 5.0) -> None:
        self.control_url = control_url.rstrip("/")
        self.timeout = timeout
        self._start: dict[str, Any] | None = None

    def _stats(self) -> dict[str, Any]:
        with httpx.Client(timeout=self.timeout) as http:
            resp = http.get(f"{self.control_url}/_standin/stats")
            return resp.raise_for_status().json()

    def start(self) -> None:
        self._start = self._stats()

    def stop(self) -> Result:
        if self._start is None:
            raise RuntimeError("StandinDelta.stop() before start()")
        return delta(self._start, self._stats())


def delta(start: dict[str, Any], end: dict[str, Any]) -> Result:
    # A /_standin/reset inside the window zeroes the counters: count from zero then.
    reset = _went_down(start, end)
    base = _empty() if reset else start
    routes: dict[str, dict[str, int]] = {}
    for name, c in end.get("routes", {}).items():
        prev = base.get("routes", {}).get(name, {})
        calls = c.get("calls", 0) - prev.get("calls", 0)
        errors = c.get("errors", 0) - prev.get("errors", 0)
        if calls or errors:
            routes[name] = {"calls": calls, "errors": errors}

    upstreams: dict[str, dict[str, int]] = {}
    for name, c in end.get("connections", {}).items():
        prev = base.get("connections", {}).get(name, {})
        upstreams[name] = {
            "calls": 0,
            "errors": 0,
            "new_connections": c.get("new", 0) - prev.get("new", 0),
            "open_connections": c.get("open", 0),  # at the end of the window
        }
    for name, c in routes.items():
        up = upstream_of(name)
        if up is not None:
            u = upstreams.setdefault(
                up, {"calls": 0, "errors": 0, "new_connections": 0, "open_connections": 0}
            )
            u["calls"] += c["calls"]
            u["errors"] += c["errors"]

    cb, cb0 = end.get("callbacks", {}), base.get("callbacks", {})
    return {
        "routes": dict(sorted(routes.items())),
        "upstreams": upstreams,
        "calls": sum(u["calls"] for u in upstreams.values()),
        "errors": sum(u["errors"] for u in upstreams.values()),
        "callbacks": {
            "sent": cb.get("sent", 0) - cb0.get("sent", 0),
            "failed": cb.get("failed", 0) - cb0.get("failed", 0),
            "pending": cb.get("pending", 0),  # at the end of the window
        },
        "reset": reset,
    }


def _empty() -> dict[str, Any]:
    return {"routes": {}, "connections": {}, "callbacks": {}}


def _went_down(start: dict[str, Any], end: dict[str, Any]) -> bool:
    def counters(s: dict[str, Any]) -> dict[str, int]:
        out = {f"r:{k}": v.get("calls", 0) for k, v in s.get("routes", {}).items()}
        out.update({f"c:{k}": v.get("new", 0) for k, v in s.get("connections", {}).items()})
        out.update({f"b:{k}": s.get("callbacks", {}).get(k, 0) for k in ("sent", "failed")})
        return out

    after = counters(end)
    return any(after.get(k, 0) < v for k, v in counters(start).items())
