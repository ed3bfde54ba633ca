"""logging-overhead: a measurable share of a process's CPU goes to logging, or a log line
serialises a whole payload on every request.

py-spy's ``loop.logging`` (perfaudit/profile/loopthread.py) counts the loop thread's busy
samples with a logging frame anywhere on the stack (handlers, formatters, the service's own
formatter below them) or spent on an own line that calls a logger (``json.dumps(update)`` as
its argument is the log's cost too), with the own lines that called the logger. Older records
without it fall back to ``loop.blocking`` (the top entries only). The location is the own
line that logs; the fix is to log less per message, not to log faster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from perfaudit.analysis.findings import _stacks as st
from perfaudit.analysis.findings._base import Finding, Impact, NotChecked, Outcome, Rule

ID = "logging-overhead"
# Reported from this share of the process's busy loop samples and this much time per
# request. Recorded with every logging sample counted (webhook-text, 3 s, 100 and 250 Hz):
# optimized (an INFO line or two per request plus the request log) 7–14 % of busy samples,
# 0.3–0.7 ms/request, mostly the handler writing to stdout; lean-logging off is no larger
# (9–20 %): its extra cost is the payload, not the volume. 25 % keeps optimized out.
SHARE = 0.25
MIN_MS = 0.3
MIN_SAMPLES = 3
# A logger call that serialises an object into the message (the whole update, twice per
# message with lean-logging off) is reported from this many samples at that line, whatever
# its share: ~0.05 ms/request here, below any share a 3 s window resolves, but it runs on
# every request, grows with the payload and puts user data in the log. One sample could be a
# one-off (an error path); optimized has no such line at all.
PAYLOAD_SAMPLES = 2
_PAYLOAD = re.compile(r"\b(?:json\.dumps|orjson\.dumps|ujson\.dumps|pformat|pprint\.pformat)\(")
FIX = (
    "log identifiers and sizes, not whole payloads (no json.dumps of the request in a log "
    "line), keep per-request logs at DEBUG, and pass arguments lazily (log.info('%s', x), "
    "not f-strings)"
)


def _calls(v: st.LoopView) -> tuple[int, list[dict[str, Any]]] | None:
    """(logging samples, logger call sites) from ``loop.logging``, or from the top
    ``blocking`` entries of a record that has none."""
    rec = v.loop.get("logging")
    if isinstance(rec, Mapping):
        calls = [dict(c) for c in rec.get("calls") or []]
        return int(rec.get("samples") or 0), calls
    logging = [b for b in v.blocking if st.is_logging(b)]
    sites = st.by_own(logging, per_line=True)
    # The logger calls first: a formatter of the service's own is a place, not the cause.
    groups = [g for g in sites if st.is_logging({"own": g.site})] or sites
    calls = [{**g.site, "samples": g.samples} for g in groups]
    return sum(int(b.get("samples") or 0) for b in logging), calls


def _finding(
    entry: Mapping[str, Any], v: st.LoopView, title: str, samples: int,
    calls: Sequence[Mapping[str, Any]], extra: Mapping[str, Any],
) -> Finding:  # fmt: skip
    ms = v.ms_per_request(samples)
    return Finding.make(
        rule=ID,
        title=title,
        impact=Impact(round(ms, 3), "ms/request"),
        evidence={
            "window": f"py-spy {v.rate_hz:g} Hz on the {v.process}'s loop thread, "
            f"{v.loop.get('window_s')} s, {v.requests} requests (profiled run)",
            **extra,
            "samples": samples,
            "busy_samples": v.busy,
            "calls": [
                {"where": st.where_text(c), "code": c.get("code", ""), "samples": c.get("samples")}
                for c in calls[:3]
            ],
        },
        where=tuple(loc for c in calls[:3] if (loc := st.location(c, v.process))),
        fix=FIX,
        confirm=st.confirm(entry, f"the logging share of the {v.process}'s loop samples"),
    )


def check(entry: Mapping[str, Any]) -> Outcome:
    views = st.loops(entry)
    if isinstance(views, str):
        return NotChecked(ID, views)
    out: list[Finding] = []
    for v in views:
        got = _calls(v)
        if got is None:
            continue
        samples, calls = got
        share = samples / v.busy if v.busy else 0.0
        ms = v.ms_per_request(samples)
        if share >= SHARE and ms >= MIN_MS and samples >= MIN_SAMPLES:
            out.append(_finding(
                entry, v, f"logging takes {share:.0%} of the {v.process}'s loop time "
                f"({ms:.3g} ms per request)", samples, calls,
                {"share_of_busy_samples": round(share, 4)},
            ))  # fmt: skip
            continue
        payload = [
            c for c in calls
            if _PAYLOAD.search(str(c.get("code", ""))) and int(c.get("samples") or 0) >= PAYLOAD_SAMPLES
        ]  # fmt: skip
        if payload:
            n = sum(int(c.get("samples") or 0) for c in payload)
            out.append(_finding(
                entry, v, f"the {v.process} serialises a payload into a log line on the "
                f"request path ({st.where_text(payload[0])})", n, payload,
                {"share_of_busy_samples": round(n / v.busy, 4) if v.busy else 0.0,
                 "logging_samples": samples},
            ))  # fmt: skip
    return out


RULE = Rule(
    id=ID,
    title="logging overhead: share of CPU spent formatting and writing log records, "
    "or whole payloads serialised into log lines",
    check=check,
    place_decides=True,
)
