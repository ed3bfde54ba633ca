"""Hotspots from sampled stacks: top functions by self and by cumulative share, each with
file:line and a category — the service's own code, libraries (site-packages, the standard
library, built-ins, perfaudit's probes) or waiting.

Inputs are weighted stacks, root first: py-spy's collapsed stacks (``--format raw``, weight =
samples) and pyinstrument's frame records (weight = seconds). A sample is *waiting* when its
leaf is a blocking call (selectors, locks, queues, an ``[await]``) or the event loop's own
native code: under uvloop the loop runs in C, so py-spy sees only ``Runner.run`` there and
cannot tell polling from libuv's socket work (``py-spy:native`` splits them).
"""

from __future__ import annotations

import re
import sysconfig
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Category = Literal["own", "library", "waiting"]
CATEGORIES: tuple[Category, ...] = ("own", "library", "waiting")
TOP = 15


@dataclass(frozen=True)
class Frame:
    function: str
    file: str = ""
    line: int | None = None


Stack = tuple[Frame, ...]

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")
_WAIT_FILES: dict[str, frozenset[str]] = {
    "selectors.py": frozenset({"select", "poll", "_select"}),
    "threading.py": frozenset({"wait", "join", "_wait_for_tstate_lock", "acquire"}),
    "queue.py": frozenset({"get"}),
    "concurrent/futures/thread.py": frozenset({"_worker"}),
    # The event loop's own native code (uvloop) as seen from Python.
    "asyncio/runners.py": frozenset({"run"}),
    "asyncio/base_events.py": frozenset({"run_forever", "run_until_complete"}),
    "uvloop/__init__.py": frozenset({"run"}),
    "arq/worker.py": frozenset({"run"}),  # the reference worker's loop driver
}
_WAIT_NATIVE = frozenset(
    {
        "epoll_wait", "epoll_pwait", "poll", "ppoll", "select", "pselect", "nanosleep",
        "clock_nanosleep", "pthread_cond_wait", "pthread_cond_timedwait", "sem_wait",
        "sem_timedwait", "futex_wait", "__futex_abstimed_wait_common", "do_futex_wait",
    }
)  # fmt: skip
_SYNTHETIC_WAIT = frozenset({"[await]", "[out-of-context]"})


def parse_frame(text: str) -> Frame:
    """``function (file:line)`` as py-spy writes it; anything else is a bare name."""
    m = _FRAME.match(text)
    if not m:
        return Frame(text)
    line = m.group("line")
    return Frame(m.group("function"), m.group("file"), int(line) if line else None)


def parse_collapsed(text: str) -> list[tuple[Stack, float]]:
    """Collapsed stacks (``a;b;c 12`` per line, root first). py-spy's ``thread (tid): name``
    and ``process ...`` prefixes (``--threads``, ``--subprocesses``) are dropped."""
    out: list[tuple[Stack, float]] = []
    for raw in text.splitlines():
        stack_text, _, count = raw.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        parts = [p for p in stack_text.split(";") if p]
        while parts and (parts[0].startswith(("thread (", "process ")) or "(" not in parts[0]):
            parts.pop(0)  # thread/process labels and bare thread names
        if parts:
            out.append((tuple(parse_frame(p) for p in parts), float(count)))
    return out


@dataclass(frozen=True)
class ThreadStack:
    """One collapsed line of ``py-spy record --threads``: the thread it was sampled on."""

    thread: str  # py-spy's thread id (the OS thread id on Linux); "" when the line has none
    name: str | None  # the Python thread name when py-spy knows it ("MainThread")
    stack: Stack
    weight: float


_THREAD = re.compile(r"^thread \((?P<id>[^)]*)\)(?::\s*(?P<name>.*))?$")


def parse_collapsed_threads(text: str) -> list[ThreadStack]:
    """Like :func:`parse_collapsed`, keeping the ``thread (tid): name`` label of each line
    (``--threads``). ``process ...`` labels (``--subprocesses``) are dropped."""
    out: list[ThreadStack] = []
    for raw in text.splitlines():
        stack_text, _, count = raw.rpartition(" ")
        if not stack_text or not count.isdigit():
            continue
        parts = [p for p in stack_text.split(";") if p]
        thread, name = "", None
        while parts and (parts[0].startswith(("thread (", "process ")) or "(" not in parts[0]):
            label = parts.pop(0)
            m = _THREAD.match(label)
            if m:
                thread, name = m.group("id"), m.group("name") or name
            elif "(" not in label and thread and name is None:
                name = label  # a bare thread name on its own, after the id
        if parts:
            stack = tuple(parse_frame(p) for p in parts)
            out.append(ThreadStack(thread, name, stack, float(count)))
    return out


def _norm(path: str) -> str:
    return path.replace("\\", "/")


