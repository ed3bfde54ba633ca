"""Child processes that are always stopped again: on success, on error, on Ctrl-C.

Each child gets its own session (so a Ctrl-C in the terminal reaches only perfaudit, which
then stops the children in order) and a parent-death signal (so a perfaudit killed with
SIGKILL does not leave orphans behind).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1


class ProcessStartError(RuntimeError):
    """A child did not become ready; the message names it and points at its log."""


def _die_with_parent() -> None:
    # Runs in the child between fork and exec.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One child process with a log file and a readiness check."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self._ready = ready
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                code = self.proc.returncode if self.proc else None
                raise ProcessStartError(
                    f"{self.name} exited with code {code} while starting; "
                    f"log {self.log_path}:\n{tail(self.log_path)}"
                )
            if self._ready is None or self._ready():
                return
            time.sleep(0.05)
        raise ProcessStartError(
            f"{self.name} was not ready after {timeout:.0f} s; log {self.log_path}:\n"
            f"{tail(self.log_path)}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the child's process group, SIGKILL it after ``timeout``; always reap."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.proc.wait()
        else:
            # The leader is gone; make sure nothing it started outlives it.
            self._signal_group(signal.SIGKILL)
        return self.proc.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)
