"""Event-loop lag: the probe itself, and the reference service with and without it mounted."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest

from perfaudit.collect import LoopLagCollector, MetricsWindow, collectors_for, per_request
from perfaudit.collect.loop_lag import NotInstrumentedError
from perfaudit.refservice.instrument import LagHistogram, LoopLagProbe, enabled
from perfaudit.stack.client import StackClient, text_update
from perfaudit.stack.stack import FAST_STANDINS, Stack, StackOptions


def test_enabled_only_by_the_env_var() -> None:
    assert enabled({"PERFAUDIT_INSTRUMENT": "1"})
    assert not enabled({})
    assert not enabled({"PERFAUDIT_INSTRUMENT": "0"})


def test_histogram_percentiles_within_a_bucket() -> None:
    h = LagHistogram()
    for v in range(1, 101):  # 1 .. 100 ms
        h.record(float(v))
    assert h.n == 100 and h.max_ms == 100.0
    assert h.percentile(50) == pytest.approx(50, rel=0.05)
    assert h.percentile(99) == pytest.approx(99, rel=0.05)
    assert h.percentile(100) == 100.0
    assert LagHistogram().percentile(99) == 0.0


def test_probe_timeline_is_per_second_and_bounded() -> None:
    probe = LoopLagProbe(timeline_seconds=3)
    for sec in range(10):
        for lag in (1.0, 3.0):
            probe.record(lag, now=1000 + sec + 0.5)
    snap = probe.snapshot()
    assert snap["samples"] == 20 and snap["mean_ms"] == 2.0 and snap["max_ms"] == 3.0
    # three finished seconds kept, plus the one in progress
    assert [p["t"] for p in snap["timeline"]] == [1006, 1007, 1008, 1009]
    assert snap["timeline"][-1] == {"t": 1009, "samples": 2, "mean_ms": 2.0, "max_ms": 3.0}
    probe.reset()
    assert probe.snapshot()["samples"] == 0 and probe.snapshot()["timeline"] == []


def test_probe_sees_a_blocked_loop() -> None:
    async def main() -> dict[str, object]:
        probe = LoopLagProbe(interval=0.02)
        await probe.start()
        await asyncio.sleep(0.1)
        time.sleep(0.2)  # blocks the loop, as a sync call in a handler would
        await asyncio.sleep(0.1)
        await probe.stop()
        return probe.snapshot()

    snap = asyncio.run(main())
    assert snap["max_ms"] >= 150  # type: ignore[operator]
    assert snap["samples"] >= 5  # type: ignore[operator]


def test_instrumented_service_reports_loop_lag_and_a_full_window(tmp_path: Path) -> None:
    options = StackOptions(
        run_dir=tmp_path,
        standin_config=FAST_STANDINS,
        service_env={"PERFAUDIT_INSTRUMENT": "1"},
    )
    with Stack(options) as info:
        window = MetricsWindow(
            collectors_for(
                pids=info.pids,
                redis_url=info.redis_url,
                standin_control_url=info.standin_control_url,
                service_url=info.service_url,
            )
        )
        window.start()
        with StackClient(info) as client:
            for i in range(5):
                assert (
                    client.post_update(text_update("/status", chat_id=500 + i)).status_code == 200
                )
            client.wait_for("telegram.sendMessage", count=5, timeout=10)
        time.sleep(1.0)
        result = window.stop()

    json.dumps(result)
    assert list(result) == ["process", "redis", "standins", "loop_lag"]
    assert not [name for name, part in result.items() if "error" in part]
    lag = result["loop_lag"]
    assert lag["samples"] > 0
    assert 0 <= lag["p50_ms"] <= lag["p99_ms"] <= lag["max_ms"]
    assert lag["timeline"] and set(lag["timeline"][0]) == {"t", "samples", "mean_ms", "max_ms"}
    assert set(result["process"]["processes"]) == {"redis", "stand-ins", "service", "worker"}
    assert result["standins"]["routes"]["telegram.sendMessage"]["calls"] == 5
    costs = per_request(5, result["redis"], result["standins"])
    assert costs["upstreams"]["by_upstream"]["telegram"]["calls"] == 1.0
    assert costs["redis"]["commands"] > 0


def test_without_the_env_var_nothing_is_mounted(tmp_path: Path) -> None:
    options = StackOptions(run_dir=tmp_path, standin_config=FAST_STANDINS, start_worker=False)
    with Stack(options) as info:
        assert httpx.get(f"{info.service_url}/__perfaudit/loop").status_code == 404
        assert httpx.post(f"{info.service_url}/__perfaudit/loop/reset").status_code == 404
        with pytest.raises(NotInstrumentedError, match="PERFAUDIT_INSTRUMENT=1"):
            LoopLagCollector(info.service_url).start()
