"""Pending cursor-runner requests in Redis (spec §2.8, the CursorRunnerCallbackService).

Switches: ``redis-pool`` (one shared client vs a client per store instance) and
``atomic-getdel`` (GETDEL vs GET then DEL). ``queue_store``/``queue_remove`` put the same
commands into a caller's pipeline (``redis-pipeline``, in the job's forward).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from perfaudit.refservice.config import Settings

log = logging.getLogger("refservice.store")

KEY_PREFIX = "cursor_runner_callback:"
DEFAULT_TTL = 3600


def pending_key(request_id: str) -> str:
    return f"{KEY_PREFIX}{request_id}"


class PendingStore:
    """store / get / claim / remove of the pending-request JSON, keyed by request id."""

    def __init__(self, redis: Redis, *, atomic: bool) -> None:
        self.redis = redis
        self.atomic = atomic

    async def store(self, request_id: str, data: dict[str, Any], ttl: int = DEFAULT_TTL) -> None:
        _check_ttl(ttl)
        await self.redis.setex(pending_key(request_id), ttl, json.dumps(data))
        self.log_stored(request_id, ttl)

    def queue_store(
        self, pipe: Pipeline, request_id: str, data: dict[str, Any], ttl: int = DEFAULT_TTL
    ) -> None:
        """``store`` as one command of the caller's pipeline; ``log_stored`` once it ran."""
        _check_ttl(ttl)
        pipe.setex(pending_key(request_id), ttl, json.dumps(data))

    @staticmethod
    def log_stored(request_id: str, ttl: int = DEFAULT_TTL) -> None:
        log.info("Stored pending cursor-runner request: %s, TTL: %ss", request_id, ttl)

    async def get(self, request_id: str) -> dict[str, Any] | None:
        return _parse(await self.redis.get(pending_key(request_id)), request_id)

    async def claim(self, request_id: str) -> dict[str, Any] | None:
        """Read the pending request for processing.

        With ``atomic-getdel`` this also deletes it, in one round-trip, so a duplicate
        callback finds nothing; without it the caller must ``remove`` it afterwards.
        """
        if self.atomic:
            raw = await self.redis.getdel(pending_key(request_id))
            if raw is not None:
                log.info("Removed pending cursor-runner request: %s", request_id)
            return _parse(raw, request_id)
        return await self.get(request_id)

    async def release(self, request_id: str) -> None:
        """The second half of a non-atomic claim."""
        if not self.atomic:
            await self.remove(request_id)

    async def remove(self, request_id: str) -> None:
        await self.redis.delete(pending_key(request_id))
        self.log_removed(request_id)

    def queue_remove(self, pipe: Pipeline, request_id: str) -> None:
        """``remove`` as one command of the caller's pipeline; ``log_removed`` once it ran."""
        pipe.delete(pending_key(request_id))

    @staticmethod
    def log_removed(request_id: str) -> None:
        log.info("Removed pending cursor-runner request: %s", request_id)


def _check_ttl(ttl: int) -> None:
    if not isinstance(ttl, int) or not 1 <= ttl <= 86400:
        raise ValueError(f"TTL must be an integer in 1..86400, got {ttl!r}")


def _parse(raw: bytes | str | None, request_id: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        log.warning("Failed to parse pending request data (request_id: %s)", request_id)
        return None
    return data if isinstance(data, dict) else None


class RedisProvider:
    """Hands out Redis clients according to ``redis-pool``.

    phase3 builds a client (and so a connection) for every store instance, as the Rails
    ``Redis.new`` per CallbackService and the TS ``new Redis(url)`` per instance do; the
    optimized path shares one pooled client per process.
    """

    def __init__(self, settings: Settings, shared: Redis | None = None) -> None:
        self.settings = settings
        self.pooled = settings.on("redis-pool")
        self._shared = shared

    def _new_client(self) -> Redis:
        return Redis.from_url(self.settings.redis_url, socket_connect_timeout=5, socket_timeout=10)

    @property
    def shared(self) -> Redis:
        if self._shared is None:
            self._shared = self._new_client()
        return self._shared

    @asynccontextmanager
    async def client(self) -> AsyncIterator[Redis]:
        if self.pooled:
            yield self.shared
            return
        client = self._new_client()
        try:
            yield client
        finally:
            await client.aclose()

    @asynccontextmanager
    async def store(self) -> AsyncIterator[PendingStore]:
        async with self.client() as client:
            yield PendingStore(client, atomic=self.settings.on("atomic-getdel"))

    async def aclose(self) -> None:
        if self._shared is not None:
            await self._shared.aclose()
            self._shared = None
