"""Memory growth: a process's RSS rising with the requests it serves, and what it keeps.

RSS (4 Hz over the steady window) is fitted against time; growth is reported only when it
is real, not warm-up: the slope's 95 % interval excludes 0, the second half still grows at
least half as fast as the first (warm-up and a pool filling decay, a leak does not), and the
fitted growth exceeds allocator noise. memray's leak sites, when it ran, say where. A leak
too small for RSS in a short window is kept-objects' (the service's object probe).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perfaudit.analysis.findings import _counters as c
from perfaudit.analysis.findings import unbounded_queue
from perfaudit.analysis.findings._base import Finding, Impact, Location, NotChecked, Outcome, Rule

ID = "memory-growth"
MIN_SAMPLES = 8  # 2 s at 4 Hz
NOISE_MB = 2.0  # arenas, the first big response, a pool growing: a few MB come and go
DECAY_RATIO = 0.5  # second half's slope / first half's: a leak keeps its pace
MIN_MB_PER_1K = 0.1  # the "medium" bound: less is not worth a ticket
FIX = (
    "find what is kept per request (memray's leak sites below, or `perfaudit run --profile "
    "memray`) and stop keeping it: no per-id logging.getLogger, bounded caches "
    "(functools.lru_cache(maxsize=...)), clear per-request registries"
)


def check(entry: Mapping[str, Any]) -> Outcome:
    procs = c.processes(entry)
    if not procs:
        return NotChecked(
            ID,
            "no process samples (RSS) in this run: perfaudit samples the "
            "processes it starts or is given (target.process)",
        )
    rps = c.rate(entry)
    found: list[Finding] = []
    # A worker whose queue backs up holds ever more jobs in flight: its RSS rises with the
    # backlog (unbounded-queue reports that), not with requests served.
    backlogged = entry.get("kind") == "job" and bool(unbounded_queue._job_backlog(entry))
    for name, proc in sorted(procs.items()):
        if backlogged and name == "worker":
            continue
        tl = [s for s in proc.get("timeline") or () if s.get("rss_mb") is not None]
        if len(tl) < MIN_SAMPLES or rps <= 0:
            continue
        t = [float(s["t"]) for s in tl]
        y = [float(s["rss_mb"]) for s in tl]
        whole = c.trend(t, y)
        half = len(t) // 2
        first, second = c.trend(t[:half], y[:half]), c.trend(t[half:], y[half:])
        if whole is None or first is None or second is None:
            continue
        per_1k = whole.slope / rps * 1000.0
        sustained = first.slope <= 0 or second.slope >= DECAY_RATIO * first.slope
        if not (whole.low > 0 and sustained and whole.rise >= NOISE_MB
                and per_1k >= MIN_MB_PER_1K):  # fmt: skip
            continue
        found.append(Finding.make(
            rule=ID,
            title=f"{name} RSS grows {per_1k:.3g} MB per 1k requests",
            impact=Impact(round(per_1k, 3), "MB/1k requests"),
            evidence={
                "window": "steady window, server.process timeline (4 Hz)", "process": name,
                "slope_mb_per_s": round(whole.slope, 4),
                "slope_ci95": [round(whole.low, 4), round(whole.high, 4)],
                "p": whole.p, "growth_mb": round(whole.rise, 2),
                "first_half_slope": round(first.slope, 4),
                "second_half_slope": round(second.slope, 4), "rps": round(rps, 2),
                "leak_sites": leak_sites(entry, name),
            },
            where=_where(entry, name),
            fix=FIX,
            confirm=c.confirm(entry, f"{name} RSS slope (server.process) over a longer window"),
        ))  # fmt: skip
    return found


def leak_sites(entry: Mapping[str, Any], process: str, top: int = 3) -> list[dict[str, Any]]:
    """memray's sites still allocated at the end (own code first), when memray ran."""
    prof = ((entry.get("profiles") or {}).get("memray") or {}).get("processes") or {}
    sites = list((prof.get(process) or {}).get("leaks") or ())
    sites.sort(key=lambda s: (s.get("own") is None, -int(s.get("bytes") or 0)))
    return [
        {k: s.get(k) for k in ("function", "file", "line", "bytes", "count", "own")}
        for s in sites[:top]
    ]


def _where(entry: Mapping[str, Any], process: str) -> tuple[Location, ...]:
    """memray's leak sites (own code first), else the endpoint."""
    out = []
    for s in leak_sites(entry, process):
        site = s.get("own") or s
        if site.get("function"):
            out.append(Location(str(site["function"]), str(site.get("file") or ""),
                                site.get("line"), process))  # fmt: skip
    return tuple(out) or (c.endpoint_location(entry, process),)


RULE = Rule(
    id=ID,
    title="memory growth: RSS slope per 1k requests (not warm-up), memray's leak sites",
    check=check,
    place_decides=True,
)
