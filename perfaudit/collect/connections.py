"""New outbound TCP connections of a target's processes, counted exactly.

Sampling ``/proc`` (psutil) sees only the connections open at the instant of a sample; a
connection opened and closed per request is gone before the next one. Instead the target
runs with a small ``LD_PRELOAD`` shim (``connect_shim.c``) that appends one line per
``connect()`` of a TCP socket to a log file: ``pid dest_ip dest_port monotonic_ns``. The
collector counts the lines whose time falls in the window. The shim is compiled with gcc on
first use into a cache directory, keyed by the source's hash; without gcc there is no count
and :func:`shim_env` says why.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

from perfaudit.collect.base import Result

LOG_ENV = "PERFAUDIT_CONNECT_LOG"
SOURCE = Path(__file__).with_name("connect_shim.c")


class ShimUnavailableError(RuntimeError):
    pass


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "perfaudit"


def build_shim(cache: Path | None = None) -> Path:
    """The compiled shim (built now if this source version has not been built yet)."""
    source = SOURCE.read_bytes()
    out = (cache or cache_dir()) / f"connect-shim-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if out.exists():
        return out
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise ShimUnavailableError("no C compiler (gcc) to build the connect() shim")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".{os.getpid()}.tmp")
    proc = subprocess.run(
        [gcc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE), "-ldl"],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ShimUnavailableError(f"building the connect() shim failed: {proc.stderr.strip()}")
    tmp.replace(out)  # atomic: a concurrent build never sees half a library
    return out


def shim_env(log: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The variables that make a started process log its connects to ``log`` (any
    ``LD_PRELOAD`` already in ``base`` is kept, after ours). Raises ShimUnavailableError."""
    shim = build_shim()
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    preload = (base if base is not None else os.environ).get("LD_PRELOAD", "").strip()
    return {"LD_PRELOAD": f"{shim} {preload}".strip(), LOG_ENV: str(log)}


def count(lines: list[str], t0_ns: int, t1_ns: int, names: dict[int, str]) -> Result:
    """The window ``[t0_ns, t1_ns]`` of shim log lines; ``names``: pid -> process name."""
    dests: Counter[str] = Counter()
    procs: Counter[str] = Counter()
    for text in lines:
        parts = text.split()
        if len(parts) != 4:
            continue  # a line being written when the file was read
        pid, ip, port, ts = parts
        if not t0_ns <= int(ts) <= t1_ns:
            continue
        dests[f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"] += 1
        procs[names.get(int(pid), pid)] += 1
    return {
        "source": "connect-shim",
        "exact": True,
        "new": sum(dests.values()),
        "by_destination": dict(sorted(dests.items())),
        "by_process": dict(sorted(procs.items())),
    }


class ConnectionCounter:
    """Counts the shim log's lines over the window (the log belongs to one target)."""

    # A connect() takes its time stamp just before its write(): wait this long at stop so
    # a connect stamped inside the window has landed in the file.
    SETTLE_S = 0.02

    def __init__(self, log: Path, pids: dict[str, int] | None = None) -> None:
        self.log = log
        self.names = {pid: name for name, pid in (pids or {}).items()}
        self._offset = 0
        self._t0: int | None = None

    def start(self) -> None:
        if not self.log.exists():
            raise FileNotFoundError(f"{self.log}: the target was not started with the shim")
        self._offset = self.log.stat().st_size  # lines before it are stamped before _t0
        self._t0 = time.monotonic_ns()

    def stop(self) -> Result:
        if self._t0 is None:
            raise RuntimeError("ConnectionCounter.stop() before start()")
        t1 = time.monotonic_ns()
        time.sleep(self.SETTLE_S)
        with self.log.open("rb") as f:
            f.seek(self._offset)
            data = f.read().decode("ascii", "replace")
        return count(data.splitlines(), self._t0, t1, self.names)
