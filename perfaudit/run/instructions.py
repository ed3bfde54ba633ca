"""The instructions measure: instructions per request of the target's own processes,
counted by valgrind's callgrind, deterministic to ~0.1 % across fresh processes.

Per group of scenarios sharing a target:

1. the target starts with its Python processes under callgrind (the reference service and
   its worker; an external target's started process), in a fixed environment (hash seed,
   locale, stand-ins without jitter, errors or timeouts, no loop-lag probe);
2. per scenario: ``warmup_requests`` sequential requests (specialisation, lazy imports,
   pool connects), an idle window, ``requests`` requests in ``windows`` sub-windows, each
   zeroed before and dumped after, closed only when the work the requests caused is done
   (jobs, callbacks), and a second idle window;
3. background work is subtracted: per second for a service (uvicorn's timers), per poll
   for arq's worker (it polls faster when idle, so per second would be wrong);
4. optionally a second, native run with Python call counting (perfaudit.measure.pycalls):
   calls per function and request, the Python-level "where did it go".

Only the measuring side: the entry's ``cost.instructions`` is what analysis reads.
"""

from __future__ import annotations

import shlex
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from perfaudit.measure import callgrind, pycalls
from perfaudit.measure.driver import DriverError, Sent, SequentialDriver
from perfaudit.measure.environment import cost_environment
from perfaudit.measure.quiet import QuietTimeout, ReferenceQuiet, settle_wait
from perfaudit.run.targets import TargetSession, start_target
from perfaudit.scenario import Scenario
from perfaudit.scenario.template import RunIds, compile_request
from perfaudit.stack.client import StackClient
from perfaudit.stack.launch import Launch
from perfaudit.stack.pycommand import wrap_python_start

DETERMINISTIC_ENV = {
    "PYTHONHASHSEED": "0",
    "PERFAUDIT_WORKER_POLL_DELAY": "0.1",  # see perfaudit.refservice.worker
    "PERFAUDIT_WORKER_MAX_JOBS": "1",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PERFAUDIT_INSTRUMENT": "0",  # the loop-lag probe ticks every 50 ms: not the service's work
}
# Upstreams that answer the same way every time; response sizes stay the scenario's.
DETERMINISTIC_STANDINS: dict[str, Any] = {
    "routes": {"*": {"latency_ms": 1, "jitter_ms": 0, "error_rate": 0, "timeout_rate": 0}},
    "callback_delay_ms": 20,
    "callback_jitter_ms": 0,
    "callback_failure_rate": 0,
}
SECRETS_SEED = "perfaudit-instructions"  # the same secrets in every counted run
STARTUP_TIMEOUT_S = 300.0  # 20-25 s per process measured; a busy machine doubles it
QUIET_TIMEOUT_S = 600.0
BUSY_SHARE = 0.05  # net work below this share of the raw count: the process only idled
KEEP_FUNCTIONS = 400  # per process: enough for a differential, small in results.json
REFERENCE_PROCESSES = ("service", "worker")
POLLED = {"worker"}  # processes whose idle work is charged per poll


class Seeder(Protocol):
    def __call__(
        self, scenario: Scenario, session: TargetSession, run: RunIds, count: int
    ) -> int: ...


# -- counts of one window ----------------------------------------------------------------
@dataclass
class Reading:
    total: int
    functions: dict[str, int] | None  # None: this dump's table is not to be trusted
    wall_s: float
    polls: float


class Probe(Protocol):
    """``zero`` and ``capture`` are quick (they bracket a window); ``load`` reads what a
    capture took: (total, per function)."""

    def zero(self, name: str, pid: int) -> None: ...
    def capture(self, name: str, pid: int) -> Any: ...
    def load(self, captured: Any) -> tuple[int, dict[str, int] | None]: ...


class CallgrindProbe:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.dumps: list[Path] = []

    def zero(self, name: str, pid: int) -> None:
        callgrind.zero(pid)

    def capture(self, name: str, pid: int) -> Path:
        path = callgrind.dump(pid, self.out_dir, label=name)
        self.dumps.append(path)
        return path

    def load(self, captured: Path) -> tuple[int, dict[str, int] | None]:
        d = callgrind.parse(captured)
        return d.summary, (d.self_cost if d.consistent() else None)


