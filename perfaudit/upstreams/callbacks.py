"""Outgoing cursor-runner callbacks: scheduled background POSTs to the service."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx

from perfaudit.upstreams.behaviour import sleep_at_least
from perfaudit.upstreams.config import StandinConfig
from perfaudit.upstreams.recorder import Recorder
from perfaudit.upstreams.routes import CR_CALLBACK


class Runtime(Protocol):
    """What the dispatcher reads of perfaudit.upstreams.runtime.Runtime (which owns it):
    named here so the two modules do not import each other."""

    config: StandinConfig
    recorder: Recorder


CALLBACK_TIMEOUT_S = 30.0


def split_secret(url: str) -> tuple[str, str | None]:
    """Strip ``secret=`` from the URL (cursor-runner moves it into headers, spec §3)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    secret = next((v for k, v in query if k == "secret"), None)
    if secret is None:
        return url, None
    rest = urlencode([(k, v) for k, v in query if k != "secret"])
    return urlunsplit(parts._replace(query=rest)), secret


class CallbackDispatcher:
    """One shared AsyncClient; no retries (the real cursor-runner does not retry)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def pending(self) -> int:
        return len(self._tasks)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # Large pool and no pool timeout: a burst of callbacks must not queue inside
            # the stand-in and distort the service's observed callback timing.
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(CALLBACK_TIMEOUT_S, pool=None),
                limits=httpx.Limits(max_connections=1000, max_keepalive_connections=100),
            )
        return self._client

    def schedule(
        self, url: str | None, delay_s: float, payload: Callable[[], dict[str, Any]]
    ) -> None:
        """POST ``payload()`` (built at send time, so duration/timestamp are real) after a delay."""
        task = asyncio.get_running_loop().create_task(self._deliver(url, delay_s, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, url: str | None, delay_s: float, payload: Callable[[], dict[str, Any]]
    ) -> None:
        await sleep_at_least(delay_s)
        body = payload()
        cfg = self._rt.config
        target = url or cfg.callback_url
        ts = time.time()
        t0 = time.perf_counter()
        status, error = 0, None
        path = ""
        if not target:
            error = "no callback URL (set --callback-url or callbackUrl)"
        else:
            path, secret = split_secret(target)
            secret = secret if secret is not None else cfg.callback_secret
            headers = (
                {"X-Webhook-Secret": secret, "X-Cursor-Runner-Secret": secret} if secret else {}
            )
            try:
                resp = await self._http().post(path, json=body, headers=headers)
                status = resp.status_code
                if not resp.is_success:
                    error = f"HTTP {status}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        rec = self._rt.recorder
        if error is None:
            rec.callbacks_sent += 1
        else:
            rec.callbacks_failed += 1
        rec.record(
            CR_CALLBACK,
            "POST",
            path,
            status,
            body,
            (time.perf_counter() - t0) * 1000.0,
            ts,
            failed=error is not None,
            extra={"delivered": error is None, "error": error},
        )

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
