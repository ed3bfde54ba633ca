"""py-spy: sampled stacks of the service and worker processes, attached by PID over the
steady window.

One ``py-spy record --pid P --format raw --full-filenames --threads`` per process starts at the
window start and is stopped with SIGINT at its end (py-spy then writes its file). The raw
collapsed stacks are kept, and the SVG flame graph and the speedscope file are rendered from them
(one recording can only write one format). Per process: hotspots, and what the event-loop thread
was doing (``loop``, from loopthread.py). Measured on this project's machine: ~0.96 of unprofiled
throughput at 100 Hz; ``nonblocking`` is within noise of 1.0 but loses ~10 % of samples.
"""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perfaudit.profile import flamegraph, hotspots, loopthread
from perfaudit.profile.base import (
    Capture,
    CaptureContext,
    Clock,
    Launch,
    Problem,
    busiest,
    result,
)
from perfaudit.profile.preflight import PY_SPY_ENV, ptrace_problems, py_spy_binary
from perfaudit.profile.processes import profile_targets
from perfaudit.profile.spec import ProfileSpec
from perfaudit.stack.process import tail

if TYPE_CHECKING:
    from perfaudit.profile.session import TargetSessionLike

NAME = "py-spy"
STOP_TIMEOUT_S = 15.0
_SAMPLES = re.compile(r"Samples: (\d+) Errors: (\d+)")


def preflight(spec: ProfileSpec) -> list[Problem]:
    if py_spy_binary() is None:
        return [
            Problem(
                NAME,
                "the py-spy binary was not found (beside this Python, on PATH"
                f" or at ${PY_SPY_ENV})",
                f"pip install py-spy (a perfaudit dependency), or point {PY_SPY_ENV} at the binary",
            )
        ]
    return ptrace_problems(NAME)


def classifier_for(session_or_target: Any) -> hotspots.Classifier:
    target = getattr(session_or_target, "target", session_or_target)
    if target.is_reference:
        return hotspots.reference_classifier()
    return hotspots.external_classifier()


class PySpyCapture(Capture):
    def __init__(self, spec: ProfileSpec, ctx: CaptureContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.launch: Launch | None = None  # attaches to the plain target
        self.clock = Clock()
        self.lead_s = 0.0
        self.min_warmup_s = 0.0
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pids: dict[str, int] = {}
        self.errors: list[str] = []

    def _argv(self, pid: int, out: Path) -> list[str]:
        binary = py_spy_binary()
        assert binary is not None
        # --threads labels each stack with its thread, so the event-loop thread can be told
        # apart from thread-pool threads (loopthread.py); the flame graphs drop the label.
        argv = [binary, "record", "--pid", str(pid), "--format", "raw", "--full-filenames",
                "--threads"]  # fmt: skip
        argv += ["--rate", str(self.spec.get("rate")), "--output", str(out)]
        for flag in ("idle", "gil", "nonblocking", "native"):
            if self.spec.get(flag):
                argv.append(f"--{flag}")
        return argv

    def _raw(self, name: str) -> Path:
        return self.ctx.out_dir / f"py-spy.{name}.collapsed.txt"

    def start(self, session: TargetSessionLike) -> None:
        self.clock.window()
        try:
            self.pids = profile_targets(session)
            if not self.pids:
                self.errors.append(
                    "no process to attach to: give the scenario target.start or "
                    "target.profile_process (a pid or a command-name substring)"
                )
                return
            self.ctx.out_dir.mkdir(parents=True, exist_ok=True)
            for name, pid in self.pids.items():
                # Not a ManagedProcess: its parent-death signal fires when the *thread* that
                # started it ends, and this runs on the window's timer thread. py-spy exits
                # by itself when its target does.
                with open(self.ctx.out_dir / f"py-spy.{name}.log", "wb") as log:
                    self.procs[name] = subprocess.Popen(
                        self._argv(pid, self._raw(name)), stdin=subprocess.DEVNULL,
                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                    )  # fmt: skip
            self.clock.mark_started()
        except Exception as exc:  # noqa: BLE001 - reported in the result, the run goes on
            self.errors.append(f"py-spy did not start: {exc}")

    def stop(self) -> None:
        self.clock.mark_stopped()
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        for name, proc in self.procs.items():
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self.errors.append(f"{name}: py-spy did not stop within {STOP_TIMEOUT_S:.0f} s")

    def abort(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def _loop(self, text: str, classifier: hotspots.Classifier, pid: int) -> dict[str, Any]:
        window_s = self.clock.to_dict().get("captured_s") or self.ctx.window_s
        return loopthread.summarize(
            hotspots.parse_collapsed_threads(text), classifier,
            idle_sampled=bool(self.spec.get("idle")), rate_hz=int(self.spec.get("rate")),
            window_s=float(window_s), pid=pid,
        )  # fmt: skip

    def collect(self) -> dict[str, Any]:
        classifier = classifier_for(self.ctx.target)
        processes: dict[str, Any] = {}
        artifacts: list[Path] = []
        for name, pid in self.pids.items():
            proc = self.procs.get(name)
            raw = self._raw(name)
            log = self.ctx.out_dir / f"py-spy.{name}.log"
            text = raw.read_text(errors="replace") if raw.exists() else ""
            stacks = hotspots.parse_collapsed(text)
            m = _SAMPLES.search(log.read_text(errors="replace")) if log.exists() else None
            info: dict[str, Any] = {
                "pid": pid,
                "samples": int(m.group(1)) if m else None,
                "sample_errors": int(m.group(2)) if m else None,
            }
            if not stacks:
                code = proc.returncode if proc else None
                info["error"] = (
                    f"py-spy wrote no samples (exit code {code}); log {log}:\n{tail(log, 5)}"
                )
                processes[name] = info
                continue
            svg = self.ctx.out_dir / f"py-spy.{name}.svg"
            scope = self.ctx.out_dir / f"py-spy.{name}.speedscope.json"
            title = f"{self.ctx.scenario} — {name} (pid {pid}), {self.spec.label()}"
            flamegraph.write_all(stacks, svg, scope, title, classifier)
            artifacts += [svg, scope, raw]
            info["hotspots"] = hotspots.hotspots(stacks, classifier)
            info["loop"] = self._loop(text, classifier, pid)
            info["artifacts"] = [str(p.relative_to(self.ctx.run_dir)) for p in (svg, scope, raw)]
            processes[name] = info
        ok = any("hotspots" in p for p in processes.values())
        errors = self.errors + [f"{n}: {p['error']}" for n, p in processes.items() if "error" in p]
        notes = []
        if not self.spec.get("idle"):
            notes.append("idle threads are not sampled (py-spy:idle adds them as waiting)")
        top = busiest(processes, "hotspots")
        return result(
            self.spec,
            "ok" if ok else "failed",
            self.ctx,
            artifacts,
            window=self.clock.to_dict(),
            hotspots={"process": top.get("process"), **top.get("hotspots", {})} if top else {},
            processes=processes,
            errors=errors,
            notes=notes,
        )


def prepare(spec: ProfileSpec, ctx: CaptureContext) -> PySpyCapture:
    return PySpyCapture(spec, ctx)
