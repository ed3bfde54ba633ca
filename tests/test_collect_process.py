"""ProcessSampler on real child processes: CPU, memory, exits, descendants."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from perfaudit.collect import ProcessSampler

BUSY = "import time\nt = time.time()\nwhile time.time() - t < 1.0: pass\ntime.sleep(5)"
IDLE = "import time; time.sleep(5)"
BIG = "import time; b = b'x' * (200 * 1024 * 1024); time.sleep(5)"
SHORT = "import time; time.sleep(0.3)"
# A parent that does nothing itself; its child does the work (like a uvicorn worker would).
PARENT = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {BUSY!r}])"


@pytest.fixture(scope="module")
def window() -> Iterator[dict[str, Any]]:
    scripts = {"busy": BUSY, "idle": IDLE, "big": BIG, "short": SHORT, "parent": PARENT}
    procs = {name: subprocess.Popen([sys.executable, "-c", code]) for name, code in scripts.items()}
    try:
        sampler = ProcessSampler({name: p.pid for name, p in procs.items()}, interval=0.1)
        sampler.start()
        time.sleep(1.5)
        yield sampler.stop()
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def test_busy_child_uses_clearly_more_cpu_than_an_idle_one(window: dict[str, Any]) -> None:
    busy, idle = window["processes"]["busy"], window["processes"]["idle"]
    # Relative, not absolute: two busy children share two cores with whatever else runs.
    assert busy["cpu_seconds"] > 0.2
    assert busy["cpu_percent"]["max"] > 2 * idle["cpu_percent"]["max"]
    assert busy["cpu_percent"]["mean"] > 3 * idle["cpu_percent"]["mean"] + 10
    assert idle["cpu_seconds"] < 0.15
    assert not busy["exited"] and not idle["exited"]


def test_rss_of_a_200_mb_allocation_shows(window: dict[str, Any]) -> None:
    big, idle = window["processes"]["big"], window["processes"]["idle"]
    assert big["rss_mb"]["max"] > 200
    assert big["rss_mb"]["end"] > 200
    assert idle["rss_mb"]["max"] < 50


def test_child_that_exits_mid_window_is_reported_not_a_crash(window: dict[str, Any]) -> None:
    short = window["processes"]["short"]
    assert short["exited"] is True
    assert 0 < short["exited_at"] < 1.5
    assert short["samples"] >= 1  # sampled while it lived


def test_descendants_count_towards_their_named_process(window: dict[str, Any]) -> None:
    parent = window["processes"]["parent"]
    assert len(parent["pids"]) == 2
    assert parent["cpu_seconds"] > 0.3


def test_timeline_and_shape_are_json_ready(window: dict[str, Any]) -> None:
    json.dumps(window)
    busy = window["processes"]["busy"]
    timeline = busy["timeline"]
    assert len(timeline) == busy["samples"] >= 10  # 1.5 s at 10 Hz
    assert set(timeline[0]) == {"t", "cpu", "rss_mb", "fds", "threads"}
    assert all(a["t"] < b["t"] for a, b in zip(timeline, timeline[1:], strict=False))
    assert busy["fds_max"] >= 3 and busy["threads_max"] >= 1
    assert window["sampler_cpu_seconds"] < 0.5


def test_missing_process_is_reported_as_exited() -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    sampler = ProcessSampler({"gone": p.pid}, interval=0.05)
    sampler.start()
    result = sampler.stop()["processes"]["gone"]
    assert result["exited"] is True and result["samples"] == 0