class PyCallsProbe:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._before: dict[str, dict[str, int]] = {}

    def zero(self, name: str, pid: int) -> None:
        self._before[name] = pycalls.snapshot(pycalls.socket_path(self.directory, pid))

    def capture(self, name: str, pid: int) -> dict[str, int]:
        after = pycalls.snapshot(pycalls.socket_path(self.directory, pid))
        return pycalls.difference(self._before.get(name, {}), after)

    def load(self, captured: dict[str, int]) -> tuple[int, dict[str, int]]:
        return sum(captured.values()), captured


@dataclass
class Counter:
    """Zero, act, wait until quiet, read: one window over every measured process."""

    probe: Probe
    processes: dict[str, int]  # name -> pid
    wait_quiet: Callable[[float], None]
    polls: Callable[[], int] = lambda: 0

    def _bracket(self, do: Callable[[], Any]) -> tuple[Any, float, float]:
        """``do()`` with the poll count and time at its middle: a poll during the call
        may fall on either side of the zero or dump."""
        p0, t0 = self.polls(), time.monotonic()
        value = do()
        p1, t1 = self.polls(), time.monotonic()
        return value, (p0 + p1) / 2, (t0 + t1) / 2

    def window(self, action: Callable[[], Any]) -> tuple[dict[str, Reading], Any]:
        at: dict[str, tuple[float, float]] = {}
        for name, pid in self.processes.items():
            _, polls, t = self._bracket(lambda n=name, p=pid: self.probe.zero(n, p))
            at[name] = (polls, t)
        result = action()
        self.wait_quiet(QUIET_TIMEOUT_S)
        captured = {}
        for name, pid in self.processes.items():
            got, polls, t = self._bracket(lambda n=name, p=pid: self.probe.capture(n, p))
            captured[name] = (got, polls - at[name][0], t - at[name][1])
        out = {}
        for name, (got, polls, wall) in captured.items():
            total, functions = self.probe.load(got)
            out[name] = Reading(total, functions, wall, polls)
        return out, result


def _unit(name: str, r: Reading, idle: list[Reading]) -> float:
    """What background work is charged by: polls for arq's worker, else seconds."""
    if name in POLLED and sum(i.polls for i in idle) > 0:
        return float(r.polls)
    return r.wall_s


@dataclass
class ProcessCost:
    per_request: float
    windows: list[float]
    raw_per_request: float
    idle_rate: float
    idle_unit: str
    functions: dict[str, float] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        """Did the requests give this process work of its own? (A worker behind /health
        only polls: its net count is noise around zero, not a figure to gate on.)"""
        return self.per_request >= BUSY_SHARE * self.raw_per_request

    def to_dict(self) -> dict[str, Any]:
        return {
            "busy": self.busy,
            "per_request": self.per_request,
            "windows": self.windows,
            "raw_per_request": self.raw_per_request,
            "idle": {"rate": self.idle_rate, "unit": self.idle_unit},
            "functions": self.functions,
        }


def net_cost(
    name: str,
    windows: list[Reading],
    counts: list[int],
    idle: list[Reading],
    keep_min: float = 0.5,
) -> ProcessCost:
    """Per-request cost of one process with its idle work subtracted."""
    idle_units = sum(_unit(name, i, idle) for i in idle)
    rate = sum(i.total for i in idle) / idle_units if idle_units > 0 else 0.0
    per_window = [
        (w.total - rate * _unit(name, w, idle)) / n for w, n in zip(windows, counts, strict=True)
    ]
    n_total = sum(counts)
    units = sum(_unit(name, w, idle) for w in windows)
    # Per function: only from dumps whose table adds up to their summary (the first dump
    # of a process can carry millions of instructions from before its zero).
    clean = [(w, n) for w, n in zip(windows, counts, strict=True) if w.functions is not None]
    clean_idle = [i for i in idle if i.functions is not None]
    n_fn = sum(n for _, n in clean)
    fn_units = sum(_unit(name, w, idle) for w, _ in clean)
    idle_fn_units = sum(_unit(name, i, idle) for i in clean_idle)
    functions: dict[str, float] = {}
    for w, _ in clean:
        for fn, ir in (w.functions or {}).items():
            functions[fn] = functions.get(fn, 0.0) + ir
    for i in clean_idle:
        for fn, ir in (i.functions or {}).items():
            functions[fn] = functions.get(fn, 0.0) - ir * fn_units / idle_fn_units
    top = sorted(functions.items(), key=lambda kv: -abs(kv[1]))[:KEEP_FUNCTIONS]
    total = sum(w.total for w in windows)
    return ProcessCost(
        per_request=(total - rate * units) / n_total,
        windows=per_window,
        raw_per_request=total / n_total,
        idle_rate=rate,
        idle_unit="poll" if name in POLLED and idle and idle[0].polls else "s",
        functions={fn: round(v / n_fn, 3) for fn, v in top if n_fn and abs(v / n_fn) >= keep_min},
    )


