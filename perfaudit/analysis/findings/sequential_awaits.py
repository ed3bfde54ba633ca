"""sequential-awaits: independent awaits run one after another in one function.

Read from pyinstrument's async-aware profile in ``requests`` mode: time a coroutine spends
awaiting is an ``[await]`` frame under the line that awaited, so a function with two or more
awaiting lines that each take a real part of the request, and together most of it, awaited
them in turn. ``asyncio.gather`` would show one awaiting line. Whether the calls depend on
each other (the second needs the first's answer) the profile cannot say; the finding asks.

Reads ``profiles.pyinstrument.processes.service.awaits`` (perfaudit/profile/pyinstrument.py):
``{"requests", "request_seconds", "sites": [{"function", "file", "line", "code", "seconds",
"share"}]}``, one site per own-code line that awaited, ``share`` of the summed request time.

pyinstrument profiles what runs in the ASGI app only; the reference worker's awaits
(concurrent-awaits: ``_transcribe``) are outside it. There the stand-ins are the witness, as
spans are for Sentry's consecutive-HTTP detector: ``server.standins.sequences`` pairs each
chat's consecutive upstream calls, and a pair whose second call always starts after the first
ended, soon after, is two awaits in turn.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import perfaudit
from perfaudit.analysis.findings import _stacks as st
from perfaudit.analysis.findings._base import Finding, Impact, Location, NotChecked, Outcome, Rule

ID = "sequential-awaits"
# Each awaiting line must take this share of the request time, and the lines together this
# much: two 15 ms calls in a 32 ms request are 47 % each and 94 % together; a Redis GET next
# to a slow upstream call (3 % beside 90 %) is not a pair worth gathering. Sentry's
# consecutive-DB detector asks each span ≥ 30 ms and the saving ≥ 10 % of the DB time.
SITE_SHARE = 0.15
SUM_SHARE = 0.5

# Stand-in call pairs (reference targets). A pair is reported when, over at least
# MIN_GROUPS chats, the second call started after the first had ended in SEQ_SHARE of them,
# each call takes MIN_CALL_MS (p50) and the median gap is at most MAX_GAP_MS. Recorded
# (webhook-voice, 3 s): phase3 🎤 sendMessage → getFile 11/11 sequential, gap 223 ms (the
# worker's loop is held by per-call SSL contexts), 53 + 52 ms; optimized 0/22 (gathered).
# Optimized's getFile → ⏳ sendMessage is 13/13 sequential but 1.16 s apart: the download,
# speech-to-text and forwarding run in between (calls with no chat id), so not consecutive
# awaits. Sentry's consecutive-HTTP detector: ≥ 3 spans each ≥ 1 s, ≤ 10 s apart; ours is
# for calls of tens of ms, where two are worth gathering. Same-route pairs (the chunks of a
# long reply) must keep their order and are left out.
MIN_GROUPS = 5
SEQ_SHARE = 0.9
MIN_CALL_MS = 10.0
MAX_GAP_MS = 500.0
_HANDLER = str(Path(perfaudit.__file__).parent / "refservice" / "handler.py")
# Where the reference service makes each pair of calls (the stand-ins see routes, not code).
REFERENCE_PAIRS: dict[tuple[str, str], Location] = {
    ("telegram.sendMessage", "telegram.getFile"): Location("_transcribe", _HANDLER),
    ("telegram.answerCallbackQuery", "telegram.sendMessage"): Location(
        "handle_callback_query", _HANDLER
    ),
}


def _standin_findings(entry: Mapping[str, Any], seqs: Mapping[str, Any]) -> list[Finding]:
    requests = int((entry.get("summary") or {}).get("requests") or 0)
    out: list[Finding] = []
    for p in seqs.get("pairs") or []:
        groups, seq = int(p.get("groups") or 0), int(p.get("sequential") or 0)
        first_ms, then_ms = float(p.get("first_ms_p50") or 0), float(p.get("then_ms_p50") or 0)
        gap = float(p.get("gap_ms_p50") or 0.0)
        if (p.get("first") == p.get("then") or groups < MIN_GROUPS or seq < SEQ_SHARE * groups
                or min(first_ms, then_ms) < MIN_CALL_MS or gap > MAX_GAP_MS):  # fmt: skip
            continue
        # Overlapped, the pair would take as long as the longer call: the shorter is saved.
        saved = min(first_ms, then_ms)
        ms = saved * seq / requests if requests else saved
        loc = REFERENCE_PAIRS.get((str(p["first"]), str(p["then"])))
        where = (Location(loc.function, loc.file, None, "worker"),) if loc else ()
        out.append(
            Finding.make(
                rule=ID,
                title=f"{p['then']} waits for {p['first']} in {seq} of {groups} chats "
                f"({first_ms:.3g} + {then_ms:.3g} ms one after the other)"
                + (f" in {loc.function}" if loc else ""),
                impact=Impact(round(ms, 3), "ms/request"),
                evidence={
                    "window": "stand-ins' call log, consecutive calls per chat (unprofiled run)",
                    **{
                        k: p.get(k)
                        for k in (
                            "first",
                            "then",
                            "groups",
                            "sequential",
                            "overlapped",
                            "gap_ms_p50",
                            "first_ms_p50",
                            "then_ms_p50",
                        )
                    },
                    "requests": requests,
                    "note": "the job's latency, not the webhook's: the calls are the worker's",
                },  # fmt: skip
                where=where,
                fix="if the second call does not need the first's answer, start them together: "
                "await asyncio.gather(first(), second()) (or a TaskGroup)",
                confirm=st.confirm(
                    entry, "standins.sequences (overlapped) and the job latency"
                ).replace(" --profile py-spy:idle", ""),
            )
        )
    return out


def check(entry: Mapping[str, Any]) -> Outcome:
    prof = st.profiler_result(entry, st.PYINSTRUMENT)
    seqs = ((entry.get("server") or {}).get("standins") or {}).get("sequences")
    standin = (
        _standin_findings(entry, seqs) if isinstance(seqs, Mapping) and "pairs" in seqs else None
    )
    if prof is None:
        if standin is not None:
            return standin
        return NotChecked(ID, "needs pyinstrument in requests mode: perfaudit run "
                          "--profile pyinstrument:mode=requests (the ASGI hook on)")  # fmt: skip
    out: list[Finding] = list(standin or [])
    mean_ms = float((entry.get("summary") or {}).get("mean_ms") or 0.0)
    for name, p in st.iter_processes(entry, st.PYINSTRUMENT):
        awaits = p.get("awaits")
        if isinstance(awaits, Mapping):
            awaits = awaits.get("sites")
        if awaits is None:
            if standin is not None:
                continue
            return NotChecked(ID, "pyinstrument stored no per-line await summary (awaits); "
                              "this perfaudit does not record it yet")  # fmt: skip
        if p.get("mode") != "requests":
            if standin is not None:
                continue
            return NotChecked(ID, "pyinstrument ran in process mode: awaits are only "
                              "attributed per request in mode=requests")  # fmt: skip
        by_fn: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
        for a in awaits:
            if float(a.get("share") or 0.0) >= SITE_SHARE:
                by_fn[(str(a.get("function")), str(a.get("file")))].append(a)
        for sites in by_fn.values():
            lines = {a.get("line") for a in sites}
            total = sum(float(a.get("share") or 0.0) for a in sites)
            if len(lines) < 2 or total < SUM_SHARE:
                continue
            sites = sorted(sites, key=lambda a: int(a.get("line") or 0))
            # Run together, they would take as long as the longest one.
            saved = total - max(float(a.get("share") or 0.0) for a in sites)
            ms = saved * mean_ms
            out.append(
                Finding.make(
                    rule=ID,
                    title=f"{sites[0]['function']} awaits {len(sites)} calls one after another "
                    f"({total:.0%} of the request); run together they would save ~{ms:.3g} ms",
                    impact=Impact(round(ms, 3), "ms/request"),
                    evidence={
                        "window": "pyinstrument mode=requests, asyncio loop (profiled run)",
                        "sites": [
                            {
                                "line": a.get("line"),
                                "code": a.get("code", ""),
                                "share": a.get("share"),
                            }
                            for a in sites
                        ],  # fmt: skip
                        "sum_share": round(total, 4),
                        "mean_ms": mean_ms,
                    },
                    where=tuple(loc for a in sites if (loc := st.location(a, name))),
                    fix="if the calls are independent, run them together: "
                    "a, b = await asyncio.gather(call_a(), call_b()) (or a TaskGroup)",
                    confirm=st.confirm(
                        entry, "p50 and the function's await lines (pyinstrument)"
                    ).replace("py-spy:idle", "pyinstrument:mode=requests"),  # fmt: skip
                )
            )
    return out


RULE = Rule(
    id=ID,
    title="sequential awaits of independent calls that asyncio.gather could overlap",
    check=check,
    place_decides=True,
)
