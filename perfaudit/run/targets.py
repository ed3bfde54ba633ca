"""Bringing up what a scenario drives, and everything a run needs to know about it.

A reference target is a whole perfaudit stack (Redis, stand-ins, service, worker) with the
event-loop probe on; an external target is a user's service on a loopback URL, optionally
started by a command of theirs. Both stop again on exit, error and Ctrl-C.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from perfaudit.scenario import Scenario
from perfaudit.scenario.model import Target
from perfaudit.stack.launch import Launch
from perfaudit.stack.net import http_ok
from perfaudit.stack.process import ManagedProcess, ProcessStartError
from perfaudit.stack.stack import Secrets, Stack, StackInfo, StackOptions

INSTRUMENT_ENV = {"PERFAUDIT_INSTRUMENT": "1"}


@dataclass
class TargetSession:
    """A started target: where to send load and what to measure."""

    target: Target
    host: str
    port: int
    base_url: str
    pids: dict[str, int]
    secrets: Secrets | None = None
    stack: StackInfo | None = None
    instrumented: bool = False
    default_standins: dict[str, Any] | None = None
    _closers: list[Any] = field(default_factory=list)

    @property
    def redis_url(self) -> str | None:
        return self.stack.redis_url if self.stack else None

    @property
    def standin_control_url(self) -> str | None:
        return self.stack.standin_control_url if self.stack else None

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"label": self.target.label(), "base_url": self.base_url}
        if self.target.is_reference:
            d["variant"] = self.target.variant
            d["switches"] = sorted(self.target.switches)
            if self.stack:
                d["run_dir"] = self.stack.run_dir
                d["logs"] = self.stack.logs
        d["pids"] = dict(self.pids)
        return d

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()
        self._closers.clear()


def target_key(target: Target) -> tuple[Any, ...]:
    """Scenarios whose targets share a key share one started target."""
    if target.is_reference:
        return ("reference", tuple(sorted(target.switches)))
    return ("external", target.url, target.start, str(target.cwd))


def start_target(
    target: Target, run_dir: Path, redis_url: str | None = None, launch: Launch | None = None
) -> TargetSession:
    """``launch``: how a profiler needs the target started (extra environment, ``memray run``);
    such a target is started for that profiled run only, never shared."""
    if target.is_reference:
        return _start_reference(target, run_dir, redis_url, launch)
    return _start_external(target, run_dir, launch)


def _start_reference(
    target: Target, run_dir: Path, redis_url: str | None, launch: Launch | None = None
) -> TargetSession:
    options = StackOptions(
        run_dir=run_dir,
        switches=target.switches,
        redis_url=redis_url,
        service_env={**INSTRUMENT_ENV, **(launch.env if launch else {})},
        python_args=dict(launch.python_args) if launch else {},
    )
    if launch is not None:
        options = replace(
            options,
            command_prefix=dict(launch.command_prefix),
            startup_timeout=launch.startup_timeout_s or options.startup_timeout,
            standin_config=dict(launch.standin_config) if launch.standin_config else None,
            secrets_seed=launch.secrets_seed,
        )
    stack = Stack(options)
    info = stack.start()
    try:
        from perfaudit.stack.client import StackClient

        with StackClient(info) as client:
            defaults = client.configure({})  # the stand-ins' start-up config, to go back to
    except Exception:
        stack.stop()
        raise
    host, port = info.service_url.removeprefix("http://").rsplit(":", 1)
    session = TargetSession(
        target=target,
        host=host,
        port=int(port),
        base_url=info.service_url,
        pids=dict(info.pids),
        secrets=info.secrets,
        stack=info,
        instrumented=True,
        default_standins=defaults,
    )
    session._closers.append(stack.stop)
    return session


def _start_external(target: Target, run_dir: Path, launch: Launch | None = None) -> TargetSession:
    assert target.url and target.host and target.port
    session = TargetSession(
        target=target, host=target.host, port=target.port, base_url=target.url, pids={}
    )
    ready_url = f"{target.url.rstrip('/')}{target.ready_path}"
    start = (launch.start if launch else None) or target.start
    if start:
        proc = ManagedProcess(
            "service",
            ["/bin/sh", "-c", f"exec {start}"],
            run_dir / "logs" / "service.log",
            env={**os.environ, **launch.env} if launch and launch.env else None,
            cwd=target.cwd,
            ready=lambda: _answers(ready_url),
        )
        session._closers.append(proc.stop)
        try:
            proc.start()
            proc.wait_ready(target.ready_timeout_s)
        except BaseException:
            session.close()
            raise
        assert proc.pid is not None
        session.pids["service"] = proc.pid
    elif not _wait(ready_url, target.ready_timeout_s):
        raise ProcessStartError(
            f"{target.url}: nothing answers GET {target.ready_path} "
            f"(waited {target.ready_timeout_s:.0f} s); start the service or add target.start"
        )
    pid = _profile_pid(target, session.pids.get("service"))
    if pid is not None:
        session.pids["service"] = pid
    return session


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1.0) as resp:
            return resp.status < 500
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except OSError:
        return False


def _wait(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(url) or http_ok(url):
            return True
        time.sleep(0.1)
    return False


def _profile_pid(target: Target, started: int | None) -> int | None:
    """The process whose CPU, memory and profile describe the service."""
    which = target.profile_process
    if which is None or which == "started":
        return started
    if isinstance(which, int) or str(which).isdigit():
        return int(which)
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if str(which) in cmdline and proc.pid != psutil.Process().pid:
            return int(proc.pid)
    raise ProcessStartError(f"target.profile_process: no running process matches {which!r}")


def scenario_label(scenario: Scenario) -> str:
    return f"{scenario.name} ({scenario.target.label()})"
