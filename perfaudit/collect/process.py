"""CPU, memory, descriptors and threads of the stack's processes, sampled over a window.

A background thread samples each named process together with its descendants (uvicorn
workers, job subprocesses) with psutil. CPU comes from ``cpu_times`` deltas rather than
``cpu_percent()``, so that 100 means one full core and ``cpu_seconds`` over the window is exact
(except the last interval of a process that exits mid-window: it is gone before it is read).

One sampling tick costs about 1 ms (a parent-pid scan of /proc plus ~0.1 ms per process),
i.e. well under 1 % of a core at the default 4 Hz; the sampler reports its own CPU time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psutil

from perfaudit.collect.base import Result

MB = 1024 * 1024


def _ppid_map() -> dict[int, int]:
    """pid -> parent pid for every process, read once per tick and shared by all groups."""
    fast: Callable[[], dict[int, int]] | None = getattr(psutil, "_ppid_map", None)
    if fast is not None:  # psutil's own helper (Linux): one /proc/<pid>/stat read per pid
        return fast()
    return {p.pid: p.info["ppid"] for p in psutil.process_iter(["ppid"])}


def _descendants(root: int, ppids: dict[int, int]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in ppids.items():
        children.setdefault(ppid, []).append(pid)
    out: list[int] = []
    stack = list(children.get(root, ()))
    while stack:
        pid = stack.pop()
        out.append(pid)
        stack.extend(children.get(pid, ()))
    return out


@dataclass
class _Member:
    """One OS process of a group, with the counters it had when last seen."""

    proc: psutil.Process
    cpu_s: float
    ctx_vol: int
    ctx_invol: int


@dataclass
class _Reading:
    cpu_s: float = 0.0  # CPU seconds used by the group since the previous tick
    rss: int = 0
    fds: int = 0
    threads: int = 0
    ctx_vol: int = 0
    ctx_invol: int = 0


@dataclass
class _Group:
    """A named process plus its descendants; figures are sums over the members."""

    name: str
    pid: int
    members: dict[int, _Member] = field(default_factory=dict)
    pids_seen: set[int] = field(default_factory=set)
    exited_at: float | None = None
    first_t: float | None = None
    last_t: float | None = None
    cpu_seconds: float = 0.0
    ctx_vol: int = 0
    ctx_invol: int = 0
    rss_start: int | None = None
    rss_end: int = 0
    rss_max: int = 0
    fds_max: int = 0
    threads_max: int = 0
    timeline: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None

    def result(self) -> Result:
        span = (self.last_t or 0.0) - (self.first_t or 0.0)
        cpus = [p["cpu"] for p in self.timeline]
        return {
            "pid": self.pid,
            "pids": sorted(self.pids_seen),
            "samples": len(self.timeline),
            "exited": self.exited_at is not None,
            "exited_at": None if self.exited_at is None else round(self.exited_at, 3),
            # The mean is the exact CPU time over the span, not an average of noisy samples.
            "cpu_percent": {
                "mean": round(100.0 * self.cpu_seconds / span, 1) if span > 0 else 0.0,
                "max": round(max(cpus), 1) if cpus else 0.0,
            },
            "cpu_seconds": round(self.cpu_seconds, 3),
            "rss_mb": {
                "start": _mb(self.rss_start or 0),
                "end": _mb(self.rss_end),
                "max": _mb(self.rss_max),
            },
            "fds_max": self.fds_max,
            "threads_max": self.threads_max,
            "ctx_switches": {"voluntary": self.ctx_vol, "involuntary": self.ctx_invol},
            "timeline": self.timeline,
            **({"error": self.error} if self.error else {}),
        }


def _mb(n: int) -> float:
    return round(n / MB, 2)


class ProcessSampler:
    """Samples ``pids`` (name -> pid) and their descendants every ``interval`` seconds."""

    def __init__(self, pids: dict[str, int], interval: float = 0.25) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.pids = dict(pids)
        self.interval = interval
        self._groups: list[_Group] = []
        self._t0 = 0.0
        self._wall0 = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampler_cpu = 0.0

    # -- Collector -------------------------------------------------------------------------
    def start(self) -> None:
        self._groups = [_Group(name, pid) for name, pid in self.pids.items()]
        self._t0 = time.monotonic()
        self._wall0 = time.time()
        self._sampler_cpu = 0.0
        self._stop.clear()
        self._tick(baseline=True)
        self._thread = threading.Thread(target=self._run, name="perfaudit-procsampler", daemon=True)
        self._thread.start()

    def stop(self) -> Result:
        if self._thread is None:
            raise RuntimeError("ProcessSampler.stop() before start()")
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._tick()  # the window ends now, not at the last periodic tick
        return {
            "interval_s": self.interval,
            "duration_s": round(time.monotonic() - self._t0, 3),
            "sampler_cpu_seconds": round(self._sampler_cpu, 4),
            "processes": {g.name: g.result() for g in self._groups},
        }

    # -- sampling --------------------------------------------------------------------------
    def _run(self) -> None:
        n = 1
        # Fixed schedule (t0 + n * interval) so slow ticks do not stretch the timeline.
        while not self._stop.wait(max(0.0, self._t0 + n * self.interval - time.monotonic())):
            c0 = time.thread_time()
            self._tick()
            self._sampler_cpu += time.thread_time() - c0
            n = max(n + 1, int((time.monotonic() - self._t0) / self.interval) + 1)

    def _tick(self, baseline: bool = False) -> None:
        live = [g for g in self._groups if g.exited_at is None]
        if not live:
            return
        try:
            ppids = _ppid_map()
        except psutil.Error:
            ppids = {}
        t = time.monotonic() - self._t0
        for group in live:
            try:
                self._sample(group, t, ppids, baseline)
            except Exception as exc:  # noqa: BLE001 - one odd process must not end the sampling
                group.error = f"{type(exc).__name__}: {exc}"

    def _sample(self, g: _Group, t: float, ppids: dict[int, int], baseline: bool) -> None:
        if not _running(g.pid):
            g.exited_at = t
            return
        self._refresh_members(g, [g.pid, *_descendants(g.pid, ppids)], baseline)
        r = _Reading()
        for pid, m in list(g.members.items()):
            try:
                with m.proc.oneshot():
                    ct = m.proc.cpu_times()
                    rss = m.proc.memory_info().rss
                    threads = m.proc.num_threads()
                    ctx = m.proc.num_ctx_switches()
                    fds = _fds(m.proc)
            except psutil.NoSuchProcess:  # exited between the scan and now
                del g.members[pid]
                continue
            cpu_s = ct.user + ct.system
            r.cpu_s += max(0.0, cpu_s - m.cpu_s)
            r.ctx_vol += max(0, ctx.voluntary - m.ctx_vol)
            r.ctx_invol += max(0, ctx.involuntary - m.ctx_invol)
            m.cpu_s, m.ctx_vol, m.ctx_invol = cpu_s, ctx.voluntary, ctx.involuntary
            r.rss += rss
            r.fds += fds
            r.threads += threads
        self._record(g, t, r)

    def _refresh_members(self, g: _Group, pids: Iterable[int], baseline: bool) -> None:
        current = set(pids)
        for pid in list(g.members):
            if pid not in current:
                del g.members[pid]
        for pid in current - g.members.keys():
            try:
                proc = psutil.Process(pid)
                with proc.oneshot():
                    ct = proc.cpu_times()
                    ctx = proc.num_ctx_switches()
                    born = proc.create_time()
            except psutil.NoSuchProcess:
                continue
            if not baseline and born >= self._wall0:
                # Started inside the window: all of its CPU time belongs to the window.
                g.members[pid] = _Member(proc, 0.0, 0, 0)
            else:
                g.members[pid] = _Member(proc, ct.user + ct.system, ctx.voluntary, ctx.involuntary)
            g.pids_seen.add(pid)

    def _record(self, g: _Group, t: float, r: _Reading) -> None:
        if g.first_t is None:
            g.first_t = t
            g.rss_start = r.rss
        else:
            dt = t - (g.last_t or t)
            g.cpu_seconds += r.cpu_s
            g.ctx_vol += r.ctx_vol
            g.ctx_invol += r.ctx_invol
            g.timeline.append(
                {
                    "t": round(t, 3),
                    "cpu": round(100.0 * r.cpu_s / dt, 1) if dt > 0 else 0.0,
                    "rss_mb": _mb(r.rss),
                    "fds": r.fds,
                    "threads": r.threads,
                }
            )
        g.last_t = t
        g.rss_end = r.rss
        g.rss_max = max(g.rss_max, r.rss)
        g.fds_max = max(g.fds_max, r.fds)
        g.threads_max = max(g.threads_max, r.threads)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a child that exited but was not reaped yet counts as exited)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _fds(proc: psutil.Process) -> int:
    try:
        return proc.num_fds()
    except psutil.AccessDenied:  # another user's process: the other figures still count
        return 0
