"""Per-request costs from window counters: pure arithmetic, no I/O.

"4 Redis commands and 0.01 new Redis connections per webhook" is what a review compares
between variants; raw totals depend on how long the load ran.
"""

from __future__ import annotations

from typing import Any

from perfaudit.collect.base import Result


def ratio(num: float, den: float) -> float | None:
    """num/den, or None when nothing was divided by (no requests, no calls)."""
    return num / den if den else None


def _usable(part: Any) -> bool:
    return isinstance(part, dict) and "error" not in part


def per_request(
    requests: int,
    redis: Result | None,
    standins: Result | None,
    connections: Result | None = None,
) -> Result:
    """Costs per request; a part is None when its collector is missing or failed."""
    return {
        "requests": requests,
        "redis": _redis(requests, redis) if redis is not None and _usable(redis) else None,
        "upstreams": (
            _upstreams(requests, standins) if standins is not None and _usable(standins) else None
        ),
        "connections": (
            _connections(requests, connections)
            if connections is not None and _usable(connections)
            else None
        ),
    }


def _redis(requests: int, redis: Result) -> Result:
    return {
        "commands": ratio(redis.get("total_commands", 0), requests),
        "new_connections": ratio(redis.get("connections_received", 0), requests),
        # Reads Redis did per request: commands / round_trips > 1 means pipelining or MGET.
        "round_trips": (
            None if redis.get("round_trips") is None else ratio(redis["round_trips"], requests)
        ),
        "by_command": {
            name: ratio(calls, requests) for name, calls in redis.get("commands", {}).items()
        },
    }


def _connections(requests: int, connections: Result) -> Result:
    return {
        "new_per_request": ratio(connections.get("new", 0), requests),
        "by_destination": {
            dest: ratio(n, requests) for dest, n in connections.get("by_destination", {}).items()
        },
    }


def _upstreams(requests: int, standins: Result) -> Result:
    ups: dict[str, dict[str, int]] = standins.get("upstreams", {})
    calls = sum(u.get("calls", 0) for u in ups.values())
    new = sum(u.get("new_connections", 0) for u in ups.values())
    return {
        "calls": ratio(calls, requests),
        # 1.0 = a new TCP (and TLS, in production) connection for every call: no keep-alive.
        "new_connections_per_call": ratio(new, calls),
        "by_upstream": {
            name: {
                "calls": ratio(u.get("calls", 0), requests),
                "new_connections_per_call": ratio(u.get("new_connections", 0), u.get("calls", 0)),
            }
            for name, u in sorted(ups.items())
        },
    }
