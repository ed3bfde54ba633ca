"""Each of the newer switches has the effect it claims, measured on real processes.

Two stacks: ``phase3`` and ``phase3`` plus the five switches below. Each test measures the
same thing on both. The measures are specific to one switch each (Redis reads, overlapping
upstream calls, getWebhookInfo calls, Loggers held, calls in flight), and none of the other
four switches changes them, so the difference is the switch's own. What is asserted is a
count or an order of events, never a duration.
"""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import redis

from perfaudit.refservice import formatting as fmt
from perfaudit.refservice import switches as sw
from perfaudit.stack.client import (
    Call,
    StackClient,
    callback_query_update,
    next_update_id,
    text_update,
    to_chat,
    voice_update,
)
from perfaudit.stack.stack import FAST_STANDINS, StackInfo

NEW_SWITCHES = frozenset(
    {"redis-pipeline", "concurrent-awaits", "response-cache", "leak-fix", "backpressure"}
)
REPO = Path(__file__).resolve().parents[1]
KEYS = {"phase3": frozenset(), "phase3+new": NEW_SWITCHES}


def _defined_names(path: Path) -> set[str]:
    """``f``, ``Class``, ``Class.method`` and ``outer.inner`` for everything defined in path."""
    names: set[str] = set()

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                names.add(name)
                walk(child, f"{name}.")

    walk(ast.parse(path.read_text()), "")
    return names


def test_the_catalog_says_where_each_change_lives() -> None:
    assert set(sw.NAMES) >= NEW_SWITCHES
    assert sw.VARIANTS["optimized"] >= NEW_SWITCHES
    shipped = {p.stem for p in (REPO / "scenarios").glob("*.yaml")}
    for s in sw.CATALOG:
        assert s.code, f"{s.name} says nowhere where its change lives"
        assert s.touches and set(s.touches) <= shipped, s.name
        for entry in s.code:
            file, _, name = entry.partition(":")
            assert name in _defined_names(REPO / file), f"{s.name}: {entry} does not exist"


def _clients(pair: dict[str, StackInfo]) -> Iterator[dict[str, StackClient]]:
    out = {key: StackClient(info) for key, info in pair.items()}
    try:
        for c in out.values():
            c.configure(FAST_STANDINS)
        yield out
    finally:
        for c in out.values():
            c.configure(FAST_STANDINS)
            c.close()


@pytest.fixture
def clients(stack_with: Callable[..., StackInfo]) -> Iterator[dict[str, StackClient]]:
    yield from _clients({key: stack_with(key, switches) for key, switches in KEYS.items()})


@pytest.fixture
def serial_clients(stack_with: Callable[..., StackInfo]) -> Iterator[dict[str, StackClient]]:
    """phase3 with and without ``redis-pipeline`` only, one job at a time (as the
    instructions measure runs them): arq then never polls while a job runs, so the Redis
    figures per message are exact."""
    serial = {"PERFAUDIT_WORKER_MAX_JOBS": "1"}
    pair = {
        "phase3 serial": stack_with("phase3 serial", frozenset(), serial),
        "phase3+redis-pipeline serial": stack_with(
            "phase3+redis-pipeline serial", frozenset({"redis-pipeline"}), serial
        ),
    }
    yield from _clients(pair)


def wait_quiet(c: StackClient, r: redis.Redis, timeout: float = 15.0) -> int:
    """Until no callback, job or queued job is left; returns the Redis commands it sent."""
    sent = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = c.stats()["callbacks"]["pending"]
        queued = r.zcard("arq:queue")
        running = len(r.keys("arq:in-progress:*"))
        sent += 2
        if not pending and not queued and not running:
            return sent
        time.sleep(0.05)
    raise AssertionError("the stack did not settle")


def peak_in_flight(calls: list[Call]) -> int:
    """The most calls the stand-in was serving at once (each call spans ts .. ts+duration)."""
    events = [(c["ts"], 1) for c in calls] + [
        (c["ts"] + c["duration_ms"] / 1000, -1) for c in calls
    ]
    peak = now = 0
    for _t, step in sorted(events):  # at a tie an end (-1) sorts before a start
        now += step
        peak = max(peak, now)
    return peak


def end_of(call: Call) -> float:
    return float(call["ts"]) + float(call["duration_ms"]) / 1000


