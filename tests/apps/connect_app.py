"""A small ASGI service for the external-target measurements (tests/test_external_measure.py).

- ``GET /connect?n=3`` opens and closes ``n`` TCP connections to a listener of its own (each
  lives microseconds: a /proc sampler does not see them; the connect() shim counts them all);
- ``GET /redis?n=10&pipeline=1`` runs ``n`` GETs on ``$REDIS_URL``, one round trip each or
  pipelined in one;
- ``GET /block?ms=20`` blocks the event loop (``time.sleep``): what loop lag is for;
- ``GET /env?name=X`` answers the value of environment variable ``X`` (``target.env`` reaches it);
- ``GET /health`` answers at once.

With ``CONNECT_APP_PROBE=1`` the app is wrapped in perfaudit's hook (``InstrumentedASGI``),
which answers ``/__perfaudit/loop`` when ``PERFAUDIT_INSTRUMENT=1``; otherwise loop lag needs
the canary. Run: ``python tests/apps/connect_app.py --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from perfaudit.refservice import instrument

_listener: socket.socket | None = None
_redis: aioredis.Redis | None = None


def _accept_forever(sock: socket.socket) -> None:
    while True:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        conn.close()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global _listener, _redis
    _listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    threading.Thread(target=_accept_forever, args=(_listener,), daemon=True).start()
    if os.environ.get("REDIS_URL"):
        # One pooled connection, no CLIENT SETINFO: the commands are exactly the route's.
        _redis = aioredis.Redis.from_url(
            os.environ["REDIS_URL"], lib_name=None, lib_version=None, max_connections=4
        )
    yield
    _listener.close()
    if _redis is not None:
        await _redis.aclose()


async def connect(request: Request) -> Response:
    assert _listener is not None
    port = _listener.getsockname()[1]
    for _ in range(int(request.query_params.get("n", "1"))):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
        await writer.wait_closed()
    return PlainTextResponse("ok")


async def redis_route(request: Request) -> Response:
    assert _redis is not None, "REDIS_URL is not set"
    n = int(request.query_params.get("n", "10"))
    if request.query_params.get("pipeline") == "1":
        pipe = _redis.pipeline(transaction=False)
        for i in range(n):
            pipe.get(f"k{i}")
        await pipe.execute()
    else:
        for i in range(n):
            await _redis.get(f"k{i}")
    return PlainTextResponse("ok")


async def block(request: Request) -> Response:
    time.sleep(float(request.query_params.get("ms", "20")) / 1000)  # blocks the loop on purpose
    return PlainTextResponse("ok")


async def env(request: Request) -> Response:
    return JSONResponse({"value": os.environ.get(request.query_params["name"])})


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


_app = Starlette(
    routes=[
        Route("/connect", connect),
        Route("/redis", redis_route),
        Route("/block", block),
        Route("/env", env),
        Route("/health", health),
    ],
    lifespan=lifespan,
)
app: ASGIApp = (
    instrument.InstrumentedASGI(_app)
    if os.environ.get("CONNECT_APP_PROBE") == "1" and instrument.enabled()
    else _app
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", default="asyncio", choices=("asyncio", "uvloop"))
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, loop=args.loop, log_level="warning")


if __name__ == "__main__":
    main()