def split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


# -- one pass over a started target ------------------------------------------------------
@dataclass
class Pass:
    session: TargetSession
    counter: Counter
    quiet: ReferenceQuiet | None
    control: Path  # the wrapped processes' sockets (perfaudit.measure.pycalls)
    stack_dir: Path | None = None  # where the stack ran; its logs are kept in keep_dir
    keep_dir: Path | None = None
    private_redis: bool = True
    frozen: dict[str, bool] = field(default_factory=dict)


def _configure(scenario: Scenario, session: TargetSession) -> None:
    if session.stack is None:
        return
    with StackClient(session.stack) as client:
        if scenario.standins:
            client.configure(dict(scenario.standins))
        client.configure(DETERMINISTIC_STANDINS)
        client.reset()


def _driver(scenario: Scenario, session: TargetSession, run: RunIds) -> SequentialDriver:
    compiled = compile_request(scenario, session.secrets, host=f"{session.host}:{session.port}")
    made = compiled.request_factory(run)(0, 1)
    next_request = made if callable(made) else (lambda: made)
    assert scenario.request is not None
    return SequentialDriver(session.host, session.port, next_request, scenario.request.is_success)


def measure_scenario(
    scenario: Scenario,
    p: Pass,
    seed: Seeder | None,
    windows: int,
    keep_min: float = 0.5,
    index: int = 0,
) -> tuple[dict[str, dict[str, Any]], Sent, float]:
    """Idle, ``windows`` counted windows, idle; returns per-process costs, what was sent
    and the wall time."""
    cost = scenario.cost
    t0 = time.monotonic()
    _configure(scenario, p.session)
    # The same ids in every run, unless the Redis is shared (--redis-url): there an update
    # id seen before would be dropped as a re-delivery.
    run = RunIds.fixed(index) if p.private_redis else RunIds.new()
    total = cost.warmup_requests + cost.requests
    if scenario.prepare.pending_callbacks and seed is not None:
        seed(scenario, p.session, run, total + 10)
    sent = Sent()
    with _driver(scenario, p.session, run) as driver:
        # Freeze the collector half-way through the warm-up: right after a freeze the
        # young heap is empty, full collections come often and the next window was
        # 0.6 % dearer than the rest; the second half lets that settle.
        first = cost.warmup_requests // 2
        for n, then_freeze in ((first, True), (cost.warmup_requests - first, False)):
            if n:
                driver.send(n)
                p.counter.wait_quiet(QUIET_TIMEOUT_S)
            if then_freeze and not p.frozen:
                missed = freeze(p.control, p.counter.processes)
                p.frozen = {name: name not in missed for name in p.counter.processes}

        def idle() -> None:
            time.sleep(cost.idle_s)

        counts = split(cost.requests, windows)
        readings: list[dict[str, Reading]] = []
        for n in counts:
            r, s = p.counter.window(lambda n=n: driver.send(n))
            readings.append(r)
            sent.add(s)
        # Both idle windows after the counted ones: an idle gap before a window made it
        # ~0.5 % dearer than the rest (pooled connections expire, timers fire late).
        idle_before, _ = p.counter.window(idle)
        idle_after, _ = p.counter.window(idle)
    out = {
        name: net_cost(
            name,
            [r[name] for r in readings],
            counts,
            [idle_before[name], idle_after[name]],
            keep_min,
        ).to_dict()
        for name in p.counter.processes
    }
    return out, sent, time.monotonic() - t0


def _processes(session: TargetSession) -> dict[str, int]:
    if session.target.is_reference:
        return {n: session.pids[n] for n in REFERENCE_PROCESSES if n in session.pids}
    return {"service": session.pids["service"]}


