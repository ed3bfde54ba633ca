"""A small ASGI service with known per-request work, for the instructions-measure tests.

- ``GET /work?n=N`` runs :func:`work_loop`: a deterministic pure-Python loop of ``N``
  identical iterations that allocates nothing (only cached small ints), and answers a
  fixed-width body (the response size does not depend on ``N``);
- ``GET /health`` answers at once.

Variants reuse :func:`make_app`: ``cost_app_tick`` adds background work at start-up,
``cost_app_planted`` an extra function per request. Run:
``python -m uvicorn cost_app:app --port 8000`` from this folder.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from itertools import repeat

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def work_loop(n: int) -> int:
    """The known per-request work: ``n`` identical iterations.

    Nothing is allocated (``repeat`` yields None, every value is a cached small int): a loop
    that allocated (``range``'s ints, ``i * i``) would cost what pymalloc's pool state
    makes of it, which other objects in the heap change, not a fixed amount per iteration."""
    total = 0
    for _ in repeat(None, n):
        total = (total + 7) & 127
    return total


def make_app(
    extra: Callable[[], object] | None = None, lifespan: Lifespan | None = None
) -> Starlette:
    """The service; ``extra`` runs in every ``/work`` request, ``lifespan`` around the app."""

    async def work(request: Request) -> PlainTextResponse:
        n = int(request.query_params.get("n", "0"))
        total = work_loop(n)
        if extra is not None:
            extra()
        return PlainTextResponse(f"{total:08d}")

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/work", work), Route("/health", health)], lifespan=lifespan)


app = make_app()