class Classifier:
    """Decides the category of a frame from its file. ``own_roots``: directories whose files
    are the service's own code even when they would otherwise look like a library."""

    def __init__(self, own_roots: Sequence[str] = (), tool_files: Sequence[str] = ()) -> None:
        paths = sysconfig.get_paths()
        self.stdlib = tuple(
            _norm(p).rstrip("/") + "/" for p in {paths["stdlib"], paths["platstdlib"]} if p
        )
        self.own_roots = tuple(_norm(r).rstrip("/") + "/" for r in own_roots)
        self.tool_files = frozenset(_norm(f) for f in tool_files)

    def is_waiting(self, frame: Frame) -> bool:
        if frame.function in _SYNTHETIC_WAIT:
            return True
        if not frame.file or frame.file.startswith("<"):
            name = frame.function.rsplit(".", 1)[-1]
            return name in _WAIT_NATIVE or frame.function in ("epoll.poll", "select.select")
        path = _norm(frame.file)
        name = frame.function.rsplit(".", 1)[-1]
        return any(path.endswith("/" + f) and name in fs for f, fs in _WAIT_FILES.items())

    def category(self, frame: Frame) -> Category:
        """own or library (waiting is decided per sample, by its leaf)."""
        path = _norm(frame.file)
        if path in self.tool_files:
            return "library"
        if any(path.startswith(r) for r in self.own_roots):
            return "own"
        if (
            not path
            or path.startswith("<")
            or "/site-packages/" in path
            or "/dist-packages/" in path
            or path.startswith(self.stdlib)
            or re.search(r"/lib/python3\.\d+/", path)
        ):
            return "library"
        return "library" if not path.endswith((".py", ".pyx")) else "own"


def reference_classifier() -> Classifier:
    """For the bundled service: its package is own code; perfaudit's probes are tooling."""
    import perfaudit

    pkg = Path(perfaudit.__file__).parent
    return Classifier(
        own_roots=[str(pkg / "refservice")],
        tool_files=[str(pkg / "refservice" / "instrument.py"), str(pkg / "profile" / "asgi.py")],
    )


def external_classifier() -> Classifier:
    """For a user's service: perfaudit itself (the hook, when installed editable) is tooling."""
    import perfaudit

    pkg = Path(perfaudit.__file__).parent
    tools = [str(p) for p in pkg.rglob("*.py")]
    return Classifier(tool_files=tools)


def _key(frame: Frame) -> tuple[str, str]:
    return frame.function, frame.file


def hotspots(
    stacks: Iterable[tuple[Stack, float]], classifier: Classifier, top: int = TOP
) -> dict[str, Any]:
    """``{"total", "by_category": {own, library, waiting} (shares of self time),
    "self": [...], "cumulative": [...]}``; entries carry function, file, line (the most
    sampled line), share (0..1), weight and category."""
    total = 0.0
    self_w: dict[tuple[str, str], float] = defaultdict(float)
    cum_w: dict[tuple[str, str], float] = defaultdict(float)
    lines: dict[tuple[str, str], dict[int | None, float]] = defaultdict(lambda: defaultdict(float))
    waiting_keys: set[tuple[str, str]] = set()
    by_cat: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
    for stack, weight in stacks:
        if not stack or weight <= 0:
            continue
        total += weight
        leaf = stack[-1]
        # A synthetic leaf ([await]) is time the frame above it spent awaiting.
        owner = leaf
        if leaf.function in _SYNTHETIC_WAIT and len(stack) > 1:
            owner = Frame(f"{stack[-2].function} {leaf.function}", stack[-2].file, stack[-2].line)
        key = _key(owner)
        self_w[key] += weight
        if owner is not leaf:  # real frames get their lines below
            lines[key][owner.line] += weight
        if classifier.is_waiting(leaf):
            waiting_keys.add(key)
            by_cat["waiting"] += weight
        else:
            by_cat[classifier.category(owner)] += weight
        seen: dict[tuple[str, str], int | None] = {}
        for f in reversed(stack):  # innermost first: a recursive function counts once
            if f.function not in _SYNTHETIC_WAIT:
                seen.setdefault(_key(f), f.line)
        for k, line in seen.items():
            cum_w[k] += weight
            lines[k][line] += weight

    def entry(key: tuple[str, str], weight: float, is_self: bool) -> dict[str, Any]:
        line_weights = lines.get(key) or {None: 0.0}
        line = max(line_weights, key=lambda ln: line_weights[ln])
        frame = Frame(key[0], key[1], line)
        waiting = is_self and key in waiting_keys
        category = "waiting" if waiting else classifier.category(frame)
        return {
            "function": key[0],
            "file": key[1],
            "line": line,
            "share": round(weight / total, 4) if total else 0.0,
            "weight": round(weight, 6),
            "category": category,
        }

    def ranked(weights: dict[tuple[str, str], float], is_self: bool) -> list[dict[str, Any]]:
        order = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
        return [entry(k, w, is_self) for k, w in order[:top]]

    return {
        "total": round(total, 6),
        "by_category": {c: round(w / total, 4) if total else 0.0 for c, w in by_cat.items()},
        "self": ranked(self_w, True),
        "cumulative": ranked(cum_w, False),
    }


def short_path(path: str) -> str:
    """A path as people read it: the package part below site-packages or the standard
    library, else relative to the working directory when below it."""
    p = _norm(path)
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in p:
            return p.split(marker, 1)[1]
    m = re.search(r"/lib/python3\.\d+/(.*)$", p)
    if m:
        return m.group(1)
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return path


def where(entry: dict[str, Any]) -> str:
    """``file:line`` of a hotspot entry, shortened."""
    if not entry.get("file"):
        return "(native)"
    line = entry.get("line")
    return f"{short_path(entry['file'])}:{line}" if line else short_path(entry["file"])
