"""What the event-loop thread was doing, from py-spy's per-thread stacks.

In an asyncio service a coroutine is on the loop thread's stack only while it runs, so every
sample of that thread whose stack goes beyond the loop's own machinery (``run_forever`` →
``_run_once`` → ``select``, or uvloop's C loop seen as ``Runner.run``) is a moment the loop
could not serve anyone else: handler code, library code, or a blocking call (``time.sleep``,
sync file/socket I/O, sqlite3). py-spy skips a thread sitting in a blocking syscall unless it
runs with ``--idle``, so without it only CPU-busy moments are seen (``idle_sampled: false``).

The summary is stored with the results and read by the diagnosis rules, which must stay pure
functions of the results: the source line of each location is read here, at collection time.
"""

from __future__ import annotations

import linecache
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from typing import Any

from perfaudit.profile.hotspots import Classifier, Frame, Stack, ThreadStack

TOP = 10
TOP_OWN = 15  # own functions kept in ``own``
TOP_LOG_CALLS = 5  # logger call sites kept in ``logging``
_TOP_DETAIL = 3  # lines and leaf files kept per own function
# A line that awaits: below it the loop runs the client library between awaits, not a
# synchronous call (the same test as the rules' ``is_sync``).
_AWAIT = re.compile(r"\bawait\b|\basync\s+(?:with|for)\b")
# Logging libraries, by file: any of their frames on a stack makes the sample logging's.
_LOG_FILES = ("/logging/", "/structlog/", "/loguru/")
# A logger call on the own line: ``log.info("%s", json.dumps(update))`` spends its time in
# json/, evaluating the argument, before any logging frame exists.
_LOG_CALL = re.compile(
    r"\b(?:log|logger|logging|_log|LOG|[a-z_]*log)\.(?:debug|info|warning|warn|error|exception|"
    r"critical|log)\("
)
# Frames that drive the loop: the innermost one on a stack marks where the loop hands control
# to callbacks. Under uvloop the loop runs in C, below its caller (Runner.run, arq's run).
_LOOP_DRIVERS: dict[str, frozenset[str]] = {
    "asyncio/runners.py": frozenset({"run"}),
    "asyncio/base_events.py": frozenset({"run_forever", "run_until_complete"}),
    "uvloop/__init__.py": frozenset({"run"}),
    "arq/worker.py": frozenset({"run"}),
}
# The loop's own scheduling and polling, between the driver and a callback.
_LOOP_MACHINERY: dict[str, frozenset[str]] = {
    **_LOOP_DRIVERS,
    "asyncio/base_events.py": frozenset({"run_forever", "run_until_complete", "_run_once"}),
    "asyncio/events.py": frozenset({"_run"}),
    "selectors.py": frozenset({"select", "poll", "_select"}),
}

SourceReader = Callable[[str, int], str]


def _matches(frame: Frame, table: dict[str, frozenset[str]]) -> bool:
    path = frame.file.replace("\\", "/")
    name = frame.function.rsplit(".", 1)[-1]  # Runner.run, BaseEventLoop.run_forever
    return any(path.endswith("/" + f) and name in fs for f, fs in table.items())


def driver_index(stack: Stack) -> int | None:
    """Index of the innermost loop-driving frame, or None when the stack has none."""
    for i in range(len(stack) - 1, -1, -1):
        if _matches(stack[i], _LOOP_DRIVERS):
            return i
    return None


def find_loop_thread(stacks: Sequence[ThreadStack], pid: int | None = None) -> tuple[str, str]:
    """(thread id, how it was found): the thread with the most samples inside a run loop, else
    the main thread (named MainThread, or whose id is the pid), else the busiest thread."""
    in_loop: Counter[str] = Counter()
    total: Counter[str] = Counter()
    names: dict[str, str | None] = {}
    for s in stacks:
        total[s.thread] += s.weight
        names.setdefault(s.thread, s.name)
        if driver_index(s.stack) is not None:
            in_loop[s.thread] += s.weight
    if in_loop:
        return in_loop.most_common(1)[0][0], "event loop frames"
    for tid, name in names.items():
        if name == "MainThread" or (pid is not None and tid == str(pid)):
            return tid, "main thread"
    if total:
        return total.most_common(1)[0][0], "busiest thread"
    return "", "no samples"


