"""Reading sampled stacks out of a results entry, for the stack rules (loop-blocked,
blocking-io, dominant-function, logging-overhead, sequential-awaits).

The rules see no stacks, only what the profilers stored: per process, py-spy's ``hotspots``
and ``loop`` record (perfaudit/profile/loopthread.py: the event-loop thread's busy samples,
grouped by innermost Python frame ``leaf`` and innermost own-code frame ``own``, each with its
source line ``code``), and pyinstrument's ``awaits`` (perfaudit/profile/pyinstrument.py).
Times per request divide sampled time by the requests of the *profiled* run, the window the
samples came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from perfaudit.analysis.findings._base import Location

PYSPY = "py-spy"
PYINSTRUMENT = "pyinstrument"
NEEDS_LOOP = (
    "needs py-spy:idle on the service (the event-loop thread's samples): "
    "perfaudit run --profile py-spy:idle"
)

IoKind = Literal["sleep", "file", "sqlite", "network", "subprocess"]

# What each kind of blocking call should become (the finding's fix).
IO_FIX: dict[str, str] = {
    "sleep": "replace time.sleep with await asyncio.sleep (or drop the wait)",
    "file": (
        "move the file I/O off the loop: await asyncio.to_thread(...) or aiofiles, and stream "
        "large files in chunks instead of whole-file read_bytes/write_bytes"
    ),
    "sqlite": (
        "do not open SQLite on the loop per call: cache the values (read once, refresh every "
        "few seconds) or run the query with await asyncio.to_thread(...)"
    ),
    "network": (
        "use an async client (httpx.AsyncClient, aiohttp, redis.asyncio) shared per process "
        "instead of a synchronous socket/requests/urllib call"
    ),
    "subprocess": "use asyncio.create_subprocess_exec instead of subprocess.run/check_output",
}
CPU_FIX = (
    "make the work smaller or move it off the loop: await loop.run_in_executor(None, ...) "
    "(a process pool for pure-Python CPU work)"
)
JSON_FIX = (
    "serialise less (log or send ids, not whole payloads), use orjson, or offload large "
    "encodes with run_in_executor"
)

# Frames are classified by the library file of the leaf, then by the code of the innermost
# line (the leaf's, or the own frame's when the leaf is that line). Awaited lines never block.
_LIB_KIND: tuple[tuple[str, IoKind], ...] = (
    ("/sqlite3/", "sqlite"),
    ("/subprocess.py", "subprocess"),
    ("/socket.py", "network"),
    ("/http/client.py", "network"),
    ("/site-packages/requests/", "network"),
    ("/site-packages/urllib3/", "network"),
    ("/shutil.py", "file"),
)
_PATHLIB_IO = frozenset(
    {"read_bytes", "write_bytes", "read_text", "write_text", "open", "Path.read_bytes",
     "Path.write_bytes", "Path.read_text", "Path.write_text", "Path.open"}
)  # fmt: skip
_CODE_KIND: tuple[tuple[re.Pattern[str], IoKind], ...] = (
    (re.compile(r"(?<![\w.])(?:time\.)?sleep\("), "sleep"),
    (re.compile(r"sqlite3?\.|\.(?:execute|executemany|executescript|fetchone|fetchall|commit)\("),
     "sqlite"),
    (re.compile(r"subprocess\.|os\.system\(|os\.popen\("), "subprocess"),
    (re.compile(r"requests\.(?:get|post|put|patch|delete|head|request)\(|urlopen\(|"
                r"socket\.|\.(?:recv|sendall|makefile)\(|http\.client|HTTPConnection\("),
     "network"),
    (re.compile(r"(?<![\w.])open\(|\.(?:read_bytes|write_bytes|read_text|write_text)\(|"
                r"\.open\(|(?<![\w])f\.(?:read|write|flush)\(|os\.(?:fsync|read|write)\("),
     "file"),
)  # fmt: skip
# Libraries whose write()/read() lines are non-blocking transport calls, never file I/O.
_ASYNC_LIBS = ("/asyncio/", "/anyio/", "/uvicorn/", "/h11/", "/httpcore/", "/httpx/", "/redis/")


def _norm(path: str) -> str:
    return (path or "").replace("\\", "/")


def io_kind(block: Mapping[str, Any]) -> IoKind | None:
    """The blocking I/O kind of one ``loop.blocking`` entry, or None for CPU work."""
    leaf: Mapping[str, Any] = block.get("leaf") or {}
    own: Mapping[str, Any] = block.get("own") or {}
    path = _norm(str(leaf.get("file", "")))
    for marker, kind in _LIB_KIND:
        if marker in path:
            return kind
    if path.endswith("/pathlib.py") and str(leaf.get("function", "")) in _PATHLIB_IO:
        return "file"
    # The line that made the call: the leaf when it is code of the service or a non-async
    # library; the own frame's line too (sqlite3.connect is C, so the leaf is the own line).
    lines = []
    if not any(lib in path for lib in _ASYNC_LIBS):
        lines.append(str(leaf.get("code", "")))
    if own and own.get("file") == leaf.get("file") and own.get("line") == leaf.get("line"):
        lines.append(str(own.get("code", "")))
    for code in lines:
        if not code or re.search(r"\bawait\b", code):
            continue
        for pattern, kind in _CODE_KIND:
            if pattern.search(code):
                return kind
    return None


_AWAIT = re.compile(r"\bawait\b|\basync\s+(?:with|for)\b")


def is_sync(block: Mapping[str, Any]) -> bool:
    """Whether the own line of a busy sample makes a synchronous call (no ``await``): then
    everything below it holds the loop until it returns. Below an awaiting line the time is
    the client library's work between awaits, the I/O rules' business."""
    own = block.get("own") or {}
    return bool(own.get("function")) and not _AWAIT.search(str(own.get("code", "")))


def is_json(block: Mapping[str, Any]) -> bool:
    leaf = _norm(str((block.get("leaf") or {}).get("file", "")))
    return "/json/" in leaf or "orjson" in leaf or "ujson" in leaf


_LOG_CALL = re.compile(
    r"\b(?:log|logger|logging|_log|LOG|[a-z_]*log)\.(?:debug|info|warning|warn|error|exception|"
    r"critical|log)\("
)


def is_logging(block: Mapping[str, Any]) -> bool:
    """Whether a busy sample was spent logging: its leaf is in the logging package, or the
    own line that led to it is a logger call (``log.info("%s", json.dumps(update))`` spends
    its time in json/, below a logging line)."""
    leaf = _norm(str((block.get("leaf") or {}).get("file", "")))
    if "/logging/" in leaf or "/structlog/" in leaf or "/loguru/" in leaf:
        return True
    own = block.get("own") or {}
    return bool(_LOG_CALL.search(str(own.get("code", ""))))


@dataclass(frozen=True)
class LoopView:
    """One process's event-loop record, with the requests of the window it was sampled in."""

    process: str
    loop: Mapping[str, Any]
    requests: int

    @property
    def rate_hz(self) -> float:
        return float(self.loop.get("rate_hz") or 100)

    @property
    def busy(self) -> int:
        return int(self.loop.get("busy") or 0)

    @property
    def blocking(self) -> Sequence[Mapping[str, Any]]:
        return self.loop.get("blocking") or ()

    def ms_per_request(self, samples: float) -> float:
        """Sampled loop time per request: samples / rate, over the window's requests."""
        return samples / self.rate_hz * 1000.0 / self.requests if self.requests else 0.0


