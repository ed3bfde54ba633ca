"""cost_app with background work: from start-up, a task runs :func:`tick_work` (a
pure-Python loop) every ``TICK_S`` on a fixed schedule, whether requests come or not.

The schedule is absolute (tick k is due at start + k * TICK_S; a late tick runs at once),
so the ticks per second do not depend on the load: background work the instructions
measure charges per second and must subtract from the per-request count."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from cost_app import make_app, work_loop
from starlette.applications import Starlette

TICK_S = 0.05
TICK_ITERATIONS = 300


def tick_work() -> int:
    return work_loop(TICK_ITERATIONS)


async def ticker() -> None:
    loop = asyncio.get_running_loop()
    due = loop.time()
    while True:
        due += TICK_S
        await asyncio.sleep(max(0.0, due - loop.time()))
        tick_work()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    task = asyncio.create_task(ticker())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


app = make_app(lifespan=lifespan)
