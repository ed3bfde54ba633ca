"""blocking-io: a synchronous file, socket, sqlite, sleep or subprocess call on the event
loop of an async service, one finding per call site.

loop-blocked says *how long* the loop is held; this rule says *which call is sync I/O* in
async code, whatever its share. Busy samples of the loop thread (py-spy ``loop.blocking``) are
classified by their innermost frame (the library file, or the code of the line making the
call: ``time.sleep(``, ``sqlite3.connect(``, ``path.write_bytes(``...) and summed per own
call site. CPU work is left to loop-blocked and dominant-function. Only with ``--idle``: a
thread in a blocking syscall is not sampled without it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from perfaudit.analysis.findings import _stacks as st
from perfaudit.analysis.findings._base import Finding, Impact, NotChecked, Outcome, Rule

ID = "blocking-io"
# A call site is reported from this much loop time per request and at least MIN_SAMPLES
# samples (one stray sample at 100 Hz is 10 ms of wall time in the whole window, not a
# pattern). Recorded: optimized has no classified I/O site above 0.1 ms/request (its chunked
# writes run in a thread or are too short to be sampled); settings-cache off gives sqlite
# sites of ~0.5–1 ms each, stream-audio off whole-file writes of ~1 ms.
SITE_MS = 0.2
MIN_SAMPLES = 3

_WHAT = {
    "sleep": "time.sleep",
    "file": "synchronous file I/O",
    "sqlite": "synchronous SQLite",
    "network": "a synchronous network call",
    "subprocess": "a synchronous subprocess",
}


def check(entry: Mapping[str, Any]) -> Outcome:
    views = st.loops(entry)
    if isinstance(views, str):
        return NotChecked(ID, views)
    if not st.idle_sampled(views):
        return NotChecked(ID, "py-spy ran without --idle, so blocking calls were not sampled; "
                          + st.NEEDS_LOOP)  # fmt: skip
    out: list[Finding] = []
    for v in views:
        sites: dict[tuple[tuple[str, str, int], str], list[Mapping[str, Any]]] = defaultdict(list)
        for b in v.blocking:
            kind = st.io_kind(b)
            if kind is not None:
                site = b.get("own") or b.get("leaf") or {}
                sites[(st.site_key(site), kind)].append(b)
        for (_, kind), blocks in sites.items():
            samples = sum(int(b.get("samples") or 0) for b in blocks)
            ms = v.ms_per_request(samples)
            if samples < MIN_SAMPLES or ms < SITE_MS:
                continue
            site = blocks[0].get("own") or blocks[0].get("leaf") or {}
            loc = st.location(site, v.process)
            out.append(
                Finding.make(
                    rule=ID,
                    title=f"{_WHAT[kind]} on the {v.process}'s event loop in "
                    f"{st.where_text(site)}: {ms:.3g} ms per request",
                    impact=Impact(round(ms, 3), "ms/request"),
                    evidence={
                        "window": f"py-spy --idle {v.rate_hz:g} Hz on the {v.process}'s loop "
                        f"thread, {v.loop.get('window_s')} s, {v.requests} requests "
                        "(profiled run)",
                        "kind": kind,
                        "samples": samples,
                        "loop_samples": v.loop.get("samples"),
                        "code": site.get("code", ""),
                        "frames": st.frames_evidence(blocks),
                    },
                    where=(loc,) if loc else (),
                    fix=st.IO_FIX[kind],
                    confirm=st.confirm(
                        entry,
                        f"that {st.where_text(site)} is gone from the "
                        f"{v.process}'s loop frames (loop.blocking)",
                    ),  # fmt: skip
                )
            )
    return out


RULE = Rule(
    id=ID,
    title="sync file/socket/sqlite/sleep/subprocess calls on an async service's event loop",
    check=check,
    place_decides=True,
)
