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

from perfaudit.collect.connections import ShimUnavailableError, shim_env
from perfaudit.collect.loop_lag import LOOP_PATH
from perfaudit.scenario import Scenario
from perfaudit.scenario.model import Target, _hide_password
from perfaudit.scenario.validate import ASSIGNMENT
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
    # External targets: the user's Redis whose INFO is read (target.redis_url / --redis-url).
    external_redis_url: str | None = None
    # The connect() shim's log (targets started with it), or why there is none.
    connect_log: Path | None = None
    connect_note: str | None = None
    _closers: list[Any] = field(default_factory=list)

    @property
    def redis_url(self) -> str | None:
        """The reference stack's Redis (what its jobs and seeding use); None for external."""
        return self.stack.redis_url if self.stack else None

    @property
    def measured_redis_url(self) -> str | None:
        """The Redis whose INFO deltas describe the target: the stack's, or the user's."""
        return self.redis_url or self.external_redis_url

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
        else:
            d["loop_lag"] = (
                "probe" if self.instrumented else ("canary" if self.target.canary else None)
            )
            if self.external_redis_url:
                d["redis_url"] = _hide_password(self.external_redis_url)
        d["pids"] = dict(self.pids)
        d["connections"] = "connect-shim" if self.connect_log else self.connect_note
        return d

    def close(self) -> None:
        for closer in reversed(self._closers):
            closer()
        self._closers.clear()


def target_key(target: Target) -> tuple[Any, ...]:
    """Scenarios whose targets share a key share one started target."""
    if target.is_reference:
        return ("reference", tuple(sorted(target.switches)))
    return ("external", target.url, target.start, str(target.cwd), target.env, target.redis_url)


def start_target(
    target: Target, run_dir: Path, redis_url: str | None = None, launch: Launch | None = None
) -> TargetSession:
    """``launch``: how a profiler needs the target started (extra environment, ``memray run``);
    such a target is started for that profiled run only, never shared. ``redis_url``
    (``--redis-url``): the reference stack's Redis; for an external target, the Redis to read
    INFO from (instead of ``target.redis_url``)."""
    if target.is_reference:
        return _start_reference(target, run_dir, redis_url, launch)
    return _start_external(target, run_dir, launch, redis_url)


def _connect_shim(
    run_dir: Path, launch: Launch | None
) -> tuple[dict[str, str], Path | None, str | None]:
    """The environment for counting the target's connects, its log, or why not. Only for the
    plain run: a profiled or counted launch (memray, valgrind) measures something else, and the
    shim's few instructions per connect must not enter instruction counts."""
    if launch is not None:
        return {}, None, "not for a profiled or counted launch"
    log = run_dir / "connect.log"
    try:
        return shim_env(log), log, None
    except (ShimUnavailableError, OSError) as exc:
        return {}, None, f"not counted: {exc}"


def _start_reference(
    target: Target, run_dir: Path, redis_url: str | None, launch: Launch | None = None
) -> TargetSession:
    shim, connect_log, connect_note = _connect_shim(run_dir, launch)
    options = StackOptions(
        run_dir=run_dir,
        switches=target.switches,
        redis_url=redis_url,
        # The stack gives the service and the worker this environment: both are counted.
        service_env={**INSTRUMENT_ENV, **shim, **(launch.env if launch else {})},
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
        connect_log=connect_log,
        connect_note=connect_note,
    )
    session._closers.append(stack.stop)
    return session


def _start_external(
    target: Target, run_dir: Path, launch: Launch | None = None, redis_url: str | None = None
) -> TargetSession:
    assert target.url and target.host and target.port
    session = TargetSession(
        target=target,
        host=target.host,
        port=target.port,
        base_url=target.url,
        pids={},
        external_redis_url=redis_url or target.redis_url,
    )
    ready_url = f"{target.url.rstrip('/')}{target.ready_path}"
    start = (launch.start if launch else None) or target.start
    if start:
        shim: dict[str, str] = {}
        if target.profile_process in (None, "started"):  # the shim goes where we measure
            shim, session.connect_log, session.connect_note = _connect_shim(run_dir, launch)
        else:
            session.connect_note = "not counted: target.profile_process is not the started process"
        proc = ManagedProcess(
            "service",
            ["/bin/sh", "-c", shell_command(start)],
            run_dir / "logs" / "service.log",
            # INSTRUMENT_ENV: an app wrapped with perfaudit's hook turns its loop probe on.
            env={
                **os.environ,
                **INSTRUMENT_ENV,
                **dict(target.env),
                **shim,
                **(launch.env if launch else {}),
            },  # fmt: skip
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
    else:
        session.connect_note = "not counted: perfaudit did not start the service (target.start)"
        if not _wait(ready_url, target.ready_timeout_s):
            raise ProcessStartError(
                f"{target.url}: nothing answers GET {target.ready_path} "
                f"(waited {target.ready_timeout_s:.0f} s); start the service or add target.start"
            )
    pid = _profile_pid(target, session.pids.get("service"))
    if pid is not None:
        session.pids["service"] = pid
    session.instrumented = _has_loop_probe(target.url)
    return session


def shell_command(start: str) -> str:
    """``start`` for ``/bin/sh -c``, exec'd so the started pid is the service's. Leading
    ``VAR=value`` words (those the validator left, as their values need the shell: ``$X``)
    stay before ``exec``: ``exec VAR=1 cmd`` would look for a command named ``VAR=1``, while
    assignments before a special builtin reach the exec'd command."""
    pos = 0
    while m := ASSIGNMENT.match(start, pos):
        pos = m.end()
    return f"{start[:pos].strip()} exec {start[pos:].strip()}".strip()


def _has_loop_probe(url: str) -> bool:
    """The app was wrapped with perfaudit's hook (``InstrumentedASGI``) and it is on."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}{LOOP_PATH}", timeout=2.0) as resp:
            return resp.status == 200 and "samples" in json.loads(resp.read())
    except (OSError, ValueError):
        return False


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
