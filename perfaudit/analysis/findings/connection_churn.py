"""Connection churn: new connections per request where a pool would reuse a few.

Three sources, most exact first: the connect() shim's count of every outbound TCP connection
of the processes perfaudit started (``server.connections``, by destination); else Redis's
``total_connections_received`` delta and the stand-ins' new connections per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perfaudit.analysis.findings import _counters as c
from perfaudit.analysis.findings import _stacks
from perfaudit.analysis.findings._base import Finding, Impact, Location, NotChecked, Outcome, Rule

ID = "connection-churn"
# A pool opens at most its size once and then reuses: phase3 opens 0.9-2.8 per request per
# destination, optimized 0-0.04 (a second pooled connection when jobs overlapped). 0.1 is
# 2.5x above the pools and 9x below the churn; the count floor keeps a pool's warm-up in a
# short window (a few connections over a dozen requests) from reading as churn.
PER_REQUEST_MIN = 0.1
COUNT_MIN = 5
# Stand-ins count per call: keep-alive gives ~0 new connections per call, none gives 1.
PER_CALL_MIN = 0.5
FIX_REDIS = (
    "create one redis.asyncio.ConnectionPool (or client) per process at start-up and share "
    "it; do not build a client per request or per store"
)
FIX_HTTP = (
    "create one httpx.AsyncClient (or aiohttp.ClientSession) per upstream per process and "
    "reuse it, so connections are kept alive; close it at shutdown"
)


def check(entry: Mapping[str, Any]) -> Outcome:
    n = c.requests(entry)
    if not n:
        return NotChecked(ID, "the window completed no requests")
    server = entry.get("server") or {}
    exact = server.get("connections")
    if c.usable(exact) and exact.get("by_destination") is not None:
        return _from_exact(entry, exact, n)
    redis = server.get("redis")
    standins = server.get("standins")
    if not c.usable(redis) and not c.usable(standins):
        return NotChecked(ID, (
            "no connection counts: perfaudit counts connect() exactly for a target it starts "
            "(target.start), and reads Redis's INFO with target.redis_url"
        ))  # fmt: skip
    found: list[Finding] = []
    if c.usable(redis):
        new = int(redis.get("connections_received") or 0)
        if new >= COUNT_MIN and new / n >= PER_REQUEST_MIN:
            found.append(_finding(
                entry, "Redis", new, n, FIX_REDIS,
                {"source": "server.redis.connections_received"}, "service",
            ))  # fmt: skip
    if c.usable(standins):
        for name, u in sorted((standins.get("upstreams") or {}).items()):
            calls, new = int(u.get("calls") or 0), int(u.get("new_connections") or 0)
            if new >= COUNT_MIN and calls and new / calls >= PER_CALL_MIN:
                found.append(_finding(
                    entry, f"upstream {name}", new, n, FIX_HTTP,
                    {"source": "server.standins (stand-in accept counts)", "calls": calls,
                     "new_connections_per_call": round(new / calls, 3)}, None,
                ))  # fmt: skip
    return found


def _from_exact(entry: Mapping[str, Any], exact: Mapping[str, Any], n: int) -> Outcome:
    labels = _labels(entry, exact.get("by_destination") or {})
    found = []
    for dest, new in sorted((exact.get("by_destination") or {}).items(), key=lambda kv: -kv[1]):
        new = int(new)
        if new < COUNT_MIN or new / n < PER_REQUEST_MIN:
            continue
        name = labels.get(dest)
        is_redis = name == "Redis"
        label = f"{name} ({dest})" if name else dest
        procs = exact.get("by_process") or {}
        found.append(_finding(
            entry, label, new, n, FIX_REDIS if is_redis else FIX_HTTP,
            {"source": f"server.connections ({exact.get('source', 'exact')})",
             "destination": dest, "by_process": dict(procs)},
            max(procs, key=lambda p: procs[p]) if procs else None,
        ))  # fmt: skip
    return found


def _labels(entry: Mapping[str, Any], by_dest: Mapping[str, int]) -> dict[str, str]:
    """Names for destinations: the counter (Redis's accepted connections, a stand-in's) whose
    count of new connections equals the destination's (the shim sees addresses only)."""
    server = entry.get("server") or {}
    counts: dict[str, int] = {}
    if c.usable(server.get("redis")):
        counts["Redis"] = int(server["redis"].get("connections_received") or 0)
    if c.usable(server.get("standins")):
        for name, u in (server["standins"].get("upstreams") or {}).items():
            counts[f"upstream {name}"] = int(u.get("new_connections") or 0)
    out: dict[str, str] = {}
    for dest, new in by_dest.items():
        close = [k for k, v in counts.items() if v and abs(v - int(new)) <= max(1, 0.1 * v)]
        if len(close) == 1:
            out[dest] = close[0]
    return out


# Library frames that open a connection: asyncio's streams and loop, socket, redis-py's
# client and connection set-up, an HTTP client being built.
CONNECT_FUNCTIONS = ("open_connection", "create_connection", "sock_connect", "connect",
                     "from_url", "AsyncClient.__init__", "Client.__init__", "ClientSession.__init__")  # fmt: skip


REDIS_FILES = ("/redis/",)
HTTP_FILES = ("/httpx/", "/httpcore/", "/anyio/", "/aiohttp/", "/h11/", "/ssl.py")


def _connects(leaf: Mapping[str, Any]) -> bool:
    function = str(leaf.get("function", ""))
    return any(function == f or function.endswith("." + f) for f in CONNECT_FUNCTIONS)


def _opens_redis(leaf: Mapping[str, Any]) -> bool:
    """Samples in redis-py: building a client per request is what opens its connections."""
    return any(m in str(leaf.get("file", "")) for m in REDIS_FILES)


def _opens_http(leaf: Mapping[str, Any]) -> bool:
    """Samples in an HTTP client or TLS set-up, or in a connect of any kind."""
    return _connects(leaf) or any(m in str(leaf.get("file", "")) for m in HTTP_FILES)


def _finding(
    entry: Mapping[str, Any], what: str, new: int, n: int, fix: str, extra: dict[str, Any],
    process: str | None,
) -> Finding:  # fmt: skip
    per = new / n
    endpoint = c.endpoint_location(entry, process or "service")
    opens = _opens_redis if fix == FIX_REDIS else _opens_http
    where = _stacks.callers(entry, opens) or (
        Location(endpoint.function, endpoint.file, None, process),
    )
    return Finding.make(
        rule=ID,
        title=f"{c.endpoint(entry)} opens {per:.3g} new connections per request to {what}",
        impact=Impact(round(per, 3), "connections/request"),
        evidence={"window": "steady window counters / requests", "requests": n,
                  "new_connections": new, **extra},
        where=where,
        fix=fix,
        confirm=c.confirm(entry, f"new connections per request to {what}"),
        topic="redis" if fix == FIX_REDIS else "http",
    )  # fmt: skip


RULE = Rule(
    id=ID,
    title="connection churn: new Redis, upstream and outbound TCP connections per request",
    check=check,
    place_decides=True,
)
