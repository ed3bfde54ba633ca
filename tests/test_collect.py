"""Pure parts of perfaudit.collect: per-request arithmetic and the window's error handling."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from perfaudit.collect import MetricsWindow, RedisInfoDelta, StandinDelta, collectors_for
from perfaudit.collect.base import Result
from perfaudit.collect.derive import per_request, ratio
from perfaudit.refservice.instrument import InstrumentedASGI
from perfaudit.stack.net import free_port

REDIS = {"total_commands": 400, "connections_received": 5, "commands": {"get": 100, "setex": 300}}
STANDINS = {
    "upstreams": {
        "telegram": {"calls": 200, "errors": 0, "new_connections": 200, "open_connections": 0},
        "cursor_runner": {"calls": 100, "errors": 2, "new_connections": 4, "open_connections": 4},
        "elevenlabs": {"calls": 0, "errors": 0, "new_connections": 0, "open_connections": 0},
    }
}


def test_per_request_arithmetic() -> None:
    d = per_request(100, REDIS, STANDINS)
    assert d["requests"] == 100
    assert d["redis"] == {
        "commands": 4.0,
        "new_connections": 0.05,
        "round_trips": None,  # the INFO had no total_reads_processed
        "by_command": {"get": 1.0, "setex": 3.0},
    }
    ups = d["upstreams"]
    assert ups["calls"] == 3.0
    assert ups["new_connections_per_call"] == pytest.approx(204 / 300)
    assert ups["by_upstream"]["telegram"] == {"calls": 2.0, "new_connections_per_call": 1.0}
    assert ups["by_upstream"]["cursor_runner"] == {"calls": 1.0, "new_connections_per_call": 0.04}
    assert ups["by_upstream"]["elevenlabs"] == {"calls": 0.0, "new_connections_per_call": None}


def test_per_request_with_nothing_to_divide_by_or_failed_parts() -> None:
    assert ratio(3, 0) is None
    d = per_request(0, REDIS, {"error": "ConnectError: refused"})
    assert d["redis"]["commands"] is None and d["upstreams"] is None
    assert per_request(10, None, None) == {
        "requests": 10, "redis": None, "upstreams": None, "connections": None
    }  # fmt: skip


class Fake:
    def __init__(self, fail_on: str = "") -> None:
        self.fail_on = fail_on
        self.calls: list[str] = []

    def start(self) -> None:
        self.calls.append("start")
        if self.fail_on == "start":
            raise RuntimeError("no start")

    def stop(self) -> Result:
        self.calls.append("stop")
        if self.fail_on == "stop":
            raise RuntimeError("no stop")
        return {"ok": True}


def test_window_turns_failures_into_errors() -> None:
    good, bad_start, bad_stop = Fake(), Fake("start"), Fake("stop")
    window = MetricsWindow({"a": good, "b": bad_start, "c": bad_stop})
    window.start()
    result = window.stop()
    assert list(result) == ["a", "b", "c"]
    assert result["a"] == {"ok": True}
    assert result["b"] == {"error": "RuntimeError: no start"}
    assert result["c"] == {"error": "RuntimeError: no stop"}
    assert bad_start.calls == ["start"]  # never stopped what did not start


def test_window_with_absent_redis_and_standins_does_not_raise() -> None:
    port = free_port()  # nothing listens there
    window = MetricsWindow(
        {
            "redis": RedisInfoDelta(f"redis://127.0.0.1:{port}/0", timeout=1),
            "standins": StandinDelta(f"http://127.0.0.1:{port}", timeout=1),
        }
    )
    window.start()
    result = window.stop()
    assert "error" in result["redis"] and "error" in result["standins"]


def test_window_context_manager_ends_sampling_on_error() -> None:
    fake = Fake()
    with pytest.raises(KeyError), MetricsWindow({"a": fake}):
        raise KeyError("load failed")
    assert fake.calls == ["start", "stop"]


def test_collectors_for_leaves_out_unknown_sources() -> None:
    assert list(collectors_for(service_url="http://x", instrumented=False)) == []
    assert list(collectors_for(pids={"svc": 1}, service_url="http://x")) == ["process", "loop_lag"]


def test_instrumented_asgi_wraps_any_app() -> None:
    async def hello(request: object) -> PlainTextResponse:
        return PlainTextResponse("hi")

    app = InstrumentedASGI(Starlette(routes=[Route("/", hello)]))

    async def main() -> dict[str, Any]:
        # Drive the lifespan by hand, as a server would (httpx's transport does not).
        inbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        lifespan = asyncio.create_task(
            app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
        )
        await inbox.put({"type": "lifespan.startup"})
        assert (await outbox.get())["type"] == "lifespan.startup.complete"
        assert app.probe._task is not None
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/")).text == "hi"
            assert (await client.post("/__perfaudit/loop/reset")).json()["ok"] is True
            await asyncio.sleep(0.12)
            body = (await client.get("/__perfaudit/loop")).json()
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan
        return body

    body = asyncio.run(main())
    assert set(body) >= {"samples", "mean_ms", "p50_ms", "p99_ms", "max_ms", "timeline"}
    assert body["samples"] >= 1
    assert app.probe._task is None  # stopped with the lifespan
