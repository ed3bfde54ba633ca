"""Deterministic Python call counts per function: where the instructions went, by name.

callgrind sees C functions only (``_PyEval_EvalFrameDefault``, dict lookups); a Python
function that got dearer shows up as "more of everything". Call counts are deterministic
(the same requests make the same calls), so counting them per function and request, and
diffing two runs, names the Python code that changed.

Used as a wrapper of the target's interpreter::

    python -m perfaudit.measure.pycalls -m perfaudit.refservice --port 8000
    python -m perfaudit.measure.pycalls app.py ...

With ``PERFAUDIT_PYCALLS_COUNT=0`` it only serves the socket, whose ``freeze`` command runs
``gc.freeze()`` after a warm-up (the instructions measure wraps its callgrind runs so).
Otherwise it enables cProfile (C, so it slows the target ~2x, not 20x) in the main thread and in
every thread started later, and serves a Unix socket ``$PERFAUDIT_PYCALLS_DIR/<pid>.sock``
from a daemon thread that is itself not profiled. ``snapshot`` answers the call counts so
far as JSON; a window's counts are the difference of two snapshots (cProfile's own
``clear``/``create_stats`` would flush the main thread's open calls from another thread).
Counts are taken at call end, so calls open at a snapshot count in the window they end in.
"""

from __future__ import annotations

import _lsprof
import gc
import json
import os
import re
import runpy
import socket
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DIR_ENV = "PERFAUDIT_PYCALLS_DIR"
COUNT_ENV = "PERFAUDIT_PYCALLS_COUNT"  # "0": serve the socket (freeze) without counting
Counts = dict[str, int]  # "function (file:line)" -> calls


def socket_path(directory: Path, pid: int) -> Path:
    return directory / f"{pid}.sock"


# -- inside the target ------------------------------------------------------------------
class _Counter:
    def __init__(self) -> None:
        self.profilers: list[_lsprof.Profiler] = []
        self.lock = threading.Lock()

    def start_here(self) -> None:
        p = _lsprof.Profiler()
        with self.lock:
            self.profilers.append(p)
        p.enable(subcalls=False, builtins=True)

    def thread_hook(self, frame: Any, event: str, arg: Any) -> None:
        # threading.setprofile's function runs once per new thread: replace it with a
        # profiler of that thread's own.
        sys.setprofile(None)
        self.start_here()

    def snapshot(self) -> Counts:
        out: Counts = {}
        with self.lock:
            profilers = list(self.profilers)
        for p in profilers:
            for entry in p.getstats():
                key = label(entry.code)
                out[key] = out.get(key, 0) + int(entry.callcount)
        return out


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def label(code: Any) -> str:
    if isinstance(code, str):  # a built-in: "<built-in method dumps ...>"; no addresses,
        return _ADDRESS.sub("", code)  # which differ between processes
    return f"{code.co_qualname} ({code.co_filename}:{code.co_firstlineno})"


def _serve(counter: _Counter, path: Path) -> None:
    path.unlink(missing_ok=True)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(str(path))
    srv.listen(4)
    while True:
        conn, _ = srv.accept()
        with conn:
            command = conn.recv(64).strip()
            if command == b"snapshot":
                conn.sendall(json.dumps(counter.snapshot()).encode())
            elif command == b"freeze":
                # After warm-up: what exists now is never traversed by the collector again,
                # so a full collection costs what the requests allocated, not the whole
                # heap at whatever moment it falls (a ~3 % spike in one window otherwise).
                gc.collect()
                gc.freeze()
                conn.sendall(json.dumps({"frozen": gc.get_freeze_count()}).encode())


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m perfaudit.measure.pycalls (-m module | script) [args]")
    counter = _Counter()
    directory = Path(os.environ.get(DIR_ENV) or ".")
    server = threading.Thread(
        target=_serve, args=(counter, socket_path(directory, os.getpid())), daemon=True
    )
    server.start()  # before the hook: the server thread is not profiled
    if os.environ.get(COUNT_ENV, "1") != "0":
        threading.setprofile(counter.thread_hook)
        counter.start_here()
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        runpy.run_path(argv[0], run_name="__main__")


# -- outside: the measuring side ---------------------------------------------------------
def _ask(path: Path, command: bytes, timeout_s: float) -> Any:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        s.sendall(command + b"\n")
        chunks = []
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


def snapshot(path: Path, timeout_s: float = 30.0) -> Counts:
    return {str(k): int(v) for k, v in _ask(path, b"snapshot", timeout_s).items()}


def freeze(path: Path, timeout_s: float = 120.0) -> int:
    """gc.freeze() in the target (after its warm-up); returns how many objects it froze."""
    return int(_ask(path, b"freeze", timeout_s)["frozen"])


def difference(before: Mapping[str, int], after: Mapping[str, int]) -> Counts:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


if __name__ == "__main__":
    main(sys.argv[1:])
