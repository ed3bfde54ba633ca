"""External targets measured like the reference: their Redis (INFO deltas, round trips), loop
lag (perfaudit's hook, or a canary), exact counts of new outbound TCP connections (the
connect() shim), and ``target.env`` / ``VAR=value`` prefixes for the started command.

Real processes throughout: an embedded redis-server, ``tests/apps/connect_app.py`` on uvicorn,
``perfaudit run`` as a user runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from perfaudit.collect.canary import CanaryCollector, summarize
from perfaudit.collect.connections import ConnectionCounter, count
from perfaudit.collect.derive import per_request
from perfaudit.collect.redis_info import RedisInfoDelta
from perfaudit.run.targets import start_target
from perfaudit.scenario import ScenarioError, load_scenario
from perfaudit.scenario.model import Canary, Target
from perfaudit.stack.net import free_port
from perfaudit.stack.redis_server import redis_process

APP = Path(__file__).parent / "apps" / "connect_app.py"
PERFAUDIT = [sys.executable, "-m", "perfaudit.cli"]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = redis_process(tmp_path_factory.mktemp("redis"))
    proc.start()
    try:
        proc.wait_ready(10)
        yield url
    finally:
        proc.stop()


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return bytes(resp.read())


def app_target(port: int, start_prefix: str = "", **kw: object) -> Target:
    return Target(
        "external",
        url=f"http://127.0.0.1:{port}",
        start=f"{start_prefix}{sys.executable} {APP} --port {port}",
        ready_path="/health",
        profile_process="started",
        **kw,  # type: ignore[arg-type]
    )


# -- scenario keys -----------------------------------------------------------------------


def scenario_file(tmp: Path, target: str, name: str = "s.yaml") -> Path:
    p = tmp / name
    body = textwrap.indent(textwrap.dedent(target).strip(), "  ")
    p.write_text(f"name: s\ntarget:\n  service: external\n  url: http://127.0.0.1:8000\n{body}\n"
                 "request: {path: /}\nload: {rate: 10}\nduration: 1s\n")  # fmt: skip
    return p


def problems(path: Path) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return str(info.value).splitlines()


def test_env_and_start_prefix_are_read_into_target_env(tmp_path: Path) -> None:
    s = load_scenario(
        scenario_file(
            tmp_path,
            """
            start: "A=1 B='x y' uvicorn app:app"
            env: {C: hello, PORT: 8000, DEBUG: true, A: overridden-by-start}
            redis_url: redis://:pw@127.0.0.1:6379/0
            canary: {path: /health, rate: 2}
            """,
        )
    )
    t = s.target
    assert t.start == "uvicorn app:app"  # a plain command again, for memray and valgrind
    assert dict(t.env) == {"C": "hello", "PORT": "8000", "DEBUG": "true", "A": "1", "B": "x y"}
    assert t.redis_url == "redis://:pw@127.0.0.1:6379/0"
    assert t.canary == Canary("/health", 2.0)
    assert t.to_dict()["redis_url"] == "redis://:***@127.0.0.1:6379/0"  # results get shared


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ('start: "x"\nenv: {1BAD: v}', "s.yaml:6: target.env.1BAD: not a valid environment"),
        ('start: "x"\nenv: {A: [1, 2]}', "s.yaml:6: target.env.A: must be a string, number or"),
        ('start: "x"\nenv: [A]', "s.yaml:6: target.env: must be a mapping of NAME: value"),
        ("env: {A: b}", "s.yaml:5: target.env: only used with target.start"),
        ('start: "A=1 B=2"', "s.yaml:5: target.start: only variable assignments, no command"),
        ("redis_url: http://127.0.0.1:6379", "s.yaml:5: target.redis_url: must be a redis://"),
        ("redis_url: redis://127.0.0.1:notaport", "s.yaml:5: target.redis_url: not a valid URL"),
        ("canary: {rate: 5}", "s.yaml:5: target.canary.path: required"),
        ("canary: {path: health}", "s.yaml:5: target.canary.path: must be a path starting"),
        ("canary: {path: /h, rate: 0}", "s.yaml:5: target.canary.rate: must be a number > 0"),
    ],
)
def test_bad_target_keys_name_file_line_key_and_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    lines = problems(scenario_file(tmp_path, target))
    assert any(line.startswith(expected) for line in lines), lines


def test_env_keys_are_external_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "r.yaml"
    p.write_text("name: r\ntarget: {service: reference, env: {A: b}}\nrequest: {path: /}\n"
                 "load: {rate: 1}\nduration: 1s\n")  # fmt: skip
    assert any("target.env: only for service: external" in x for x in problems(p))


# -- the started command -------------------------------------------------------------------


def test_started_command_gets_target_env_and_shell_expanded_prefixes(tmp_path: Path) -> None:
    port = free_port()
    # FROM_SHELL needs the shell ($HOME): it stays in the command, before exec.
    target = app_target(port, "FROM_SHELL=$HOME/x ", env=(("GREETING", "hello"),))
    session = start_target(target, tmp_path)
    try:
        base = session.base_url

        def env(name: str) -> object:
            return json.loads(get(f"{base}/env?name={name}"))["value"]

        assert env("GREETING") == "hello"
        assert env("FROM_SHELL") == f"{Path.home()}/x"
        assert env("PERFAUDIT_INSTRUMENT") == "1"  # a wrapped app turns its probe on
        # exec'd: the pid perfaudit measures is the service, not a shell
        assert "connect_app.py" in " ".join(psutil.Process(session.pids["service"]).cmdline())
    finally:
        session.close()


# -- Redis: commands and round trips ----------------------------------------------------------


def test_round_trips_show_pipelining(redis_url: str) -> None:
    c = redis.Redis.from_url(redis_url, lib_name=None, lib_version=None)
    c.ping()  # connected before the windows: no handshake inside them
    seq = RedisInfoDelta(redis_url)
    seq.start()
    for i in range(10):
        c.get(f"k{i}")
    sequential = seq.stop()
    pip = RedisInfoDelta(redis_url)
    pip.start()
    pipe = c.pipeline(transaction=False)
    for i in range(10):
        pipe.get(f"k{i}")
    pipe.execute()
    pipelined = pip.stop()
    c.close()

    assert sequential["total_commands"] == 10 and sequential["round_trips"] == 10
    assert pipelined["total_commands"] == 10 and pipelined["round_trips"] == 1
    derived = per_request(5, pipelined, None)["redis"]
    assert derived["commands"] == 2.0 and derived["round_trips"] == 0.2


# -- new outbound connections: exact, where sampling misses them --------------------------------


class ProcSampler:
    """What a psutil sampler at 4 Hz sees: the outbound connections open at each sample."""

    def __init__(self, pid: int, own_port: int) -> None:
        self.proc, self.own_port = psutil.Process(pid), own_port
        self.seen: set[tuple[object, object]] = set()
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for conn in self.proc.net_connections(kind="tcp"):
                if conn.raddr and conn.laddr.port != self.own_port:
                    self.seen.add((conn.laddr, conn.raddr))
            self.samples += 1
            self._stop.wait(0.25)

    def __enter__(self) -> ProcSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_every_short_lived_connection_is_counted_exactly(tmp_path: Path) -> None:
    port = free_port()
    session = start_target(app_target(port), tmp_path)
    try:
        assert session.connect_log is not None, session.connect_note
        counter = ConnectionCounter(session.connect_log, session.pids)
        requests, per = 60, 5
        counter.start()
        with ProcSampler(session.pids["service"], port) as sampler:
            for _ in range(requests):
                get(f"{session.base_url}/connect?n={per}")
            while sampler.samples < 4:  # the sampler had its chances
                threading.Event().wait(0.05)
        result = counter.stop()
    finally:
        session.close()
    assert result["source"] == "connect-shim" and result["exact"] is True
    assert result["new"] == requests * per
    assert result["by_process"] == {"service": requests * per}
    [dest] = result["by_destination"]
    assert dest.startswith("127.0.0.1:") and result["by_destination"][dest] == requests * per
    # Each connection lives microseconds: sampling /proc sees almost none of them.
    assert len(sampler.seen) < result["new"] / 4
    derived = per_request(requests, None, None, result)["connections"]
    assert derived == {"new_per_request": per, "by_destination": {dest: per}}


def test_the_count_keeps_only_the_window_and_names_processes() -> None:
    lines = [
        "7 127.0.0.1 6379 100",
        "7 ::1 80 150",
        "8 10.0.0.1 443 200",
        "9 1.2.3.4 1 300",
        "9 1.2",
    ]
    out = count(lines, 150, 250, {7: "service"})
    assert out["new"] == 2
    assert out["by_destination"] == {"10.0.0.1:443": 1, "[::1]:80": 1}
    assert out["by_process"] == {"8": 1, "service": 1}


# -- loop lag: perfaudit's hook, else the canary -------------------------------------------------


def test_a_wrapped_app_is_measured_by_its_probe(tmp_path: Path) -> None:
    port = free_port()
    session = start_target(app_target(port, "CONNECT_APP_PROBE=1 "), tmp_path)
    try:
        assert session.instrumented
        assert session.describe()["loop_lag"] == "probe"
    finally:
        session.close()
    unwrapped = start_target(app_target(free_port()), tmp_path / "2")
    try:
        assert not unwrapped.instrumented
    finally:
        unwrapped.close()


def test_canary_sees_a_blocked_loop(tmp_path: Path) -> None:
    port = free_port()
    session = start_target(app_target(port), tmp_path)
    try:
        canary = CanaryCollector(session.base_url, "/health", rate_hz=20)
        canary.calibrate()  # idle: the baseline
        stop = threading.Event()

        def blocker() -> None:  # the loop spends its time in 30 ms sleeps
            while not stop.is_set():
                get(f"{session.base_url}/block?ms=30")

        canary.start()
        thread = threading.Thread(target=blocker)
        thread.start()
        stop.wait(1.0)
        stop.set()
        thread.join()
        lag = canary.stop()
    finally:
        session.close()
    assert lag["source"] == "canary" and lag["path"] == "/health" and lag["errors"] == 0
    assert lag["samples"] >= 5 and lag["baseline_ms"] > 0
    # A canary arriving during a 30 ms sleep waits for the rest of it: a lower bound, by design.
    assert lag["max_ms"] >= 5
    assert lag["p50_ms"] <= lag["p99_ms"] <= lag["max_ms"]


def test_canary_summary_subtracts_the_baseline_and_clamps() -> None:
    out = summarize("/h", 5, 1.0, [0.5, 1.0, 3.0, 11.0], errors=1)
    assert out["samples"] == 4 and out["errors"] == 1
    assert out["max_ms"] == 10.0 and out["mean_ms"] == 3.0 and out["p50_ms"] == 0.0
    assert summarize("/h", 5, 1.0, [], 0)["p99_ms"] is None


def test_canary_on_a_missing_path_is_reported_not_fatal(tmp_path: Path) -> None:
    canary = CanaryCollector(f"http://127.0.0.1:{free_port()}", "/health")
    canary.calibrate()  # nothing listens: no exception here
    with pytest.raises(RuntimeError, match="canary GET /health"):
        canary.start()


# -- end to end: perfaudit run ------------------------------------------------------------------


def test_perfaudit_run_measures_an_external_target(tmp_path: Path, redis_url: str) -> None:
    port = free_port()
    target = f"""target:
  service: external
  url: http://127.0.0.1:{port}
  start: "REDIS_URL={redis_url} {sys.executable} {APP} --port {port}"
  env: {{CONNECT_APP_UNUSED: "1"}}
  redis_url: {redis_url}
  ready_path: /health
  canary: {{path: /health, rate: 10}}