# -- redis-pipeline ------------------------------------------------------------------------
def redis_round_trips_per_message(c: StackClient, n: int = 12) -> dict[str, float]:
    """Redis reads (one per round trip a client makes), per forwarded text message.

    The window covers the whole flow: webhook, job, cursor-runner's callback and the reply.
    arq's queue polls are one ZRANGEBYSCORE read each and depend on time, so they are
    subtracted, as are this function's own commands.
    """
    r = redis.Redis.from_url(c.info.redis_url, single_connection_client=True)
    try:
        wait_quiet(c, r)
        before = r.info("all")
        own = 1  # the INFO above is read in the window's end figure
        chats = [next_update_id() for _ in range(n)]
        for chat in chats:
            assert c.post_update(text_update(f"pipeline {chat}", chat_id=chat)).status_code == 200
        for chat in chats:
            assert c.wait_for(
                "telegram.sendMessage",
                lambda x, chat=chat: (
                    to_chat(chat)(x) and "completed successfully" in x["json"].get("text", "")
                ),
            )
        own += wait_quiet(c, r)
        time.sleep(0.2)  # the callback's own DEL after the reply went out
        own += wait_quiet(c, r)
        after = r.info("all")
    finally:
        r.close()

    def calls(info: dict[str, Any], name: str) -> int:
        return int(info.get(f"cmdstat_{name}", {}).get("calls", 0))

    reads = after["total_reads_processed"] - before["total_reads_processed"]
    polls = calls(after, "zrangebyscore") - calls(before, "zrangebyscore")
    commands = after["total_commands_processed"] - before["total_commands_processed"]
    return {
        "round_trips": (reads - polls - own) / n,
        "commands": (commands - polls - own) / n,
        "setex": (calls(after, "setex") - calls(before, "setex")) / n,
    }


def test_redis_pipeline_saves_two_round_trips_per_forwarded_message(
    serial_clients: dict[str, StackClient],
) -> None:
    off, on = (redis_round_trips_per_message(c) for c in serial_clients.values())
    print("redis per forwarded message, phase3:", off, "with redis-pipeline:", on)
    # The same commands either way (no MULTI/EXEC is added), one pending request per message,
    assert off["setex"] == on["setex"] == 1
    assert off["commands"] == pytest.approx(on["commands"], abs=0.2)
    # but the mark, its TTL and the pending request travel together: 5 round trips become 3.
    # (Redis counts reads, not round trips: a client's reads now and then coalesce or split,
    # about +-0.3 per message here, hence the band around 2.)
    assert 1.0 <= off["round_trips"] - on["round_trips"] <= 3.0


# -- concurrent-awaits ---------------------------------------------------------------------
def notice_and_get_file(c: StackClient) -> None:
    # A slow sendMessage: the 🎤 notice takes 300 ms at the stand-in.
    c.configure({"routes": {"telegram.sendMessage": {"latency_ms": 300}}})
    chat = next_update_id()
    update = voice_update(chat_id=chat)
    file_id = update["message"]["voice"]["file_id"]
    assert c.post_update(update).status_code == 200
    [get_file] = c.wait_for("telegram.getFile", lambda x: x["json"].get("file_id") == file_id)
    sent = c.wait_for("telegram.sendMessage", to_chat(chat), count=2)
    notice = next(x for x in sent if x["json"]["text"] == fmt.TRANSCRIBING_ACK)
    if "concurrent-awaits" in c.info.switches:
        assert get_file["ts"] < end_of(notice), "getFile waited for the notice"
    else:
        assert get_file["ts"] >= end_of(notice) - 0.002, "phase3 overlapped them"
    # What the user sees keeps its order: the notice, then the ⏳ acknowledgement.
    assert [x["json"]["text"] for x in sent[:2]] == [fmt.TRANSCRIBING_ACK, fmt.PROCESSING_ACK]
    gap = round((get_file["ts"] - notice["ts"]) * 1000)
    print(c.info.switches or "phase3", f"getFile started {gap} ms after the notice")


def test_concurrent_awaits_overlap_the_notice_with_the_download(
    clients: dict[str, StackClient],
) -> None:
    for c in clients.values():
        notice_and_get_file(c)


def answer_and_forward(c: StackClient) -> None:
    c.configure({"routes": {"telegram.answerCallbackQuery": {"latency_ms": 300}}})
    chat = next_update_id()
    prompt = f"button {chat}"
    update = callback_query_update(prompt, chat_id=chat)
    assert c.post_update(update).status_code == 200
    [iterate] = c.wait_for("cursor.iterateAsync", lambda x: x["json"]["prompt"] == prompt)
    [answer] = c.wait_for(
        "telegram.answerCallbackQuery",
        lambda x: x["json"].get("callback_query_id") == update["callback_query"]["id"],
    )
    if "concurrent-awaits" in c.info.switches:
        assert iterate["ts"] < end_of(answer), "the forward waited for the answer"
    else:
        assert iterate["ts"] >= end_of(answer) - 0.002, "phase3 overlapped them"
    # The ⏳ acknowledgement still follows the answer.
    [ack] = c.wait_for(
        "telegram.sendMessage",
        lambda x: to_chat(chat)(x) and x["json"]["text"] == fmt.PROCESSING_ACK,
    )
    assert ack["ts"] >= end_of(answer) - 0.002
    gap = round((iterate["ts"] - answer["ts"]) * 1000)
    print(c.info.switches or "phase3", f"iterate started {gap} ms after the answer")


def test_concurrent_awaits_overlap_the_answer_with_the_forward(
    clients: dict[str, StackClient],
) -> None:
    for c in clients.values():
        answer_and_forward(c)


