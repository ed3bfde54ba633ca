"""A small ASGI service whose one route blocks the event loop, for the loop-thread tests.

- ``GET /block`` calls ``time.sleep(0.02)`` inside an ``async def`` handler: the event loop
  thread is stuck for 20 ms per request (py-spy sees it only with ``--idle``);
- ``GET /offload`` sleeps as long, but in a worker thread (``asyncio.to_thread``): the loop
  stays free, and the sleeping samples belong to another thread;
- ``GET /clean`` and ``GET /health`` answer at once; ``/sequential`` and ``/gathered``: below.

Run: ``python tests/apps/blocking_app.py --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

BLOCK_S = 0.02


def slow_lookup() -> int:
    time.sleep(BLOCK_S)  # the blocking line the tests look for
    return 1


async def block(request: Request) -> JSONResponse:
    return JSONResponse({"n": slow_lookup()})


async def offload(request: Request) -> JSONResponse:
    return JSONResponse({"n": await asyncio.to_thread(slow_lookup)})


async def clean(request: Request) -> JSONResponse:
    return JSONResponse({"n": 1})


# sequential-awaits: two independent 15 ms waits one after the other, and the same two
# together (asyncio.gather), the pattern and its fix.
AWAIT_S = 0.015


async def sequential(request: Request) -> JSONResponse:
    await asyncio.sleep(AWAIT_S)  # independent of the next line
    await asyncio.sleep(AWAIT_S)
    return JSONResponse({"n": 2})


async def gathered(request: Request) -> JSONResponse:
    await asyncio.gather(asyncio.sleep(AWAIT_S), asyncio.sleep(AWAIT_S))
    return JSONResponse({"n": 2})


app = Starlette(
    routes=[
        Route("/block", block),
        Route("/offload", offload),
        Route("/clean", clean),
        Route("/sequential", sequential),
        Route("/gathered", gathered),
        Route("/health", clean),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    from perfaudit.profile.asgi import wrap  # the pyinstrument hook, on with its env var

    loop = os.environ.get("PERFAUDIT_LOOP", "auto")
    uvicorn.run(wrap(app), host="127.0.0.1", port=args.port, loop=loop, log_level="warning")


if __name__ == "__main__":
    main()