"""
    for name, path in (("ext-redis", "/redis?n=10"), ("ext-connect", "/connect?n=3")):
        (tmp_path / f"{name}.yaml").write_text(
            f"name: {name}\n{target}request: {{path: '{path}'}}\nload: {{rate: 40}}\n"
            "warmup: 0.5s\nduration: 1.5s\n"
        )
    out = tmp_path / "reports"
    # (a window may cut a request in two, so totals need not be multiples of 10 or 3)
    proc = subprocess.run(
        [*PERFAUDIT, "run", str(tmp_path / "ext-redis.yaml"), str(tmp_path / "ext-connect.yaml"),
         "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    [results] = out.glob("*/results.json")
    entries = {e["name"]: e for e in json.loads(results.read_text())["scenarios"]}
    red, con = entries["ext-redis"], entries["ext-connect"]
    for e in (red, con):
        assert e["validity"]["valid"], e["validity"]
        assert e["server"]["loop_lag"]["source"] == "canary"
        assert e["server"]["loop_lag"]["samples"] > 0
        assert e["server"]["connections"]["source"] == "connect-shim"
    r = red["server"]["redis"]
    # 10 sequential GETs per request: commands and round trips are both 10 per request.
    assert r["commands"] == {"get": r["total_commands"]}
    assert r["round_trips"] == r["total_commands"]
    d = red["derived"]["redis"]
    assert d["commands"] == pytest.approx(10, rel=0.2)
    assert d["round_trips"] == pytest.approx(d["commands"])
    c = con["server"]["connections"]
    assert c["new"] > 0 and list(c["by_process"]) == ["service"]
    assert con["derived"]["connections"]["new_per_request"] == pytest.approx(3, rel=0.2)


def test_without_a_compiler_the_count_is_skipped_with_a_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from perfaudit.collect import connections

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing built yet
    monkeypatch.setattr(connections.shutil, "which", lambda name: None)
    with pytest.raises(connections.ShimUnavailableError, match="gcc"):
        connections.shim_env(tmp_path / "connect.log")
    port = free_port()
    session = start_target(app_target(port), tmp_path)
    try:
        assert session.connect_log is None
        assert "gcc" in session.describe()["connections"]
        assert get(f"{session.base_url}/health") == b"ok"  # the target runs all the same
    finally:
        session.close()


def test_a_users_ld_preload_is_kept(tmp_path: Path) -> None:
    from perfaudit.collect.connections import LOG_ENV, shim_env

    env = shim_env(tmp_path / "c.log", base={"LD_PRELOAD": "/opt/libjemalloc.so"})
    shim, user = env["LD_PRELOAD"].split()
    assert shim.endswith(".so") and Path(shim).exists() and user == "/opt/libjemalloc.so"
    assert env[LOG_ENV] == str(tmp_path / "c.log")
