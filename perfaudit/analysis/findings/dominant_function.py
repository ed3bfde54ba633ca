"""dominant-function: one function of the service's own code takes most of a process's CPU.

Each busy, non-I/O sample of the loop thread (py-spy ``loop.blocking``) is attributed to its
innermost own-code frame, so a library call counts toward the own function that made it
(``re.compile`` inside ``clean`` is ``clean``'s). Only synchronous own lines count: below an
``await`` line the time is the client library's protocol work (redis, httpx), which the
round-trip and upstream rules judge; counted here it made ``JobQueue.enqueue`` "dominate"
the optimized service, which does little else. Logging samples are left to
logging-overhead and blocking I/O to blocking-io, so one cause gives one finding. Without a
loop record, py-spy's hotspots (own-code self time) are the fallback.

The loop record's ``own`` list (every busy sample summed per innermost own function, with
its synchronous and logging samples) is read when present: ``blocking`` keeps only the top
(leaf, own) pairs, and a function whose cost is spread over dozens of ``re`` leaves falls off
it. I/O samples come from ``blocking`` either way (blocking I/O sits in a few leaves).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perfaudit.analysis.findings import _stacks as st
from perfaudit.analysis.findings._base import Finding, Impact, NotChecked, Outcome, Rule

ID = "dominant-function"
# A function is dominant from this share of the process's CPU samples on the loop thread...
SHARE = 0.25
# ...and this much CPU per request (a 40 % share of 0.2 ms is not worth a finding). Recorded:
# optimized: top own function ≤ 15 % (the rest is spread over httpx/redis/uvicorn), text-
# fastpath off: the formatting functions ≥ 35 %; phase3: HttpClients._new ~80 % (an SSLContext
# per client), which is a real dominant function whatever switch fixes it.
MIN_MS = 0.5
MIN_SAMPLES = 5


def _from_own(entry: Mapping[str, Any], v: st.LoopView, cpu_total: int) -> list[Finding]:
    """From ``loop.own``: sync samples minus logging's and blocking I/O's, per function."""
    io_by_fn: dict[tuple[str, str], int] = {}
    for b in v.blocking:
        if st.io_kind(b) and st.is_sync(b):
            fn, file, _ = st.site_key(b.get("own"))
            io_by_fn[(fn, file)] = io_by_fn.get((fn, file), 0) + int(b.get("samples") or 0)
    ranked = []
    for o in v.loop.get("own") or []:
        key = (str(o.get("function", "")), str(o.get("file", "")))
        cpu = int(o.get("sync_samples") or 0) - int(o.get("logging_samples") or 0)
        ranked.append((max(cpu - io_by_fn.get(key, 0), 0), o))
    ranked.sort(key=lambda t: -t[0])
    out: list[Finding] = []
    for samples, o in ranked:
        share = samples / cpu_total
        ms = v.ms_per_request(samples)
        if share < SHARE or ms < MIN_MS or samples < MIN_SAMPLES:
            break  # sorted, most first
        # The location: the most sampled line that does not await (the sync work).
        lines = list(o.get("lines") or [])
        sync = [ln for ln in lines if st.is_sync({"own": {**o, "code": ln.get("code", "")}})]
        top = (sync or lines or [o])[0]
        site = {**o, "line": top.get("line"), "code": top.get("code", "")}
        loc = st.location(site, v.process)
        leaves = [str(lf.get("file", "")) for lf in o.get("leaf_files") or []]
        out.append(
            Finding.make(
                rule=ID,
                title=f"{o.get('function')} takes {share:.0%} of the {v.process}'s "
                f"CPU on the loop ({ms:.3g} ms per request)",
                impact=Impact(round(ms, 3), "ms/request"),
                evidence={
                    "window": f"py-spy {v.rate_hz:g} Hz on the {v.process}'s loop thread, "
                    f"{v.loop.get('window_s')} s, {v.requests} requests (profiled run)",
                    "share_of_cpu_samples": round(share, 4),
                    "samples": samples,
                    "cpu_samples": cpu_total,
                    "lines": lines,
                    "leaf_files": [
                        {"file": st.short_file(f), "samples": lf.get("samples")}
                        for f, lf in zip(leaves, o.get("leaf_files") or [], strict=True)
                    ],
                },
                where=(loc,) if loc else (),
                fix=_fix_for_leaves(leaves),
                confirm=st.confirm(
                    entry, f"{o.get('function')}'s share of the {v.process}'s loop samples and p50"
                ),
            )
        )
    return out


def _from_loop(entry: Mapping[str, Any], views: list[st.LoopView]) -> list[Finding]:
    out: list[Finding] = []
    for v in views:
        io = sum(int(b.get("samples") or 0) for b in v.blocking if st.io_kind(b))
        cpu_total = max(v.busy - io, 1)
        if v.loop.get("own") is not None:
            out.extend(_from_own(entry, v, cpu_total))
            continue
        cpu = [
            b for b in v.blocking
            if st.is_sync(b) and not st.io_kind(b) and not st.is_logging(b)
        ]  # fmt: skip
        for g in st.by_own(cpu):
            share = g.samples / cpu_total
            ms = v.ms_per_request(g.samples)
            if share < SHARE or ms < MIN_MS or g.samples < MIN_SAMPLES:
                break  # sorted, most first
            loc = st.location(g.site, v.process)
            lines = st.by_own(g.blocks or [], per_line=True)
            out.append(
                Finding.make(
                    rule=ID,
                    title=f"{g.site.get('function')} takes {share:.0%} of the {v.process}'s "
                    f"CPU on the loop ({ms:.3g} ms per request)",
                    impact=Impact(round(ms, 3), "ms/request"),
                    evidence={
                        "window": f"py-spy {v.rate_hz:g} Hz on the {v.process}'s loop thread, "
                        f"{v.loop.get('window_s')} s, {v.requests} requests (profiled run)",
                        "share_of_cpu_samples": round(share, 4),
                        "samples": g.samples,
                        "cpu_samples": cpu_total,
                        "lines": [
                            {
                                "line": ln.site.get("line"),
                                "code": ln.site.get("code", ""),
                                "samples": ln.samples,
                            }
                            for ln in lines[:3]
                        ],  # fmt: skip
                        "frames": st.frames_evidence(g.blocks or []),
                    },
                    where=(loc,) if loc else (),
                    fix=_fix(g),
                    confirm=st.confirm(
                        entry,
                        f"{g.site.get('function')}'s share of the "
                        f"{v.process}'s loop samples and p50",
                    ),  # fmt: skip
                )
            )
    return out


def _fix(g: st.Group) -> str:
    return _fix_for_leaves([str((b.get("leaf") or {}).get("file", "")) for b in g.blocks or []])


def _fix_for_leaves(leaves: list[str]) -> str:
    if any("/re/" in f.replace("\\", "/") or "/sre_" in f for f in leaves):
        return ("compile the regular expressions once, at import (re.compile at module level), "
                "and merge repeated passes over the text into one")  # fmt: skip
    if any(f.endswith("/ssl.py") for f in leaves):
        return ("create the client (and its SSLContext) once per process and reuse it; "
                "building one loads the CA bundle every time")  # fmt: skip
    if any("/json/" in f for f in leaves):
        return st.JSON_FIX
    return ("make this function cheaper (cache its result, do the work once, not per request) "
            "or move it off the loop with run_in_executor")  # fmt: skip


def _from_hotspots(entry: Mapping[str, Any]) -> Outcome:
    out: list[Finding] = []
    requests = st.profiled_requests(entry, st.PYSPY)
    for name, p in st.iter_processes(entry, st.PYSPY):
        hs = p.get("hotspots") or {}
        busy = 1.0 - float((hs.get("by_category") or {}).get("waiting", 0.0))
        total = float(hs.get("total") or 0.0)
        for h in hs.get("self") or []:
            if h.get("category") != "own" or busy <= 0:
                continue
            share = float(h.get("share") or 0.0) / busy
            ms = float(h.get("weight") or 0.0) / 100.0 * 1000.0 / requests if requests else 0.0
            if share >= SHARE and ms >= MIN_MS and total:
                loc = st.location(h, name)
                out.append(Finding.make(
                    rule=ID,
                    title=f"{h['function']} takes {share:.0%} of the {name}'s CPU (self time)",
                    impact=Impact(round(ms, 3), "ms/request"),
                    evidence={"window": "py-spy hotspots (self time; no loop record)",
                              "share_of_cpu_samples": round(share, 4)},
                    where=(loc,) if loc else (),
                    fix="make this function cheaper or move it off the loop",
                    confirm=st.confirm(entry, f"{h['function']}'s self share"),
                ))  # fmt: skip
    return out


def check(entry: Mapping[str, Any]) -> Outcome:
    views = st.loops(entry)
    if isinstance(views, list):
        return _from_loop(entry, views)
    if st.profiler_result(entry, st.PYSPY) is not None:
        return _from_hotspots(entry)
    return NotChecked(ID, "needs a py-spy profile: perfaudit run --profile py-spy")


RULE = Rule(
    id=ID,
    title="one own-code function dominating a process's CPU (library calls counted to it)",
    check=check,
    place_decides=True,
)
