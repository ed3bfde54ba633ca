"""The Redis-backed job queue (arq, in Sidekiq's role) as the web process sees it.

Switch ``redis-pool``: phase3 opens a new queue connection for every enqueue; the optimized
path keeps one pool per process and shares it with the pending-state store.
"""

from __future__ import annotations

from typing import Any

from arq import create_pool
from arq.connections import ArqRedis, RedisSettings

from perfaudit.refservice.config import Settings

PROCESS_UPDATE = "process_update"
DELIVER_CALLBACK = "deliver_callback"
WORKER_READY_LINE = "perfaudit worker ready"  # the stack waits for this line
KEEP_RESULT_S = 3600  # also how long a re-delivered update_id is recognised


def redis_settings(settings: Settings, *, retries: int = 0) -> RedisSettings:
    """By default no connect retries: a webhook must fail fast (and be re-delivered)."""
    rs = RedisSettings.from_dsn(settings.redis_url)
    rs.conn_timeout = 5
    rs.conn_retries = retries
    return rs


def update_job_id(update: dict[str, Any]) -> str | None:
    update_id = update.get("update_id")
    return f"tg-update:{update_id}" if update_id is not None else None


class JobQueue:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pooled = settings.on("redis-pool")
        self._pool: ArqRedis | None = None

    async def start(self) -> ArqRedis | None:
        """Open the shared pool (optimized) so the state store can use it too."""
        if self.pooled:
            self._pool = await create_pool(redis_settings(self.settings))
        return self._pool

    async def enqueue(self, function: str, *args: Any, job_id: str | None = None) -> bool:
        """True when queued; False when a job with this id already exists (a duplicate)."""
        if self._pool is not None:
            return await self._pool.enqueue_job(function, *args, _job_id=job_id) is not None
        pool = await create_pool(redis_settings(self.settings))
        try:
            return await pool.enqueue_job(function, *args, _job_id=job_id) is not None
        finally:
            await pool.aclose()

    async def aclose(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None