def read_source(file: str, line: int) -> str:
    linecache.checkcache(file)  # the file as it is now, not as an earlier read cached it
    return linecache.getline(file, line).strip()


def _location(frame: Frame, source: SourceReader) -> dict[str, Any]:
    code = source(frame.file, frame.line) if frame.file and frame.line else ""
    return {"function": frame.function, "file": frame.file, "line": frame.line, "code": code}


def _is_python(frame: Frame) -> bool:
    return frame.file.endswith((".py", ".pyx")) and frame.line is not None


def _is_log_file(frame: Frame) -> bool:
    path = frame.file.replace("\\", "/")
    return any(m in path for m in _LOG_FILES)


class _OwnTotals:
    """Busy samples of one own function over all its leaves (``loop.own``)."""

    __slots__ = ("samples", "sync", "logging", "lines", "leaf_files")

    def __init__(self) -> None:
        self.samples = 0.0
        self.sync = 0.0
        self.logging = 0.0
        self.lines: Counter[int] = Counter()
        self.leaf_files: Counter[str] = Counter()


def _own_entries(
    totals: dict[tuple[str, str], _OwnTotals],
    n: float,
    code_of: Callable[[str, int], str],
    top: int,
) -> list[dict[str, Any]]:
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1].samples, kv[0]))
    out = []
    for (fn, file), t in ranked[:top]:
        lines = [
            {"line": ln, "code": code_of(file, ln), "samples": int(w)}
            for ln, w in sorted(t.lines.items(), key=lambda kv: (-kv[1], kv[0]))[:_TOP_DETAIL]
        ]
        out.append(
            {
                "function": fn,
                "file": file,
                "line": lines[0]["line"] if lines else None,
                "code": lines[0]["code"] if lines else "",
                "samples": int(t.samples),
                "sync_samples": int(t.sync),
                "logging_samples": int(t.logging),
                "share": round(t.samples / n, 4) if n else 0.0,
                "lines": lines,
                "leaf_files": [
                    {"file": f, "samples": int(w)}
                    for f, w in sorted(t.leaf_files.items(), key=lambda kv: (-kv[1], kv[0]))[
                        :_TOP_DETAIL
                    ]
                ],
            }
        )
    return out


