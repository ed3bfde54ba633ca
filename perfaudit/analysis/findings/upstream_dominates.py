"""An upstream whose time dominates a request's latency.

Reference stand-ins: the calls per request of each route times its mean latency (measured
per call when the stand-in delta records it, else the configured latency + jitter/2) is the
upstream's time per request. It is on the request's path only if it fits inside the
request's latency: calls the worker makes after the webhook answered (a job) add more
upstream time per request than the request took, and are left out. External targets:
pyinstrument's share of request time inside an HTTP client (httpx, aiohttp).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Any

from perfaudit.analysis.findings import _counters as c
from perfaudit.analysis.findings import _stacks
from perfaudit.analysis.findings._base import Finding, Impact, Location, NotChecked, Outcome, Rule

ID = "upstream-dominates"
# "Dominates": at least a quarter of the median latency and 10 ms per request. phase3's
# callback waits 60 ms of Telegram in ~130-200 ms (30-45 %), its webhook_info 60 ms in
# 115-250 ms; optimized answers first (the call moves to a job) or caches for 5 s.
SHARE_MIN = 0.25
MS_MIN = 10.0
# Upstream time above the request's median latency by this factor is not on the path.
ON_PATH_SLACK = 1.25
HTTP_CLIENT_FILES = ("/httpx/", "/httpcore/", "/aiohttp/")
HTTP_CLIENT_PACKAGES = frozenset({"httpx", "httpcore", "aiohttp"})
FIX = (
    "take the call off the request path (answer first and send it from a background job), "
    "cache its answer for a few seconds, or run independent calls concurrently "
    "(asyncio.gather)"
)


def check(entry: Mapping[str, Any]) -> Outcome:
    if entry.get("kind") not in ("http", "flow"):
        return NotChecked(ID, f"a {entry.get('kind')} scenario has no request path to check")
    # The median: one loop stall inflates the mean for every route alike.
    median = float((entry.get("summary") or {}).get("p50_ms") or 0.0)
    n = c.requests(entry)
    if not n or median <= 0:
        return NotChecked(ID, "the window completed no requests")
    standins = (entry.get("server") or {}).get("standins")
    if c.usable(standins):
        return _from_standins(entry, standins, n, median)
    return _from_pyinstrument(entry, median)


def _route_ms(entry: Mapping[str, Any], route: str, r: Mapping[str, Any]) -> float:
    if r.get("duration_ms") is not None and r.get("calls"):
        return float(r["duration_ms"]) / float(r["calls"])  # measured by the stand-in
    from perfaudit.upstreams.config import DEFAULT_ROUTES

    base = DEFAULT_ROUTES.get(route)
    latency = base.latency_ms if base else 0.0
    jitter = base.jitter_ms if base else 0.0
    patches = ((entry.get("scenario") or {}).get("standins") or {}).get("routes") or {}
    for pattern, patch in patches.items():
        if fnmatch.fnmatch(route, pattern) and isinstance(patch, Mapping):
            latency = float(patch.get("latency_ms", latency))
            jitter = float(patch.get("jitter_ms", jitter))
    return latency + jitter / 2.0


def _from_standins(
    entry: Mapping[str, Any], standins: Mapping[str, Any], n: int, mean: float
) -> list[Finding]:
    from perfaudit.collect.standins import upstream_of

    per_up: dict[str, dict[str, Any]] = {}
    for route, r in (standins.get("routes") or {}).items():
        up = upstream_of(route)
        if up is None or not r.get("calls"):
            continue
        ms = float(r["calls"]) / n * _route_ms(entry, route, r)
        u = per_up.setdefault(up, {"ms": 0.0, "routes": {}})
        u["ms"] += ms
        u["routes"][route] = {"calls_per_request": round(r["calls"] / n, 3),
                              "ms_per_request": round(ms, 2)}  # fmt: skip
    found = []
    for up, u in sorted(per_up.items(), key=lambda kv: -kv[1]["ms"]):
        ms = u["ms"]
        if ms > ON_PATH_SLACK * mean or ms < MS_MIN or ms < SHARE_MIN * mean:
            continue
        found.append(_finding(entry, up, ms, mean, {
            "window": "steady window, server.standins calls x per-call latency / requests",
            "requests": n, "p50_ms": round(mean, 2), "routes": u["routes"],
        }, (c.endpoint_location(entry),)))  # fmt: skip
    return found


def _from_pyinstrument(entry: Mapping[str, Any], mean: float) -> Outcome:
    prof = _stacks.profiler_result(entry, _stacks.PYINSTRUMENT)
    if prof is None:
        return NotChecked(ID, (
            "no upstream timings: reference stand-ins record them; for your own service run "
            "--profile pyinstrument (asyncio loop) to see time awaiting HTTP clients"
        ))  # fmt: skip
    sites = _client_awaits(prof)
    if sites is not None:
        return _from_awaits(entry, sites, mean)
    cum = (prof.get("hotspots") or {}).get("cumulative") or ()
    client = [h for h in cum if any(m in str(h.get("file", "")) for m in HTTP_CLIENT_FILES)]
    if not client:
        return []
    top = max(client, key=lambda h: float(h.get("share") or 0.0))
    share = float(top.get("share") or 0.0)
    ms = share * mean
    if share < SHARE_MIN or ms < MS_MIN:
        return []
    where = Location(str(top.get("function")), str(top.get("file") or ""), top.get("line"),
                     "service")  # fmt: skip
    return [_finding(entry, "an HTTP client", ms, mean, {
        "window": "pyinstrument (requests mode) share of request time, profiled run",
        "share": round(share, 3), "p50_ms": round(mean, 2), "frame": top.get("function"),
    }, (where,))]  # fmt: skip


def _client_awaits(prof: Mapping[str, Any]) -> list[tuple[Mapping[str, Any], float]] | None:
    """(own line, its await seconds inside an HTTP client) from pyinstrument's ``awaits``;
    None when the profile has no ``awaits`` (older runs, thread mode)."""
    service = ((prof.get("processes") or {}).get("service") or {}).get("awaits")
    if not isinstance(service, Mapping) or "sites" not in service:
        return None
    out = []
    for site in service.get("sites") or ():
        seconds = sum(
            float(i.get("seconds") or 0)
            for i in site.get("into") or ()
            if i.get("package") in HTTP_CLIENT_PACKAGES
        )
        if seconds > 0:
            out.append((site, seconds / float(service.get("request_seconds") or 1.0)))
    return out


def _from_awaits(
    entry: Mapping[str, Any], sites: list[tuple[Mapping[str, Any], float]], median: float
) -> list[Finding]:
    """The own lines whose awaits inside an HTTP client take a quarter of the request."""
    found = []
    for site, share in sites:
        ms = share * median
        if share < SHARE_MIN or ms < MS_MIN:
            continue
        where = Location(str(site.get("function")), str(site.get("file") or ""),
                         site.get("line"), "service")  # fmt: skip
        found.append(_finding(entry, "an HTTP upstream", ms, median, {
            "window": "pyinstrument (requests mode): await time inside the HTTP client per "
                      "own line, profiled run",
            "share": round(share, 3), "p50_ms": round(median, 2), "code": site.get("code"),
        }, (where,)))  # fmt: skip
    # Only the innermost own line has the client as its callee: an outer line that awaits
    # a helper of its own counts as "own", so one call is reported once.
    return found


def _finding(
    entry: Mapping[str, Any], up: str, ms: float, mean: float, evidence: dict[str, Any],
    where: tuple[Location, ...],
) -> Finding:  # fmt: skip
    return Finding.make(
        rule=ID,
        title=f"{c.endpoint(entry)} waits {ms:.3g} ms per request on {up} "
        f"({ms / mean:.0%} of its median latency)",
        impact=Impact(round(ms, 2), "ms/request"),
        evidence=evidence,
        where=where,
        fix=FIX,
        confirm=c.confirm(entry, f"mean latency and {up} calls per request"),
    )


RULE = Rule(
    id=ID,
    title="an upstream's time dominating request latency (calls on the request path)",
    check=check,
)
