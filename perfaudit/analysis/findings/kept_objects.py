"""Objects kept per request: what the service still holds after a full collection, counted by
its opt-in probe (live objects and loggers after ``gc.collect()``, at the window's edges).

A leak of a few hundred bytes per request (a Logger per request id is ~450 B) takes thousands
of requests to show in RSS, past allocator noise; the count of live objects shows it in one
short window. memray's leak sites inside logging, or the own lines that call logging, say
where loggers are made.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perfaudit.analysis.findings import _counters as c
from perfaudit.analysis.findings import _stacks
from perfaudit.analysis.findings._base import Finding, Impact, Location, NotChecked, Outcome, Rule
from perfaudit.analysis.findings.memory_growth import FIX, leak_sites

ID = "kept-objects"
# A Logger per request is ~3 live objects and ~0.45 KB (tracemalloc, CPython 3.12).
LOGGER_BYTES = 450
OBJECT_BYTES = 64  # a lower bound for an unknown small object with its GC header
MIN_OBJECTS_PER_REQUEST = 0.5  # fewer is a cache filling or interned strings
MIN_OBJECTS = 100
FIX_LOGGERS = (
    "use module-level loggers and put the request id in the message or a "
    "LoggerAdapter/contextvar: logging keeps every getLogger(name) forever"
)


def check(entry: Mapping[str, Any]) -> Outcome:
    probe = _probe(entry)
    if probe is None:
        return NotChecked(ID, (
            "no object counts: the service answers GET /__perfaudit/memory when it runs with "
            "PERFAUDIT_INSTRUMENT=1 (the reference service; wrap your app with "
            "perfaudit.refservice.instrument.InstrumentedASGI)"
        ))  # fmt: skip
    n = c.requests(entry)
    growth = probe["growth"]
    loggers = float(growth.get("loggers") or 0)
    objects = float(growth.get("gc_objects") or 0)
    if not n or objects < MIN_OBJECTS or objects / n < MIN_OBJECTS_PER_REQUEST:
        return []
    per_1k = (loggers * LOGGER_BYTES + max(0.0, objects - 3 * loggers) * OBJECT_BYTES) / n
    per_1k = per_1k * 1000 / 2**20
    kept_loggers = loggers / n >= 0.5
    what = f"{loggers / n:.3g} loggers and " if kept_loggers else ""
    return [Finding.make(
        rule=ID,
        title=f"the service keeps {what}{objects / n:.3g} objects per request",
        impact=Impact(round(per_1k, 3), "MB/1k requests"),
        evidence={
            "window": "service memory probe (live objects after gc.collect()), window edges",
            "requests": n, "gc_objects_growth": int(objects), "loggers_growth": int(loggers),
            "estimate": f"{LOGGER_BYTES} B per Logger, {OBJECT_BYTES} B per other object",
            "leak_sites": leak_sites(entry, "service"),
        },
        where=_where(entry, kept_loggers),
        fix=FIX_LOGGERS if kept_loggers else FIX,
        confirm=c.confirm(entry, "the memory probe's gc_objects and loggers growth"),
    )]  # fmt: skip


def _probe(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    part = (entry.get("server") or {}).get("memory")
    if c.usable(part) and isinstance(part.get("growth"), Mapping):
        return part
    return None


def _where(entry: Mapping[str, Any], loggers: bool) -> tuple[Location, ...]:
    """Kept loggers: memray's sites inside logging (by the own frame that asked), else the own
    lines py-spy saw calling logging; other objects: memray's own-code sites."""
    sites = leak_sites(entry, "service", top=50)
    if loggers:
        sites = [s for s in sites if "/logging/" in str(s.get("file") or "") and s.get("own")]
        sites = sites[:3] or _logging_callers(entry)
    out = []
    for s in sites[:3]:
        site = s.get("own") or s
        if site.get("function"):
            out.append(Location(str(site["function"]), str(site.get("file") or ""),
                                site.get("line"), "service"))  # fmt: skip
    return tuple(out) or (c.endpoint_location(entry, "service"),)


def _logging_callers(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    views = _stacks.loops(entry)
    for view in views if not isinstance(views, str) else []:
        if view.process == "service":
            return list((view.loop.get("logging") or {}).get("calls") or ())[:3]
    return []


# Where loggers are made is a guess from who logs: the catalog's link names the switch.
RULE = Rule(id=ID, title="objects the service keeps per request (its object probe)", check=check)