def summarize(
    stacks: Sequence[ThreadStack],
    classifier: Classifier,
    *,
    idle_sampled: bool,
    rate_hz: int,
    window_s: float,
    pid: int | None = None,
    top: int = TOP,
    source: SourceReader = read_source,
) -> dict[str, Any]:
    """The ``loop`` record of one process (see the module doc): the loop thread's samples,
    how many were busy (beyond the loop's polling), and the busiest locations, grouped by the
    innermost Python frame (``leaf``) and the innermost frame of the service's own code.

    ``blocking`` keeps only the top (leaf, own) pairs, so work spread over many leaves (a
    regex pass is dozens of ``re`` frames, a log record a dozen ``logging`` ones) falls off
    it. ``own`` sums every busy sample per innermost own function (``sync_samples``: on a line
    without ``await``; ``logging_samples``: of those, logging's), and ``logging`` counts the
    samples spent logging with the own lines that called the logger."""
    tid, found_by = find_loop_thread(stacks, pid)
    n = 0.0
    busy = 0.0
    groups: dict[tuple[Frame, Frame | None], float] = defaultdict(float)
    own_totals: dict[tuple[str, str], _OwnTotals] = defaultdict(_OwnTotals)
    log_samples = 0.0
    log_json = 0.0
    log_calls: Counter[tuple[str, str, int]] = Counter()
    codes: dict[tuple[str, int], str] = {}

    def code_of(file: str, line: int) -> str:
        key = (file, line)
        if key not in codes:
            codes[key] = source(file, line) if file and line else ""
        return codes[key]

    name: str | None = None
    for s in stacks:
        if s.thread != tid or not s.stack:
            continue
        name = name or s.name
        n += s.weight
        d = driver_index(s.stack)
        above = s.stack[d + 1 :] if d is not None else s.stack
        if d is not None and all(_matches(f, _LOOP_MACHINERY) for f in above):
            continue  # the loop polling or scheduling: free to serve
        if d is None and classifier.is_waiting(s.stack[-1]):
            continue  # no loop on this stack (the fallback thread), and it was waiting
        busy += s.weight
        python = [f for f in above if _is_python(f)] or list(above)
        leaf = python[-1]
        own_i = next(
            (i for i in range(len(python) - 1, -1, -1) if classifier.category(python[i]) == "own"),
            None,
        )
        own = python[own_i] if own_i is not None else None
        groups[(leaf, own)] += s.weight
        # Logging: a logging frame anywhere above the loop, or an own line that calls a
        # logger (its argument is being built). The caller is the own frame outside the
        # outermost logging frame (a formatter of the service's own is not the call site).
        first_log = next((i for i, f in enumerate(python) if _is_log_file(f)), None)
        caller = None
        if first_log is not None:
            caller = next(
                (f for f in reversed(python[:first_log]) if classifier.category(f) == "own"), None
            )
        elif own is not None and _LOG_CALL.search(code_of(own.file, own.line or 0)):
            caller = own
        logged = first_log is not None or caller is not None
        if logged:
            log_samples += s.weight
            if any("/json/" in f.file.replace("\\", "/") for f in python):
                log_json += s.weight
            if caller is not None:
                log_calls[(caller.function, caller.file, caller.line or 0)] += s.weight
        if own is not None:
            t = own_totals[(own.function, own.file)]
            t.samples += s.weight
            t.lines[own.line or 0] += s.weight
            if own_i is not None and own_i < len(python) - 1:
                t.leaf_files[python[-1].file] += s.weight
            if not _AWAIT.search(code_of(own.file, own.line or 0)):
                t.sync += s.weight
                if logged:
                    t.logging += s.weight
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1], kv[0][0].file, kv[0][0].line or 0))
    blocking = [
        {
            "samples": int(w),
            "share": round(w / n, 4) if n else 0.0,
            "leaf": _location(leaf, source),
            "own": _location(own, source) if own else None,
            "category": "own" if classifier.category(leaf) == "own" else "library",
        }
        for (leaf, own), w in ranked[:top]
    ]
    expected = rate_hz * window_s
    return {
        "thread": tid or None,
        "thread_name": name,
        "found_by": found_by,
        "idle_sampled": idle_sampled,
        "rate_hz": rate_hz,
        "window_s": round(window_s, 3),
        "samples": int(n),
        "busy": int(busy),
        "busy_share": round(busy / n, 4) if n else 0.0,
        # Busy samples over those the window should have had: the share of wall time the loop
        # was busy, meaningful without --idle too (then busy_share is near 1 by construction).
        "busy_wall_share": round(min(1.0, busy / expected), 4) if expected else None,
        "blocking": blocking,
        "own": _own_entries(own_totals, n, code_of, TOP_OWN),
        "logging": {
            "samples": int(log_samples),
            "share": round(log_samples / busy, 4) if busy else 0.0,  # of the busy samples
            "json_samples": int(log_json),
            "calls": [
                {
                    "function": fn,
                    "file": file,
                    "line": line,
                    "code": code_of(file, line),
                    "samples": int(w),
                }
                for (fn, file, line), w in sorted(
                    log_calls.items(), key=lambda kv: (-kv[1], kv[0])
                )[:TOP_LOG_CALLS]
            ],  # fmt: skip
        },
    }
