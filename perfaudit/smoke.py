"""A smoke flow through the whole stack: one update of each kind, end to end.

Start the stack, post a command, a text message and a voice message to the webhook, and
wait until each reply reaches the Telegram stand-in. Returns one row per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfaudit.stack.client import StackClient, callback_query_update, text_update, voice_update
from perfaudit.stack.stack import Stack, StackOptions

# Quick but not instant upstreams, so the flow shows real waiting without taking long.
SMOKE_STANDINS: dict[str, Any] = {
    "routes": {
        "*": {"latency_ms": 10, "jitter_ms": 10},
        "elevenlabs.stt": {"latency_ms": 200, "jitter_ms": 50},
        "elevenlabs.tts": {"latency_ms": 100, "jitter_ms": 50},
    },
    "callback_delay_ms": 300,
    "callback_jitter_ms": 100,
}


@dataclass(frozen=True)
class StepResult:
    name: str
    ack_status: int
    ack_ms: float
    reply_route: str
    reply_ms: float | None  # webhook post → the final reply reached the stand-in

    @property
    def ok(self) -> bool:
        return self.ack_status == 200 and self.reply_ms is not None


def _final_reply(route: str, chat_id: int, expect: str | None) -> Any:
    def match(call: dict[str, Any]) -> bool:
        body = call.get("json") or {}
        if str(body.get("chat_id")) != str(chat_id):
            return False
        return expect is None or expect in str(body.get("text", ""))

    return match


def run_smoke(run_dir: Path, switches: frozenset[str], timeout: float = 20.0) -> list[StepResult]:
    steps = [
        ("command /start", text_update("/start", chat_id=1001), "telegram.sendMessage",
         "Available commands"),
        ("text → cursor-runner → reply", text_update("Add a README to the repo", chat_id=1002),
         "telegram.sendMessage", "Cursor command completed"),
        ("voice → transcribe → cursor-runner → voice reply", voice_update(chat_id=1003),
         "telegram.sendVoice", None),
        ("button → cursor-runner → reply", callback_query_update("run tests", chat_id=1004),
         "telegram.sendMessage", "Cursor command completed"),
    ]  # fmt: skip
    results: list[StepResult] = []
    options = StackOptions(run_dir=run_dir, switches=switches, standin_config=SMOKE_STANDINS)
    with Stack(options) as info, StackClient(info) as client:
        for name, update, route, expect in steps:
            chat_id = _chat_of(update)
            t0 = time.perf_counter()
            resp = client.post_update(update)
            ack_ms = (time.perf_counter() - t0) * 1000
            found = client.wait_for(route, _final_reply(route, chat_id, expect), timeout=timeout)
            reply_ms = (time.perf_counter() - t0) * 1000 if found else None
            results.append(StepResult(name, resp.status_code, ack_ms, route, reply_ms))
    return results


def _chat_of(update: dict[str, Any]) -> int:
    msg = update.get("message") or update["callback_query"]["message"]
    return int(msg["chat"]["id"])
