"""Control API (``/_standin/...``): health, stats, call log, config, reset."""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from perfaudit.upstreams.config import ConfigError
from perfaudit.upstreams.runtime import Runtime


def _bad(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if value < 0:
        raise ConfigError(f"{name}: must be >= 0, got {value}")
    return value


def build_app(rt: Runtime) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        # Only healthy once every upstream port is bound, so "healthy" means "usable".
        ok = rt.ready()
        return JSONResponse({"ok": ok}, status_code=200 if ok else 503)

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse(rt.recorder.stats(rt.callbacks.pending))

    async def calls(request: Request) -> JSONResponse:
        try:
            since = _int_param(request, "since") or 0
            limit = _int_param(request, "limit")
        except ConfigError as exc:
            return _bad(str(exc))
        found = rt.recorder.calls(request.query_params.get("route") or None, since, limit)
        return JSONResponse({"calls": found})

    async def get_config(request: Request) -> JSONResponse:
        return JSONResponse(rt.config.to_dict())

    async def post_config(request: Request) -> JSONResponse:
        try:
            patch = json.loads(await request.body() or b"{}")
        except ValueError as exc:
            return _bad(f"invalid JSON: {exc}")
        try:
            rt.apply_config(patch)
        except ConfigError as exc:
            return _bad(str(exc))
        return JSONResponse(rt.config.to_dict())

    async def reset(request: Request) -> JSONResponse:
        rt.recorder.reset()
        return JSONResponse({"ok": True})

    async def pending_callbacks(request: Request) -> JSONResponse:
        return JSONResponse({"pending": rt.callbacks.pending})

    return Starlette(
        routes=[
            Route("/_standin/health", health, methods=["GET"]),
            Route("/_standin/stats", stats, methods=["GET"]),
            Route("/_standin/calls", calls, methods=["GET"]),
            Route("/_standin/config", get_config, methods=["GET"]),
            Route("/_standin/config", post_config, methods=["POST"]),
            Route("/_standin/reset", reset, methods=["POST"]),
            Route("/_standin/pending_callbacks", pending_callbacks, methods=["GET"]),
        ]
    )
