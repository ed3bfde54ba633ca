"""A small ASGI service with one planted performance problem per route, and one clean route.

perfaudit has never seen it: the diagnosis tests run it as an external target (started by
perfaudit, with its own Redis from ``REDIS_URL``) and check that each planted pattern gives
its finding at the right place, and that ``/clean`` gives none.

Routes (each line a pattern a diagnosis rule must find):

- ``GET /clean``: one Redis GET on a pooled connection.
- ``GET /blocking``: ``time.sleep`` on the event loop (loop blocked, blocking I/O).
- ``GET /n-plus-one``: 20 sequential Redis GETs where one MGET would do.
- ``GET /churn``: a new Redis connection for every request.
- ``GET /leak``: keeps 100 KB per request forever (memory growth).
- ``GET /cpu``: one own function burns ~4 ms of CPU per request (dominant function).
- ``GET /logging``: formats and logs a large JSON document per request (logging overhead).
- ``GET /upstream``: waits 30 ms for an upstream (upstream dominates latency).
- ``GET /sequential``: awaits two independent upstream calls one after the other.
- ``GET /queue``: one consumer behind an unbounded queue, 12 ms per item (queue grows).

The upstream is a raw asyncio HTTP server the app starts on ``UPSTREAM_PORT`` (default: a
free port): ``GET /delay/<ms>`` answers after that many milliseconds.

Run: ``REDIS_URL=redis://127.0.0.1:6379 uvicorn tests.apps.planted_app:app --port 8000``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from perfaudit.profile.asgi import wrap
from perfaudit.refservice.instrument import InstrumentedASGI, enabled

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
KEYS = [f"planted:item:{i}" for i in range(20)]
LEAKED: list[bytes] = []
log = logging.getLogger("planted")
_state: dict[str, Any] = {}


def _document(n: int) -> dict[str, Any]:
    return {"items": [{"id": i, "name": f"item-{i}", "tags": ["a", "b", "c"]} for i in range(n)]}


DOCUMENT = _document(300)


async def clean(request: Request) -> PlainTextResponse:
    value = await _state["redis"].get(KEYS[0])
    return PlainTextResponse(value or "none")


async def blocking(request: Request) -> PlainTextResponse:
    time.sleep(0.02)  # planted: a synchronous sleep holds the event loop
    return PlainTextResponse("slept")


async def n_plus_one(request: Request) -> JSONResponse:
    values = []
    for key in KEYS:  # planted: one round trip per key; MGET would make one
        values.append(await _state["redis"].get(key))
    return JSONResponse({"n": len(values)})


async def churn(request: Request) -> PlainTextResponse:
    client = aioredis.Redis.from_url(REDIS_URL)  # planted: a new connection per request
    try:
        value = await client.get(KEYS[0])
    finally:
        await client.aclose()
    return PlainTextResponse(value or "none")


async def leak(request: Request) -> PlainTextResponse:
    LEAKED.append(os.urandom(100_000))  # planted: kept forever
    return PlainTextResponse(str(len(LEAKED)))


def checksum(rounds: int) -> int:
    total = 0
    for i in range(rounds):  # planted: pure-Python work on the loop
        total = (total * 31 + i * i) % 1_000_003
    return total


async def cpu(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(checksum(40_000)))


async def logging_heavy(request: Request) -> PlainTextResponse:
    log.info("request document %s", json.dumps(DOCUMENT, indent=2))  # planted
    return PlainTextResponse("logged")


async def upstream(request: Request) -> PlainTextResponse:
    resp = await _state["http"].get(f"{_state['upstream']}/delay/30")  # planted: slow upstream
    return PlainTextResponse(resp.text)


async def sequential(request: Request) -> PlainTextResponse:
    # planted: two independent calls awaited one after the other (asyncio.gather would overlap)
    profile = await _state["http"].get(f"{_state['upstream']}/delay/15")
    prices = await _state["http"].get(f"{_state['upstream']}/delay/15")
    return PlainTextResponse(profile.text + prices.text)


async def queued(request: Request) -> PlainTextResponse:
    done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    await _state["queue"].put(done)  # planted: unbounded, and served one at a time
    return PlainTextResponse(await done)


async def _consume(queue: asyncio.Queue[asyncio.Future[str]]) -> None:
    while True:
        done = await queue.get()
        await asyncio.sleep(0.012)
        if not done.done():
            done.set_result("served")


async def _serve_upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1].decode()
            delay_ms = float(path.rsplit("/", 1)[-1]) if path.startswith("/delay/") else 0.0
            await asyncio.sleep(delay_ms / 1000)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
    writer.close()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    handler = logging.FileHandler(os.environ.get("PLANTED_LOG", os.devnull))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    port = int(os.environ.get("UPSTREAM_PORT", "0"))
    server = await asyncio.start_server(_serve_upstream, "127.0.0.1", port)
    host, bound = server.sockets[0].getsockname()[:2]
    _state["upstream"] = f"http://{host}:{bound}"
    _state["redis"] = aioredis.Redis.from_url(REDIS_URL)
    await _state["redis"].set(KEYS[0], "value")
    _state["http"] = httpx.AsyncClient(timeout=10)
    _state["queue"] = asyncio.Queue()
    consumer = asyncio.create_task(_consume(_state["queue"]))
    try:
        yield
    finally:
        consumer.cancel()
        await _state["http"].aclose()
        await _state["redis"].aclose()
        server.close()
        log.removeHandler(handler)
        handler.close()


routes = [
    Route("/clean", clean),
    Route("/blocking", blocking),
    Route("/n-plus-one", n_plus_one),
    Route("/churn", churn),
    Route("/leak", leak),
    Route("/cpu", cpu),
    Route("/logging", logging_heavy),
    Route("/upstream", upstream),
    Route("/sequential", sequential),
    Route("/queue", queued),
]
# As a user would wire perfaudit in: the pyinstrument hook and the loop-lag probe, both off
# unless perfaudit's environment variables turn them on.
_app = wrap(Starlette(routes=routes, lifespan=lifespan))
app = InstrumentedASGI(_app) if enabled() else _app