def _start(target_scenario: Scenario, keep_dir: Path, redis_url: str | None, launch: Launch,
           probe: Probe, control: Path) -> Pass:  # fmt: skip
    """The target started in a folder whose path has the same length in every run (its
    paths reach the service's environment: SQLite file, temp dir); the logs are copied to
    ``keep_dir`` when it stops."""
    run_dir = Path(tempfile.mkdtemp(prefix="perfaudit-cost-"))
    target = target_scenario.target
    if not target.is_reference:
        target = replace(target, ready_timeout_s=max(target.ready_timeout_s, STARTUP_TIMEOUT_S))
    try:
        session = start_target(target, run_dir, redis_url=redis_url, launch=launch)
    except BaseException:
        _keep(run_dir, keep_dir)
        raise
    try:
        quiet = ReferenceQuiet(session.stack) if session.stack else None
        if quiet is not None:
            counter = Counter(probe, _processes(session), quiet.wait, quiet.polls)
        else:
            counter = Counter(
                probe, _processes(session), settle_wait(target_scenario.cost.settle_s)
            )
        _wait_sockets(control, counter.processes.values())
    except BaseException:
        session.close()
        _keep(run_dir, keep_dir)
        raise
    return Pass(session, counter, quiet, control, run_dir, keep_dir, redis_url is None)


def _close(p: Pass) -> None:
    try:
        if p.quiet is not None:
            p.quiet.close()
        p.session.close()
    finally:
        shutil.rmtree(p.control, ignore_errors=True)
        if p.stack_dir is not None and p.keep_dir is not None:
            _keep(p.stack_dir, p.keep_dir)


def _keep(stack_dir: Path, keep_dir: Path) -> None:
    """Logs and stack.json into the run folder; the rest (SQLite, temp files) goes."""
    keep_dir.mkdir(parents=True, exist_ok=True)
    for name in ("logs", "stack.json"):
        src = stack_dir / name
        if src.is_dir():
            shutil.copytree(src, keep_dir / name, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, keep_dir / name)
    shutil.rmtree(stack_dir, ignore_errors=True)


WRAPPER = ("-m", "perfaudit.measure.pycalls")


def callgrind_launch(scenario: Scenario, out_dir: Path, control: Path) -> Launch:
    """Under callgrind, wrapped by perfaudit.measure.pycalls without counting: its socket
    freezes the collector after warm-up. A start command that cannot be wrapped (not
    Python) runs under callgrind as written."""
    prefix = tuple(callgrind.prefix(out_dir))
    env = {**DETERMINISTIC_ENV, pycalls.DIR_ENV: str(control), pycalls.COUNT_ENV: "0"}
    if scenario.target.is_reference:
        return Launch(
            env=env,
            command_prefix={n: prefix for n in REFERENCE_PROCESSES},
            python_args={n: WRAPPER for n in REFERENCE_PROCESSES},
            startup_timeout_s=STARTUP_TIMEOUT_S,
            standin_config=DETERMINISTIC_STANDINS,
            secrets_seed=SECRETS_SEED,
        )
    assert scenario.target.start
    start = wrap_python_start(scenario.target.start, list(WRAPPER[1:])) or scenario.target.start
    return Launch(env=env, start=f"{shlex.join(prefix)} {start}")


def pycalls_launch(scenario: Scenario, directory: Path) -> Launch | None:
    env = {**DETERMINISTIC_ENV, pycalls.DIR_ENV: str(directory)}
    if scenario.target.is_reference:
        return Launch(
            env=env,
            python_args={n: WRAPPER for n in REFERENCE_PROCESSES},
            standin_config=DETERMINISTIC_STANDINS,
            secrets_seed=SECRETS_SEED,
        )
    assert scenario.target.start
    start = wrap_python_start(scenario.target.start, list(WRAPPER[1:]))
    return None if start is None else Launch(env=env, start=start)


def freeze(control: Path, processes: dict[str, int]) -> list[str]:
    """gc.freeze() in every wrapped process; the names of those that could not."""
    missed = []
    for name, pid in processes.items():
        path = pycalls.socket_path(control, pid)
        try:
            pycalls.freeze(path)
        except (OSError, ValueError, KeyError):
            missed.append(name)
    return missed


# -- a group of scenarios on one target ------------------------------------------------------
Note = Callable[[str], None]


