"""Talking to a running stack: post updates, read and steer the stand-ins.

Used by the smoke flow, the tests and the benchmarks (control traffic, so httpx is fine).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import httpx

from perfaudit.stack.stack import StackInfo

Call = dict[str, Any]
_ids = itertools.count(int(time.time() * 1000) % 10**9)


def next_update_id() -> int:
    return next(_ids)


def text_update(text: str, *, chat_id: int = 42, update_id: int | None = None) -> dict[str, Any]:
    uid = next_update_id() if update_id is None else update_id
    return {
        "update_id": uid,
        "message": {
            "message_id": uid % 100000,
            "from": {"id": chat_id, "is_bot": False, "first_name": "Test"},
            "chat": {"id": chat_id, "type": "private"},
            "date": int(time.time()),
            "text": text,
        },
    }


def voice_update(*, chat_id: int = 42, update_id: int | None = None) -> dict[str, Any]:
    uid = next_update_id() if update_id is None else update_id
    return {
        "update_id": uid,
        "message": {
            "message_id": uid % 100000,
            "chat": {"id": chat_id, "type": "private"},
            "date": int(time.time()),
            "voice": {
                "file_id": f"voice-{uid}",
                "file_unique_id": f"u{uid}",
                "duration": 4,
                "mime_type": "audio/ogg",
                "file_size": 12345,
            },
        },
    }


def callback_query_update(
    data: str, *, chat_id: int = 42, update_id: int | None = None
) -> dict[str, Any]:
    uid = next_update_id() if update_id is None else update_id
    return {
        "update_id": uid,
        "callback_query": {
            "id": f"cq-{uid}",
            "from": {"id": chat_id, "first_name": "Test"},
            "message": {
                "message_id": uid % 100000,
                "chat": {"id": chat_id, "type": "private"},
                "date": int(time.time()),
                "text": "Pick one",
            },
            "data": data,
        },
    }


class StackClient:
    def __init__(self, info: StackInfo, timeout: float = 10.0) -> None:
        self.info = info
        self.http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> StackClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the service -----------------------------------------------------------------------
    def post_update(self, update: dict[str, Any], secret: str | None = None) -> httpx.Response:
        token = self.info.secrets.telegram_webhook_secret if secret is None else secret
        return self.http.post(
            f"{self.info.service_url}/telegram/webhook",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": token},
        )

    def post_callback(self, payload: dict[str, Any], secret: str | None = None) -> httpx.Response:
        token = self.info.secrets.webhook_secret if secret is None else secret
        return self.http.post(
            f"{self.info.service_url}/cursor-runner/callback",
            json=payload,
            headers={"X-Webhook-Secret": token},
        )

    # -- the stand-ins ---------------------------------------------------------------------
    def _control(self, path: str) -> str:
        return f"{self.info.standin_control_url}/_standin/{path}"

    def stats(self) -> dict[str, Any]:
        return self.http.get(self._control("stats")).raise_for_status().json()

    def calls(self, route: str | None = None, since: int = 0) -> list[Call]:
        params: dict[str, Any] = {"since": since, "limit": 100000}
        if route:
            params["route"] = route
        return (
            self.http.get(self._control("calls"), params=params).raise_for_status().json()["calls"]
        )

    def configure(self, config: dict[str, Any]) -> dict[str, Any]:
        return self.http.post(self._control("config"), json=config).raise_for_status().json()

    def reset(self) -> None:
        self.http.post(self._control("reset")).raise_for_status()

    def wait_for(
        self,
        route: str,
        predicate: Callable[[Call], bool] = lambda c: True,
        *,
        count: int = 1,
        timeout: float = 15.0,
        since: int = 0,
    ) -> list[Call]:
        """The stand-in calls on ``route`` that match, once ``count`` of them have arrived."""
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls(route, since) if predicate(c)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


def to_chat(chat_id: int) -> Callable[[Call], bool]:
    def match(call: Call) -> bool:
        body = call.get("json") or {}
        return str(body.get("chat_id")) == str(chat_id)

    return match