def profiler_result(entry: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    prof = (entry.get("profiles") or {}).get(name)
    return prof if isinstance(prof, Mapping) and prof.get("processes") else None


def profiled_requests(entry: Mapping[str, Any], profiler: str) -> int:
    """Requests of the run the profiler sampled (its own run), else of the entry's run."""
    run = (entry.get("profiled_runs") or {}).get(profiler) or {}
    summary = run.get("summary") or entry.get("summary") or {}
    return int(summary.get("requests") or summary.get("ok") or 0)


def loops(entry: Mapping[str, Any]) -> list[LoopView] | str:
    """Each profiled process's loop record, or why there is none (a NotChecked reason)."""
    prof = profiler_result(entry, PYSPY)
    if prof is None:
        return NEEDS_LOOP
    requests = profiled_requests(entry, PYSPY)
    out = [
        LoopView(name, p["loop"], requests)
        for name, p in prof["processes"].items()
        if isinstance(p.get("loop"), Mapping) and p["loop"].get("samples")
    ]
    if not out:
        return "py-spy stored no event-loop summary (loop); " + NEEDS_LOOP
    if not requests:
        return "the profiled run completed no requests"
    return out


def idle_sampled(views: Sequence[LoopView]) -> bool:
    return any(v.loop.get("idle_sampled") for v in views)


def location(site: Mapping[str, Any] | None, process: str | None = None) -> Location | None:
    if not site or not site.get("function"):
        return None
    line = site.get("line")
    return Location(
        function=str(site["function"]),
        file=str(site.get("file") or ""),
        line=int(line) if line is not None else None,
        process=process,
    )


def site_key(site: Mapping[str, Any] | None) -> tuple[str, str, int]:
    site = site or {}
    return (str(site.get("function", "")), str(site.get("file", "")), int(site.get("line") or 0))


@dataclass
class Group:
    """Busy samples that share a key (an own function, or an own call site)."""

    site: Mapping[str, Any]  # the own frame (first seen): function, file, line, code
    samples: int = 0
    blocks: list[Mapping[str, Any]] | None = None


def by_own(blocks: Sequence[Mapping[str, Any]], *, per_line: bool = False) -> list[Group]:
    """Busy samples summed per innermost own-code function (or per own line), most first.
    Samples without an own frame (the loop's libraries alone) are left out."""
    groups: dict[tuple[str, str, int], Group] = {}
    for b in blocks:
        own = b.get("own")
        if not own or not own.get("function"):
            continue
        fn, file, line = site_key(own)
        key = (fn, file, line if per_line else 0)
        g = groups.setdefault(key, Group(site=own, blocks=[]))
        g.samples += int(b.get("samples") or 0)
        assert g.blocks is not None
        g.blocks.append(b)
    return sorted(groups.values(), key=lambda g: (-g.samples, site_key(g.site)))


def short_file(path: str) -> str:
    """A path as people read it in a title: below site-packages, or from the package root."""
    p = _norm(path)
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in p:
            return p.split(marker, 1)[1]
    m = re.search(r"/lib/python3\.\d+/(.*)$", p)
    if m:
        return m.group(1)
    for marker in ("/perfaudit/", "/tests/"):
        if marker in p:
            return marker.strip("/") + "/" + p.split(marker, 1)[1]
    return p.rsplit("/", 2)[-1] if p.count("/") > 2 else p


def where_text(site: Mapping[str, Any]) -> str:
    line = site.get("line")
    file = short_file(str(site.get("file", "")))
    return f"{site.get('function')} ({file}:{line})" if line else f"{site.get('function')} ({file})"


def frames_evidence(blocks: Sequence[Mapping[str, Any]], top: int = 3) -> list[dict[str, Any]]:
    """The top blocking entries, compact, for a finding's evidence."""
    out = []
    for b in blocks[:top]:
        leaf, own = b.get("leaf") or {}, b.get("own") or {}
        out.append(
            {
                "samples": int(b.get("samples") or 0),
                "leaf": f"{short_file(str(leaf.get('file', '')))}:{leaf.get('line')}",
                "leaf_code": leaf.get("code", ""),
                "own": where_text(own) if own else None,
                "own_code": own.get("code", "") if own else None,
            }
        )
    return out


def lag(entry: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The service's loop lag (probe or canary) of the unprofiled run, when it measured any."""
    lag_ = (entry.get("server") or {}).get("loop_lag")
    if not isinstance(lag_, Mapping) or "error" in lag_ or not lag_.get("samples"):
        return None
    return lag_


def lag_ms(lag_: Mapping[str, Any]) -> tuple[float, float]:
    """(p99, mean) of the delay the loop added. A canary's figures include its own request
    time, so its unloaded baseline is taken off."""
    base = float(lag_.get("baseline_ms") or 0.0) if lag_.get("source") == "canary" else 0.0
    p99 = max(0.0, float(lag_.get("p99_ms") or 0.0) - base)
    mean = max(0.0, float(lag_.get("mean_ms") or lag_.get("p50_ms") or 0.0) - base)
    return p99, mean


def confirm(entry: Mapping[str, Any], metric: str) -> str:
    name = entry.get("name") or "the scenario"
    file = str(entry.get("file") or f"scenarios/{name}.yaml")
    file = "scenarios/" + file.split("/scenarios/", 1)[1] if "/scenarios/" in file else file
    return f"rerun {name} (perfaudit run {file} --profile py-spy:idle) and check {metric}"


def iter_processes(entry: Mapping[str, Any], profiler: str) -> Iterator[tuple[str, Mapping]]:
    prof = profiler_result(entry, profiler)
    for name, p in ((prof or {}).get("processes") or {}).items():
        if isinstance(p, Mapping):
            yield name, p


def callers(
    entry: Mapping[str, Any], leaf_matches: Callable[[Mapping[str, Any]], bool], top: int = 3
) -> tuple[Location, ...]:
    """The own-code frames whose loop samples ran inside matching library code (redis-py,
    a connect) — where a counter rule's pattern is in the code; empty without a profile."""
    views = loops(entry)
    if isinstance(views, str):
        return ()
    sites: list[Location] = []
    for v in views:
        matched = [b for b in v.blocking if leaf_matches(b.get("leaf") or {})]
        for g in by_own(matched)[:top]:
            loc = location(g.site, v.process)
            if loc is not None:
                sites.append(loc)
    return tuple(sites)