def measure_group(
    scenarios: list[Scenario],
    run_dir: Path,
    redis_url: str | None,
    note: Note,
    seed: Seeder | None = None,
) -> dict[str, dict[str, Any]]:
    """``cost.instructions`` per scenario (every scenario here shares one target)."""
    out: dict[str, dict[str, Any]] = {}
    problems = callgrind.missing()
    if problems:
        for s in scenarios:
            out[s.name] = {"status": "skipped", "errors": problems}
        return out
    dumps = run_dir / "callgrind"
    control = _socket_dir()
    note(f"instructions: starting {scenarios[0].target.label()} under callgrind (20-60 s)...")
    started = time.monotonic()
    probe = CallgrindProbe(dumps)
    p = _start(scenarios[0], run_dir / "cost-target", redis_url,
               callgrind_launch(scenarios[0], dumps, control), probe, control)  # fmt: skip
    startup = time.monotonic() - started
    try:
        for i, s in enumerate(scenarios):
            note(f"instructions: {s.name}: {s.cost.requests} requests in {s.cost.windows} windows")
            out[s.name] = _one(s, p, seed, startup, run_dir, probe, i)
    finally:
        _close(p)
    calls = [s for s in scenarios if s.cost.python_calls and out[s.name]["status"] == "ok"]
    if calls:
        _python_calls(calls, run_dir, redis_url, note, seed, out)
    return out


def _one(s: Scenario, p: Pass, seed: Seeder | None, startup: float, run_dir: Path,
         probe: CallgrindProbe, index: int) -> dict[str, Any]:  # fmt: skip
    first_dump = len(probe.dumps)
    base: dict[str, Any] = {
        "requests": s.cost.requests,
        "environment": cost_environment(s.cost.settings()),
        "settings": s.cost.to_dict(),
        "startup_s": round(startup, 1),
        "errors": [],
        "notes": [],
    }
    try:
        procs, sent, wall = measure_scenario(s, p, seed, s.cost.windows, index=index)
    except (DriverError, QuietTimeout, callgrind.CallgrindError) as exc:
        return {**base, "status": "failed", "errors": [str(exc)]}
    base["sent"] = {"requests": sent.requests, "ok": sent.ok,
                    "statuses": {str(k): v for k, v in sent.statuses.items()}}  # fmt: skip
    base["wall_s"] = round(wall, 1)
    base["gc_frozen"] = dict(p.frozen)
    base["artifacts"] = [str(d.relative_to(run_dir.parent)) for d in probe.dumps[first_dump:]]
    if sent.ok < sent.requests:
        bad = ", ".join(f"{k} ×{v}" for k, v in sent.statuses.items() if not _ok(s, k))
        return {**base, "status": "failed", "processes": procs,
                "errors": [f"{sent.requests - sent.ok} of {sent.requests} requests failed "
                           f"(status {bad}): the count would not be the scenario's path"]}  # fmt: skip
    busy = [pc for pc in procs.values() if pc["busy"]]
    windows = [sum(w) for w in zip(*(pc["windows"] for pc in busy), strict=True)]
    return {**base, "status": "ok", "per_request": sum(pc["per_request"] for pc in busy),
            "windows": windows, "processes": procs}  # fmt: skip


def _ok(s: Scenario, status: int) -> bool:
    return s.request is not None and s.request.is_success(status)


def _python_calls(scenarios: list[Scenario], run_dir: Path, redis_url: str | None, note: Note,
                  seed: Seeder | None, out: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    directory = _socket_dir()
    launch = pycalls_launch(scenarios[0], directory)
    if launch is None:
        for s in scenarios:
            out[s.name]["python_calls"] = {"status": "skipped", "errors": [
                "target.start does not begin with a Python interpreter or console script"]}  # fmt: skip
        return
    note("instructions: counting Python calls per function (a native run)...")
    p = _start(scenarios[0], run_dir / "pycalls-target", redis_url, launch,
               PyCallsProbe(directory), directory)  # fmt: skip
    try:
        for i, s in enumerate(scenarios):
            try:
                procs, _, _ = measure_scenario(s, p, seed, 1, keep_min=0.005, index=i)
            except (DriverError, QuietTimeout, OSError, ValueError) as exc:
                out[s.name]["python_calls"] = {"status": "failed", "errors": [str(exc)]}
                continue
            out[s.name]["python_calls"] = {
                "status": "ok",
                "processes": {
                    n: {"calls_per_request": pc["per_request"], "functions": pc["functions"]}
                    for n, pc in procs.items()
                },
            }
    finally:
        _close(p)


def _socket_dir() -> Path:
    # Unix socket paths are limited to 108 bytes: not under a deep run folder.
    return Path(tempfile.mkdtemp(prefix="perfaudit-cost-"))


def _wait_sockets(directory: Path, pids: Iterable[int], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        path = pycalls.socket_path(directory, pid)
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