# -- response-cache ------------------------------------------------------------------------
def test_response_cache_spares_get_webhook_info_and_invalidates(
    clients: dict[str, StackClient],
) -> None:
    n = 20
    for c in clients.values():
        base, info = c.info.service_url, c.info
        admin = {"X-Admin-Secret": info.secrets.webhook_secret}
        url = f"https://example.invalid/hook-{next_update_id()}"
        r = c.http.post(f"{base}/telegram/set_webhook", headers=admin, json={"url": url})
        assert r.json()["webhook_info"]["result"]["url"] == url
        before = c.stats()["routes"].get("telegram.getWebhookInfo", {}).get("calls", 0)
        for _ in range(n):
            r = c.http.get(f"{base}/telegram/webhook_info", headers=admin)
            assert r.status_code == 200 and r.json()["webhook_info"]["result"]["url"] == url
        upstream = c.stats()["routes"]["telegram.getWebhookInfo"]["calls"] - before
        print(info.switches, f"{n} webhook_info requests -> {upstream} getWebhookInfo calls")
        if "response-cache" in info.switches:
            assert upstream <= 1  # set_webhook's own getWebhookInfo filled the cache
        else:
            assert upstream == n
        # setWebhook invalidates: the next read shows the new URL at once.
        url2 = url + "-2"
        r = c.http.post(f"{base}/telegram/set_webhook", headers=admin, json={"url": url2})
        assert r.status_code == 200
        r = c.http.get(f"{base}/telegram/webhook_info", headers=admin)
        assert r.json()["webhook_info"]["result"]["url"] == url2
        # deleteWebhook too: a failing Telegram is seen, not hidden behind the cache.
        assert c.http.delete(f"{base}/telegram/webhook", headers=admin).status_code == 200
        c.configure({"routes": {"telegram.getWebhookInfo": {"error_rate": 1.0}}})
        assert c.http.get(f"{base}/telegram/webhook_info", headers=admin).status_code == 502
        c.configure({"routes": {"telegram.getWebhookInfo": {"error_rate": 0.0}}})


# -- leak-fix ------------------------------------------------------------------------------
def test_leak_fix_holds_nothing_per_request(clients: dict[str, StackClient]) -> None:
    n = 1000
    for c in clients.values():
        info = c.info
        memory = f"{info.service_url}/__perfaudit/memory"
        with httpx.Client(timeout=10) as http:
            for _ in range(100):  # warm up: imports, caches, pools
                http.get(f"{info.service_url}/health")
            proc = psutil.Process(info.pids["service"])
            start, rss0 = http.get(memory).json(), proc.memory_info().rss
            for _ in range(n):
                assert http.get(f"{info.service_url}/health").status_code == 200
            end, rss1 = http.get(memory).json(), proc.memory_info().rss
        loggers = end["loggers"] - start["loggers"]
        objects = end["gc_objects"] - start["gc_objects"]
        print(
            info.switches or "phase3", f"per {n} requests: +{loggers} loggers, +{objects} "
            f"gc objects, RSS {(rss1 - rss0) / 1024:+.0f} KiB",
        )  # fmt: skip
        if "leak-fix" in info.switches:
            assert loggers == 0 and objects < 200
        else:
            assert loggers >= n  # one Logger per request (and one for the second probe)
            assert objects >= 2 * n  # each with its handler and filter lists and level cache


# -- backpressure --------------------------------------------------------------------------
def jobs_and_stt_in_flight(c: StackClient, n: int) -> tuple[int, int]:
    """Post ``n`` voice updates at once; the most jobs running (arq's in-progress keys,
    sampled) and the most speech-to-text calls the stand-in served at once."""
    # A slow speech-to-text (2 s): unbounded, every job is still in it when the last one
    # starts (a job is started before its work, so CPU contention does not spread them).
    c.configure({"routes": {"elevenlabs.stt": {"latency_ms": 2000}}})
    since = c.calls()[-1]["seq"] if c.calls() else 0
    r = redis.Redis.from_url(c.info.redis_url)
    try:
        for _ in range(n):
            assert c.post_update(voice_update(chat_id=next_update_id())).status_code == 200
        jobs = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            jobs = max(jobs, len(r.keys("arq:in-progress:*")))
            if len(c.calls("elevenlabs.stt", since)) >= n:
                break
            time.sleep(0.02)
        stt = c.calls("elevenlabs.stt", since)
        assert len(stt) == n
        c.configure(FAST_STANDINS)
        wait_quiet(c, r, timeout=30)  # the rest of the flows, so later tests start clean
    finally:
        r.close()
    return jobs, peak_in_flight(stt)


def test_backpressure_bounds_the_jobs_in_flight(clients: dict[str, StackClient]) -> None:
    n = 12
    for c in clients.values():
        jobs, stt = jobs_and_stt_in_flight(c, n)
        print(
            c.info.switches or "phase3",
            f"{n} voice updates -> at most {jobs} jobs and {stt} STT calls at once",
        )
        if "backpressure" in c.info.switches:
            assert jobs <= 10 and stt <= 10
        else:
            assert jobs > 10  # every queued job ran at once
