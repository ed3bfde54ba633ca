"""StandinDelta against the real stand-ins process."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from perfaudit.collect import StandinDelta
from perfaudit.collect.standins import chat_key, delta, sequences, upstream_of
from perfaudit.stack.net import LOOPBACK, free_port, http_ok
from perfaudit.stack.process import ManagedProcess


@pytest.fixture(scope="module")
def standins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    ports = {name: free_port() for name in ("telegram", "cursor", "elevenlabs", "control")}
    urls = {name: f"http://{LOOPBACK}:{port}" for name, port in ports.items()}
    log = Path(tmp_path_factory.mktemp("standins")) / "standins.log"
    proc = ManagedProcess(
        "stand-ins",
        [sys.executable, "-m", "perfaudit.upstreams", "--host", LOOPBACK,
         "--telegram-port", str(ports["telegram"]), "--cursor-port", str(ports["cursor"]),
         "--elevenlabs-port", str(ports["elevenlabs"]), "--control-port", str(ports["control"])],
        log,
        ready=lambda: http_ok(f"{urls['control']}/_standin/health"),
    )  # fmt: skip
    proc.start()
    try:
        proc.wait_ready(20)
        yield urls
    finally:
        proc.stop()


def test_calls_and_new_connections_over_keep_alive(standins: dict[str, str]) -> None:
    collector = StandinDelta(standins["control"])
    collector.start()
    with httpx.Client(base_url=standins["telegram"], timeout=5) as http:  # one keep-alive conn
        for i in range(3):
            resp = http.post("/bot123:abc/sendMessage", json={"chat_id": 1, "text": f"hi {i}"})
            assert resp.status_code == 200
    result = collector.stop()

    assert result["routes"] == {"telegram.sendMessage": {"calls": 3, "errors": 0}}
    assert result["upstreams"]["telegram"]["calls"] == 3
    assert result["upstreams"]["telegram"]["new_connections"] == 1
    assert result["upstreams"]["cursor_runner"]["new_connections"] == 0
    assert result["calls"] == 3 and result["errors"] == 0
    assert result["callbacks"]["sent"] == 0 and result["reset"] is False


def test_route_to_upstream() -> None:
    assert upstream_of("telegram.sendMessage") == "telegram"
    assert upstream_of("git.clone") == "cursor_runner"
    assert upstream_of("cursor.iterateAsync") == "cursor_runner"
    assert upstream_of("elevenlabs.tts") == "elevenlabs"
    assert upstream_of("cursor.callback") is None  # the stand-in calling the service


def test_reset_inside_the_window_counts_from_zero() -> None:
    start = {
        "routes": {"telegram.sendMessage": {"calls": 50, "errors": 1}},
        "connections": {"telegram": {"new": 10, "open": 1}},
        "callbacks": {"sent": 5, "failed": 0, "pending": 0},
    }
    end = {
        "routes": {"telegram.sendMessage": {"calls": 2, "errors": 0},
                   "cursor.callback": {"calls": 1, "errors": 0}},
        "connections": {"telegram": {"new": 1, "open": 1}},
        "callbacks": {"sent": 1, "failed": 0, "pending": 2},
    }  # fmt: skip
    result = delta(start, end)
    assert result["reset"] is True
    assert result["routes"]["telegram.sendMessage"] == {"calls": 2, "errors": 0}
    assert result["calls"] == 2  # the outgoing callback is not an upstream call
    assert result["upstreams"]["telegram"]["new_connections"] == 1
    assert result["callbacks"] == {"sent": 1, "failed": 0, "pending": 2}


def _call(route: str, ts: float, ms: float, body: dict[str, object] | None) -> dict[str, object]:
    return {"route": route, "ts": ts, "duration_ms": ms, "json": body}


def test_sequences_pair_each_chats_consecutive_calls() -> None:
    calls = []
    for chat in (1, 2, 3):  # awaited in turn: getFile starts 1 ms after the notice ended
        t = 100.0 + chat
        calls += [_call("telegram.sendMessage", t, 50.0, {"chat_id": chat, "text": "🎤"}),
                  _call("telegram.getFile", t + 0.051, 40.0, {"file_id": f"voice-{chat}"})]  # fmt: skip
    for chat in (4, 5):  # gathered: getFile starts while the notice runs
        t = 200.0 + chat
        calls += [_call("telegram.sendMessage", t, 50.0, {"chat_id": chat}),
                  _call("telegram.getFile", t + 0.002, 40.0, {"file_id": f"voice-{chat}"})]  # fmt: skip
    calls.append(_call("elevenlabs.stt", 300.0, 900.0, None))  # no chat: in no sequence
    out = sequences(calls)
    assert out["calls"] == 11 and out["chats"] == 5 and out["truncated"] is False
    [p] = out["pairs"]
    assert (p["first"], p["then"], p["groups"], p["sequential"], p["overlapped"]) == (
        "telegram.sendMessage", "telegram.getFile", 5, 3, 2,
    )  # fmt: skip
    assert p["gap_ms_p50"] == pytest.approx(1.0, abs=0.01)
    assert (p["first_ms_p50"], p["then_ms_p50"]) == (50.0, 40.0)
    assert chat_key({"json": {"callback_query_id": "cq-77"}}) == "77"


def test_window_sequences_come_from_the_call_log_of_the_window(standins: dict[str, str]) -> None:
    with httpx.Client(base_url=standins["telegram"], timeout=5) as http:
        http.post("/bot123:abc/sendMessage", json={"chat_id": 900, "text": "before"})
        collector = StandinDelta(standins["control"])
        collector.start()
        for chat in (901, 902):
            http.post("/bot123:abc/sendMessage", json={"chat_id": chat, "text": "🎤"})
            http.post("/bot123:abc/getFile", json={"file_id": f"voice-{chat}"})
    seqs = collector.stop()["sequences"]
    assert seqs["chats"] == 2 and seqs["calls"] == 4  # the call before the window is not in
    [p] = seqs["pairs"]
    assert (p["first"], p["then"], p["groups"], p["sequential"]) == (
        "telegram.sendMessage", "telegram.getFile", 2, 2,
    )  # fmt: skip
