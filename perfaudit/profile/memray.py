"""memray: allocations of the service and worker — peak, total, top allocators, flame graphs.

Two ways in, chosen by ``method``:

- **attach** (``auto`` when lldb is installed): ``memray attach --method lldb --duration W`` on a
  freshly started target at the window start, so start-up and warm-up are not in the capture.
  The attach itself takes ~2.5 s, so tracking starts that much after the window start and runs
  W seconds; the result records both. gdb is never used: on some VMs it fails with "Couldn't
  write extended state status", and ``memray detach`` through lldb killed the target here, so
  the capture ends by ``--duration`` instead.
- **run** (``auto`` without lldb): the target is launched under ``memray run``; the capture
  covers the whole process life, start-up and warm-up included (the result says so), and is
  read after the target stops. An external target's ``start`` must begin with a Python
  interpreter or a Python console script (``uvicorn ...``) to be rewritten.

Each capture gives a flame graph (peak memory), a ``--leaks`` flame graph (what was still
allocated when tracking ended) and ``memray stats --json``. Measured here: ~0.60 of
unprofiled throughput for both methods.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfaudit.profile import memray_stats
from perfaudit.profile.base import (
    Capture,
    CaptureContext,
    Clock,
    Launch,
    Problem,
    busiest,
    result,
)
from perfaudit.profile.preflight import lldb_binary, module_problem, ptrace_problems
from perfaudit.profile.processes import REFERENCE_PROCESSES, profile_targets
from perfaudit.profile.pyspy import classifier_for
from perfaudit.profile.spec import ProfileSpec
from perfaudit.stack.pycommand import wrap_python_start

if TYPE_CHECKING:
    from perfaudit.profile.session import TargetSessionLike

NAME = "memray"
ATTACH_TIMEOUT_S = 60.0
# memray attach through lldb stops the target for ~2.5 s, ~3 s for the service and worker at
# once (measured here), and the requests queued meanwhile take a moment to drain. So it starts
# this long before the window, and the profiled run's warm-up is made long enough for that:
# the stall falls in the warm-up and tracking begins about when the window does.
ATTACH_LEAD_S = 4.0
ATTACH_MIN_WARMUP_S = 5.0
REPORT_TIMEOUT_S = 120.0
LLDB_FIX = "apt-get install -y lldb (Debian/Ubuntu), or set memray method=run"


def method_for(spec: ProfileSpec) -> str:
    method = str(spec.get("method"))
    if method == "auto":
        return "attach" if lldb_binary() else "run"
    return method


def preflight(spec: ProfileSpec) -> list[Problem]:
    if not sys.platform.startswith(("linux", "darwin")):
        return [Problem(NAME, "memray runs on Linux and macOS only", "profile on Linux")]
    problems = module_problem(NAME, "memray")
    method = spec.get("method")
    if method == "attach" and lldb_binary() is None:
        problems.append(Problem(NAME, "memray attach needs lldb, which is not installed", LLDB_FIX))
    if method_for(spec) == "attach":
        problems += ptrace_problems(NAME)
    elif method == "auto":
        problems.append(
            Problem(
                NAME,
                "lldb is not installed: the target is launched under `memray run` instead of "
                "attached, so the capture includes start-up and warm-up",
                LLDB_FIX.split(",")[0] + " to capture the steady window only",
                blocking=False,
            )
        )
    return problems


def _memray(*args: str) -> list[str]:
    return [sys.executable, "-m", "memray", *args]


def rewrite_start(start: str, out: Path, native: bool) -> str | None:
    """``target.start`` run under ``memray run -o out``, or None when it cannot be rewritten
    (a shell pipeline, an interpreter flag, not Python)."""
    opts = ["run", "--force", "--quiet", "-o", str(out), *(["--native"] if native else [])]
    return wrap_python_start(start, ["memray", *opts])


class MemrayCapture(Capture):
    def __init__(self, spec: ProfileSpec, ctx: CaptureContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.method = method_for(spec)
        self.native = bool(spec.get("native"))
        self.clock = Clock()
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.pids: dict[str, int] = {}
        self._threads: list[threading.Thread] = []
        self._attached_at: dict[str, float] = {}
        self._attach_s: dict[str, float] = {}
        self.duration_s = max(1, round(ctx.window_s))
        attach = self.method == "attach"
        self.lead_s = ATTACH_LEAD_S if attach else 0.0
        self.min_warmup_s = ATTACH_MIN_WARMUP_S if attach else 0.0
        # Always a target of its own: attach leaves memray's library in the process, and run
        # needs a launch of its own.
        self.launch: Launch | None = self._launch()

    def _bin(self, name: str) -> Path:
        return self.ctx.out_dir / f"memray.{name}.bin"

    def _launch(self) -> Launch | None:
        if self.method == "attach":
            return Launch()
        self.ctx.out_dir.mkdir(parents=True, exist_ok=True)
        native = ("--native",) if self.native else ()
        target = self.ctx.target
        if target.is_reference:  # python -m memray run -o FILE -m perfaudit.refservice ...
            run = ("-m", "memray", "run", "--force", "--quiet")
            return Launch(
                python_args={
                    n: (*run, "-o", str(self._bin(n)), *native) for n in REFERENCE_PROCESSES
                }
            )
        if not target.start:
            self.errors.append(
                "memray run needs target.start (perfaudit must launch the service); "
                "or install lldb to attach: " + LLDB_FIX.split(",")[0]
            )
            return None
        start = rewrite_start(target.start, self._bin("service"), self.native)
        if start is None:
            self.errors.append(
                f"cannot run target.start under memray run: {target.start!r} does not begin "
                "with a Python interpreter or a Python console script; install lldb to attach "
                "instead, or start it as `python -m ...`"
            )
            return None
        return Launch(start=start)

    # -- window --------------------------------------------------------------------------
    def start(self, session: TargetSessionLike) -> None:
        self.clock.window(self.lead_s)
        if self.errors:
            return
        self.pids = profile_targets(session)
        if self.method == "run":
            self.clock.mark_started()
            return
        if not self.pids:
            self.errors.append("no process to attach to (target.start or profile_process)")
            return
        self.ctx.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            t = threading.Thread(target=self._attach, args=(name, pid), daemon=True)
            t.start()
            self._threads.append(t)
        self.clock.mark_started()

    def _attach(self, name: str, pid: int) -> None:
        argv = _memray("attach", "--method", "lldb", "--force", "-o", str(self._bin(name)),
                       "--duration", str(self.duration_s), *(["--native"] if self.native else []),
                       str(pid))  # fmt: skip
        t0 = time.monotonic()
        env = dict(os.environ)
        lldb = lldb_binary()
        if lldb:  # memray looks lldb up on PATH
            env["PATH"] = f"{Path(lldb).parent}{os.pathsep}{env.get('PATH', '')}"
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=ATTACH_TIMEOUT_S,
                               env=env)  # fmt: skip
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.errors.append(f"{name}: memray attach failed: {exc}")
            return
        if r.returncode != 0:
            msg = (r.stderr or r.stdout).strip().splitlines()[-3:]
            self.errors.append(f"{name}: memray attach failed: {' '.join(msg)}")
            return
        self._attached_at[name] = time.monotonic()
        self._attach_s[name] = round(self._attached_at[name] - t0, 3)

    def stop(self) -> None:
        self.clock.mark_stopped()
        for t in self._threads:
            t.join(ATTACH_TIMEOUT_S)
        if self._attached_at:
            # Tracking ends by --duration; let it end while the target is still up, so the
            # capture is not cut by the target's shutdown.
            end = max(self._attached_at.values()) + self.duration_s + 0.5
            time.sleep(max(0.0, end - time.monotonic()))

    def abort(self) -> None:
        self._attached_at.clear()

    # -- after the run -------------------------------------------------------------------
    def collect(self) -> dict[str, Any]:
        classifier = classifier_for(self.ctx.target)
        processes: dict[str, Any] = {}
        artifacts: list[Path] = []
        if self.launch is None:
            names: list[str] = []  # could not even be launched: the errors say why
        elif self.method == "attach":
            names = list(self.pids)
        else:
            names = list(REFERENCE_PROCESSES) if self.ctx.target.is_reference else ["service"]
        for name in names:
            capture = self._bin(name)
            if not capture.exists() or not _settled(capture):
                processes[name] = {"pid": self.pids.get(name), "error": "no capture written"}
                continue
            info, files = self._report(name, capture, classifier)
            processes[name] = {"pid": self.pids.get(name), **info}
            if name in self._attach_s:  # how long the attach stopped the target
                processes[name]["attach_s"] = self._attach_s[name]
            artifacts += files
        ok = any("peak_mb" in p for p in processes.values())
        errors = self.errors + [f"{n}: {p['error']}" for n, p in processes.items() if "error" in p]
        notes = list(self.notes)
        covers_startup = self.method == "run"
        if covers_startup:
            notes.append(
                "memray run: the capture covers the whole process life (start-up and warm-up "
                "included); install lldb to capture the steady window only"
            )
        else:
            notes.append(
                f"memray attach --method lldb: started {self.lead_s:g} s before the window, in a "
                f"warm-up of at least {ATTACH_MIN_WARMUP_S:g} s (the attach stops the target for "
                f"~3 s), and tracked {self.duration_s} s from when it completed "
                "(tracked_from/tracked_until give the exact span)"
            )
        top = busiest(processes, "total_allocated_mb")
        headline = {}
        if top:  # the busiest process's figures, for one-line readers
            proc = processes[top["process"]]
            headline = {"process": top["process"], "peak_mb": proc["peak_mb"],
                        "total_allocated_mb": proc["total_allocated_mb"],
                        "top_allocators": proc["top_allocators"]}  # fmt: skip
        return result(
            self.spec, "ok" if ok else "failed", self.ctx, artifacts,
            method=self.method, window=self.clock.to_dict(covers_startup),
            **headline, processes=processes, errors=errors, notes=notes,
        )  # fmt: skip

    def _report(self, name: str, capture: Path, classifier: Any) -> tuple[dict[str, Any], list]:
        out = self.ctx.out_dir
        stats_path = out / f"memray.{name}.stats.json"
        flame = out / f"memray.{name}.flamegraph.html"
        leaks = out / f"memray.{name}.leaks.html"
        commands = [
            _memray("stats", "--json", "-n", "10", "-f", "-o", str(stats_path), str(capture)),
            _memray("flamegraph", "--no-web", "-f", "-o", str(flame), str(capture)),
            _memray("flamegraph", "--leaks", "--no-web", "-f", "-o", str(leaks), str(capture)),
        ]
        problems = []
        for argv in commands:
            try:
                r = subprocess.run(argv, capture_output=True, text=True, timeout=REPORT_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired) as exc:
                problems.append(f"{argv[3]}: {exc}")
                continue
            if r.returncode != 0:
                problems.append(f"{argv[3]}: {(r.stderr or r.stdout).strip()[-300:]}")
        info: dict[str, Any] = {}
        try:
            info = memray_stats.summarize(json.loads(stats_path.read_text()), classifier)
        except (OSError, ValueError) as exc:
            problems.append(f"stats: {exc}")
        if info:
            try:
                info["leaks"] = memray_stats.leaks(capture, classifier)
            except Exception as exc:  # noqa: BLE001 - a reader error costs the leaks only
                problems.append(f"leaks: {exc}")
        if problems:
            info["error" if not info else "warnings"] = "; ".join(problems)
        files = [capture, stats_path, flame, leaks]
        info["artifacts"] = [
            str(p.relative_to(self.ctx.run_dir)) for p in files if p.exists() and p.stat().st_size
        ]
        return info, files


def _settled(path: Path, timeout: float = 15.0) -> bool:
    """True once the capture exists and stopped growing (memray compresses it at the end)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        size = path.stat().st_size if path.exists() else -1
        if size > 0 and size == last:
            return True
        last = size
        time.sleep(0.5)
    return path.exists() and path.stat().st_size > 0


def prepare(spec: ProfileSpec, ctx: CaptureContext) -> MemrayCapture:
    return MemrayCapture(spec, ctx)
