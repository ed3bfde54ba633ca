"""HTTP clients per upstream, behind the ``http-keepalive`` switch (spec §7.7, PHASE3-032).

- ON: one ``httpx.AsyncClient`` per upstream per process, kept open; its pool reuses
  keep-alive connections across calls.
- OFF (phase3): every call builds a new ``httpx.AsyncClient`` and closes it afterwards, as the TS
  service runs ``axios.create`` per request. Each call pays client construction (httpx loads the
  CA bundle for its SSL context: ~20 ms CPU measured here) and a new TCP connection.

Switch ``backpressure`` (spec §7.12): at most ``OUTBOUND_LIMITS[upstream]`` calls in flight per
upstream and process, whichever client they use (Node's ``maxSockets``); further calls wait for
a slot. Without it nothing limits them (per-call clients share no pool).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Literal

import httpx

from perfaudit.refservice.config import Settings

Upstream = Literal["telegram", "cursor_runner", "elevenlabs"]

TELEGRAM_TIMEOUT = 30.0  # API calls and file downloads (spec §4.4)
ELEVENLABS_TIMEOUT = 60.0  # STT and TTS each

# Keep-alive pool: as many idle connections as active ones, so a burst does not close and reopen
# connections; idle connections expire before uvicorn's default 5 s keep-alive timeout, so the
# pool does not pick a connection the server is just closing.
LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=4.0)
# backpressure: calls in flight per upstream. Telegram answers 429 to bursts, ElevenLabs limits
# concurrent requests per plan, and cursor-runner runs one job per request.
OUTBOUND_LIMITS: dict[Upstream, int] = {"telegram": 30, "cursor_runner": 10, "elevenlabs": 10}


class HttpClients:
    """Hands out an ``httpx.AsyncClient`` per upstream; ``base_url`` and timeout are preset."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._keepalive = settings.on("http-keepalive")
        self._shared: dict[Upstream, httpx.AsyncClient] = {}
        self._slots: dict[Upstream, asyncio.Semaphore] | None = (
            {u: asyncio.Semaphore(n) for u, n in OUTBOUND_LIMITS.items()}
            if settings.on("backpressure")
            else None
        )

    @property
    def keepalive(self) -> bool:
        return self._keepalive

    def base_url(self, upstream: Upstream) -> str:
        s = self._settings
        url = {
            "telegram": s.telegram_api_url,
            "cursor_runner": s.cursor_runner_url,
            "elevenlabs": s.elevenlabs_api_url,
        }[upstream]
        return url.rstrip("/")

    def timeout(self, upstream: Upstream) -> httpx.Timeout:
        seconds = {
            "telegram": TELEGRAM_TIMEOUT,
            "cursor_runner": self._settings.cursor_runner_timeout,
            "elevenlabs": ELEVENLABS_TIMEOUT,
        }[upstream]
        return httpx.Timeout(seconds)

    def _new(self, upstream: Upstream) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.base_url(upstream), timeout=self.timeout(upstream), limits=LIMITS
        )

    @asynccontextmanager
    async def session(self, upstream: Upstream) -> AsyncIterator[httpx.AsyncClient]:
        """A client for one call: the shared one (keep-alive) or a fresh one closed on exit.

        With ``backpressure`` the call holds one of the upstream's slots until it is done.
        """
        slot = self._slots[upstream] if self._slots is not None else None
        if slot is not None:
            await slot.acquire()
        try:
            if self._keepalive:
                client = self._shared.get(upstream)
                if client is None or client.is_closed:
                    client = self._shared[upstream] = self._new(upstream)
                yield client
                return
            async with self._new(upstream) as client:
                yield client
        finally:
            if slot is not None:
                slot.release()

    async def aclose(self) -> None:
        """Close the shared clients (a no-op when keep-alive is off)."""
        clients, self._shared = list(self._shared.values()), {}
        for client in clients:
            await client.aclose()


@contextmanager
def transport_errors(
    connect_error: Callable[[str], Exception], timeout_error: Callable[[str], Exception]
) -> Iterator[None]:
    """Re-raise httpx transport failures as the upstream's own error classes.

    Timeouts first: ``httpx.TimeoutException`` is itself a ``TransportError``. Read/protocol
    errors (a connection dropped mid-response) count as connection failures.
    """
    try:
        yield
    except httpx.TimeoutException as e:
        raise timeout_error(str(e) or type(e).__name__) from e
    except httpx.TransportError as e:
        raise connect_error(str(e) or type(e).__name__) from e
