"""Memory growth: a process's RSS rising with the requests it serves, and what it keeps.

RSS (4 Hz over the steady window) is fitted against time; growth is reported only when it
is real, not warm-up: the slope's 95 % interval excludes 0, the second half still grows at
least half as fast as the first (warm-up and a pool filling decay, a leak does not), and the
fitted growth exceeds allocator noise. The service's opt-in object probe (live objects and
loggers after gc.collect(), before and after the window) shows small leaks RSS hides.
memray's leak sites, when it ran, say where.
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
# The probe: a Logger per request is ~3 live objects and ~0.45 KB (tracemalloc, CPython 3.12).
LOGGER_BYTES = 450
OBJECT_BYTES = 64  # a lower bound for an unknown small object with its GC header
MIN_OBJECTS_PER_REQUEST = 0.5  # fewer is a cache filling or interned strings
MIN_OBJECTS = 100
FIX = (
    "find what is kept per request (memray's leak sites below, or `perfaudit run --profile "
    "memray`) and stop keeping it: no per-id logging.getLogger, bounded caches "
    "(functools.lru_cache(maxsize=...)), clear per-request registries"
)


def check(entry: Mapping[str, Any]) -> Outcome:
    procs = c.processes(entry)
    probe = _probe(entry)
    if not procs and probe is None:
        return NotChecked(
            ID,
            "no process samples (RSS) in this run: perfaudit samples the "
            "processes it starts or is given (target.process)",
        )
    rps = c.rate(entry)
    n = c.requests(entry)
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
                "leak_sites": _leaks(entry, name),
            },
            where=_where(entry, name),
            fix=FIX,
            confirm=c.confirm(entry, f"{name} RSS slope (server.process) over a longer window"),
        ))  # fmt: skip
    if probe is not None and n:
        found.extend(_from_probe(entry, probe, n))
    return found


def _probe(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    server = entry.get("server") or {}
    for key in ("memory", "memory_probe"):
        part = server.get(key)
        if c.usable(part) and isinstance(part.get("growth"), Mapping):
            return part
    return None


def _from_probe(entry: Mapping[str, Any], probe: Mapping[str, Any], n: int) -> list[Finding]:
    growth = probe["growth"]
    loggers = float(growth.get("loggers") or 0)
    objects = float(growth.get("gc_objects") or 0)
    if objects < MIN_OBJECTS or objects / n < MIN_OBJECTS_PER_REQUEST:
        return []
    per_1k = (loggers * LOGGER_BYTES + max(0.0, objects - 3 * loggers) * OBJECT_BYTES) / n
    per_1k = per_1k * 1000 / 2**20
    what = f"{loggers / n:.3g} loggers and " if loggers / n >= 0.5 else ""
    fix = FIX
    if loggers / n >= 0.5:
        fix = (
            "use module-level loggers and put the request id in the message or a "
            "LoggerAdapter/contextvar: logging keeps every getLogger(name) forever"
        )
    return [Finding.make(
        rule=ID,
        title=f"the service keeps {what}{objects / n:.3g} objects per request",
        impact=Impact(round(per_1k, 3), "MB/1k requests"),
        evidence={
            "window": "service memory probe (live objects after gc.collect()), window edges",
            "requests": n, "gc_objects_growth": int(objects), "loggers_growth": int(loggers),
            "estimate": f"{LOGGER_BYTES} B per Logger, {OBJECT_BYTES} B per other object",
            "leak_sites": _leaks(entry, "service"),
        },
        where=_where(entry, "service"),
        fix=fix,
        confirm=c.confirm(entry, "the memory probe's gc_objects and loggers growth"),
    )]  # fmt: skip


def _leaks(entry: Mapping[str, Any], process: str, top: int = 3) -> list[dict[str, Any]]:
    """memray's sites still allocated at the end (own code first), when memray ran."""
    prof = ((entry.get("profiles") or {}).get("memray") or {}).get("processes") or {}
    sites = list((prof.get(process) or {}).get("leaks") or ())
    sites.sort(key=lambda s: (s.get("own") is None, -int(s.get("bytes") or 0)))
    return [
        {k: s.get(k) for k in ("function", "file", "line", "bytes", "count", "own")}
        for s in sites[:top]
    ]


def _where(entry: Mapping[str, Any], process: str) -> tuple[Location, ...]:
    out = []
    for s in _leaks(entry, process):
        site = s.get("own") or s
        if site.get("function"):
            out.append(Location(str(site["function"]), str(site.get("file") or ""),
                                site.get("line"), process))  # fmt: skip
    return tuple(out) or (c.endpoint_location(entry, process),)


RULE = Rule(
    id=ID,
    title="memory growth: RSS slope per 1k requests (not warm-up), objects kept per request, "
    "memray's leak sites",
    check=check,
)
