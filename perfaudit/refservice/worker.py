"""The background worker (Sidekiq's role): ``python -m perfaudit.refservice.worker``."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from arq import Retry
from arq.worker import Worker

from perfaudit.refservice import logsetup, system_settings
from perfaudit.refservice.callback import process_callback
from perfaudit.refservice.config import Settings
from perfaudit.refservice.errors import RetryLater
from perfaudit.refservice.handler import Attempt, handle_update
from perfaudit.refservice.jobqueue import KEEP_RESULT_S, WORKER_READY_LINE, redis_settings
from perfaudit.refservice.services import Services

log = logging.getLogger("refservice.worker")
MAX_CONCURRENT_JOBS = 10  # Sidekiq production concurrency (spec §2.1)
# Without ``backpressure`` every queued job runs at once, as the TS port's un-awaited
# promises do (spec §7.12); arq wants a number, and this one is never reached.
UNBOUNDED_JOBS = 10_000
# arq polls its queue (Sidekiq blocks on BRPOP); its 0.5 s default would add up to half a
# second of queue wait to every job, in both variants alike.
POLL_DELAY_S = 0.02
# perfaudit's instructions measure polls less often: each poll it cannot pin to one side of
# a counter dump is ~0.3 M instructions of uncertainty (the poll cost itself is subtracted).
POLL_DELAY_ENV = "PERFAUDIT_WORKER_POLL_DELAY"


MAX_JOBS_ENV = "PERFAUDIT_WORKER_MAX_JOBS"  # the instructions measure: 1, so that jobs never
# overlap and a second pooled connection is never opened by chance; it wins over the switch


def max_jobs(settings: Settings) -> int:
    """Jobs run at a time: ``backpressure`` bounds them (10), phase3 does not."""
    default = MAX_CONCURRENT_JOBS if settings.on("backpressure") else UNBOUNDED_JOBS
    try:
        return max(1, int(os.environ.get(MAX_JOBS_ENV) or default))
    except ValueError:
        return default


def poll_delay() -> float:
    try:
        return max(0.001, float(os.environ.get(POLL_DELAY_ENV) or POLL_DELAY_S))
    except ValueError:
        return POLL_DELAY_S


def backoff(settings: Settings, attempt: int) -> float:
    delays = settings.job_retry_delays or (2.0,)
    return min(delays[min(attempt - 1, len(delays) - 1)], 30.0)


async def process_update(ctx: dict[str, Any], update: dict[str, Any]) -> str:
    services: Services = ctx["services"]
    attempt = Attempt(ctx["job_try"], services.settings.job_max_tries)
    try:
        return await handle_update(services, update, attempt)
    except RetryLater as exc:
        raise Retry(defer=backoff(services.settings, attempt.number)) from exc


async def deliver_callback(
    ctx: dict[str, Any], payload: dict[str, Any], pending: dict[str, Any]
) -> str:
    await process_callback(ctx["services"], payload, pending)
    return "delivered"


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx["settings"]
    system_settings.initialise(settings.shared_db_path)
    services = Services.build(settings)
    if settings.on("redis-pool"):
        services.redis._shared = ctx["redis"]  # the worker's own pool serves the store too
    ctx["services"] = services
    print(WORKER_READY_LINE, flush=True)


async def shutdown(ctx: dict[str, Any]) -> None:
    services: Services | None = ctx.get("services")
    if services is not None:
        if services.settings.on("redis-pool"):
            services.redis._shared = None  # arq closes its own pool
        await services.aclose()


def build_worker(settings: Settings) -> Worker:
    return Worker(
        functions=[process_update, deliver_callback],
        redis_settings=redis_settings(settings, retries=5),
        on_startup=startup,
        on_shutdown=shutdown,
        max_jobs=max_jobs(settings),
        poll_delay=poll_delay(),
        max_tries=settings.job_max_tries,
        keep_result=KEEP_RESULT_S,
        job_timeout=settings.cursor_runner_timeout + 60,
        ctx={"settings": settings},
        handle_signals=True,
    )


def main() -> None:
    settings = Settings.from_env()
    logsetup.configure(settings.log_level)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.set_event_loop(asyncio.new_event_loop())
    build_worker(settings).run()


if __name__ == "__main__":
    main()
