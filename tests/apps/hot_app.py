"""A small ASGI service with a known hot function, for the profiling tests.

- ``GET /hot`` burns about 2 ms of CPU in :func:`burn_cpu_hot` (the hotspot to find), which
  also allocates a 256 KB scratch buffer (so memray's top allocator is the same function);
- :func:`startup_only_work` burns about 0.5 s once, at start-up (must not be in a profile
  of the steady window);
- ``GET /health`` answers at once.

It uses perfaudit's documented profiling hook: ``wrap(app)`` is a no-op unless
``PERFAUDIT_PYINSTRUMENT=1``, and the event loop follows ``PERFAUDIT_LOOP`` (perfaudit sets it to
``asyncio`` while pyinstrument is on). Run: ``python tests/apps/hot_app.py --port 8000``.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from perfaudit.profile.asgi import wrap


def burn_cpu_hot(seconds: float = 0.002) -> int:
    """The known hot function: a pure-Python CPU loop, and a large (malloc'd) buffer."""
    scratch = bytearray(256 * 1024)
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n + len(scratch) - len(scratch)


def startup_only_work(seconds: float = 0.5) -> int:
    """Runs once, before the service answers: a profile of the steady window must not show it."""
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    startup_only_work()
    yield


async def hot(request: Request) -> JSONResponse:
    return JSONResponse({"n": burn_cpu_hot()})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = wrap(
    Starlette(
        routes=[Route("/hot", hot), Route("/health", health)],
        lifespan=lifespan,
    )
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    loop = os.environ.get("PERFAUDIT_LOOP", "auto")
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop=loop, log_level="warning")


if __name__ == "__main__":
    main()
