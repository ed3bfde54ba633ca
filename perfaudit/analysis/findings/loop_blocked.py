"""loop-blocked: the event loop is held by work that is not awaiting.

Evidence, per process with an event loop (py-spy's ``loop`` record): the busy samples of the
loop thread whose innermost own-code line has no ``await`` — the service's code was in a
synchronous call there, so the loop could serve nobody until it returned. Summed per request
(sampled seconds / the profiled run's requests) that is the time the loop is held per request.
For the service, the loop-lag probe (or canary) of the unprofiled run is the second witness;
without a profile, lag alone can report the symptom but not the place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from perfaudit.analysis.findings import _stacks as st
from perfaudit.analysis.findings._base import Finding, Impact, NotChecked, Outcome, Rule

ID = "loop-blocked"
# Synchronous time per request the loop may be held before it is reported. Recorded on the
# reference service (tests/data/findings/stack/ and benchmarks/bench_diagnosis_reference.py):
# optimized ≤ 0.35 ms/request on either process, up to 0.67 once (e2e-flow, PendingStore.claim);
# settings-cache off (sqlite per lookup) 0.93 ms; phase3 ≥ 10 ms. 1 ms (the "medium" bound of
# ms/request) is what a 1 000 req/s service would lose as a whole core; below it the sync
# I/O that blocking-io reports per call site (from 0.2 ms) still shows up.
HELD_MS = 1.0
# Lag alone (no profile): p99 of the probe. asyncio's debug mode warns at 100 ms per callback
# and clinic doctor at a 10 ms median; a 50 ms probe catches a short block only when they
# overlap, so the p99 is the figure that sees it. Optimized: ≤ 2.1 ms, phase3: 69–225 ms.
LAG_P99_MS = 20.0
TOP_SITES = 3


def fix_for(blocks: Sequence[Mapping[str, Any]]) -> str:
    """The change that suits what the top sync work is."""
    top = blocks[0]
    kind = st.io_kind(top)
    if kind:
        return st.IO_FIX[kind]
    leaf = top.get("leaf") or {}
    if str(leaf.get("file", "")).endswith("/ssl.py"):
        own = (top.get("own") or {}).get("code", "")
        return (
            "create the client (and its SSLContext, which loads the CA bundle each time) once "
            f"per process and reuse it, instead of per call (`{own}`)"
        )
    if st.is_json(top):
        return st.JSON_FIX
    return st.CPU_FIX


def _profile_findings(entry: Mapping[str, Any], views: list[st.LoopView]) -> list[Finding]:
    lag = st.lag(entry)
    out: list[Finding] = []
    for v in views:
        sync = [b for b in v.blocking if st.is_sync(b)]
        samples = sum(int(b.get("samples") or 0) for b in sync)
        held = v.ms_per_request(samples)
        if held < HELD_MS:
            continue
        sites = st.by_own(sync, per_line=True)[:TOP_SITES]
        where = tuple(loc for g in sites if (loc := st.location(g.site, v.process)) is not None)
        top_blocks = sorted(sync, key=lambda b: -int(b.get("samples") or 0))
        evidence: dict[str, Any] = {
            "window": f"py-spy {'--idle ' if v.loop.get('idle_sampled') else ''}"
            f"{v.rate_hz:g} Hz on the {v.process}'s loop thread, {v.loop.get('window_s')} s, "
            f"{v.requests} requests (profiled run)",
            "held_ms_per_request": round(held, 3),
            "sync_samples": samples,
            "busy_samples": v.busy,
            "loop_samples": v.loop.get("samples"),
            "busy_share": v.loop.get("busy_share"),
            "top": st.frames_evidence(top_blocks),
            "p50_ms": (entry.get("summary") or {}).get("p50_ms"),
        }
        if lag is not None and v.process == "service":
            p99, mean = st.lag_ms(lag)
            evidence["loop_lag"] = {"p99_ms": p99, "mean_ms": mean, "source": lag.get("source",
                                    "probe"), "window": "the unprofiled run"}  # fmt: skip
        first = st.where_text(sites[0].site) if sites else "its own code"
        out.append(
            Finding.make(
                rule=ID,
                title=f"the {v.process}'s event loop is held {held:.3g} ms per request, "
                f"mostly in {first}",
                impact=Impact(round(held, 3), "ms/request"),
                evidence=evidence,
                where=where,
                fix=fix_for(top_blocks),
                confirm=st.confirm(entry, f"the {v.process}'s loop busy share and loop_lag p99"),
            )
        )
    return out


def _lag_finding(entry: Mapping[str, Any], lag: Mapping[str, Any]) -> list[Finding]:
    p99, mean = st.lag_ms(lag)
    if p99 < LAG_P99_MS:
        return []
    return [
        Finding.make(
            rule=ID,
            title=f"the service's event loop lags {p99:.3g} ms at p99",
            # A request arriving at a random moment waits, on average, the mean lag.
            impact=Impact(round(mean, 3), "ms/request"),
            evidence={
                "window": "loop-lag " + str(lag.get("source", "probe")) + ", unprofiled run",
                "lag_p99_ms": p99,
                "lag_mean_ms": mean,
                "samples": lag.get("samples"),
                "p50_ms": (entry.get("summary") or {}).get("p50_ms"),
            },  # fmt: skip
            where=(),  # lag says "blocked", not where: py-spy:idle does
            fix="profile with py-spy:idle to find the synchronous call holding the loop",
            confirm=st.confirm(entry, "loop_lag p99"),
        )
    ]


def check(entry: Mapping[str, Any]) -> Outcome:
    views = st.loops(entry)
    if isinstance(views, list):
        return _profile_findings(entry, views)
    lag = st.lag(entry)
    if lag is not None:
        return _lag_finding(entry, lag)
    return NotChecked(ID, views + ", or the loop-lag probe (wrap the app, or target.canary)")


RULE = Rule(
    id=ID,
    title="event loop blocked: time per request the loop is held by code that is not awaiting",
    check=check,
    place_decides=True,
)
