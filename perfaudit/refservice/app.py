"""The reference service's HTTP API (spec §1), on Starlette.

Starlette rather than FastAPI: the spec fixes every status code and body (401 text,
400/422 shapes of its own), which FastAPI's automatic validation responses would fight,
and Starlette adds less per request to the paths being measured.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from perfaudit.refservice import system_settings
from perfaudit.refservice.callback import handle_callback, request_id_of, valid_request_id
from perfaudit.refservice.clients.cursor_runner import CursorRunnerError
from perfaudit.refservice.config import Settings
from perfaudit.refservice.http_input import (
    CALLBACK_LIMIT,
    BadBody,
    parse_body,
    secret_matches,
)
from perfaudit.refservice.jobqueue import PROCESS_UPDATE, JobQueue, update_job_id
from perfaudit.refservice.request_log import RequestLogMiddleware
from perfaudit.refservice.services import Services
from perfaudit.refservice.tools import ToolRouter

log = logging.getLogger("refservice.app")

STRIPPED_UPDATE_KEYS = ("controller", "action", "format", "telegram")
NOT_FOUND = {
    "ok": False,
    "say": "Sorry, I couldn't find that resource.",
    "result": {"error": "Not Found"},
}
SERVER_ERROR_SAY = "Sorry, I encountered an error processing your request."


def _bad_body(exc: BadBody) -> JSONResponse:
    return JSONResponse(
        {
            "ok": False,
            "say": "Sorry, I couldn't read that request.",
            "result": {"error": exc.message},
        },
        status_code=exc.status,
    )


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    services = Services.build(settings)
    queue = JobQueue(settings)
    tools = ToolRouter(services)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        system_settings.initialise(settings.shared_db_path)
        shared = await queue.start()
        if shared is not None:
            services.redis._shared = shared  # one pool for the queue and the state store
        log.info("service up, switches: %s", ",".join(sorted(settings.switches)) or "none")
        try:
            yield
        finally:
            if shared is not None:
                services.redis._shared = None
            await queue.aclose()
            await services.aclose()

    # -- health ----------------------------------------------------------------------------
    health_body = {
        "status": "healthy",
        "service": settings.app_name,
        "version": settings.app_version,
    }

    async def health(request: Request) -> Response:
        return JSONResponse(health_body)

    # -- Telegram webhook ------------------------------------------------------------------
    async def telegram_webhook(request: Request) -> Response:
        expected = settings.telegram_webhook_secret
        if expected.strip() and not secret_matches(
            request.headers.get("x-telegram-bot-api-secret-token"), expected
        ):
            log.warning("Unauthorized Telegram webhook request - invalid secret token")
            return PlainTextResponse("Unauthorized", status_code=401)
        try:
            update = await parse_body(request)
        except BadBody as exc:
            return _bad_body(exc)
        for key in STRIPPED_UPDATE_KEYS:
            update.pop(key, None)
        if settings.on("lean-logging"):
            log.info("Telegram update %s received", update.get("update_id"))
        else:
            log.info("Received Telegram update: %s", json.dumps(update))
        try:
            queued = await queue.enqueue(PROCESS_UPDATE, update, job_id=update_job_id(update))
        except (redis.RedisError, OSError) as exc:
            # Telegram re-delivers on 5xx, so an update we could not queue is not lost.
            log.error("Could not enqueue update %s: %s", update.get("update_id"), exc)
            return JSONResponse(
                {"ok": False, "error": "Job queue unavailable; retry later"}, status_code=503
            )
        if not queued:
            log.info("Update %s already queued or processed; ignored", update.get("update_id"))
        return PlainTextResponse("OK")

    # -- admin -----------------------------------------------------------------------------
    def admin(
        handler: Callable[[Request, dict[str, Any]], Awaitable[Response]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                body = await parse_body(request)
            except BadBody as exc:
                return _bad_body(exc)
            provided = (
                request.headers.get("x-admin-secret")
                or request.query_params.get("admin_secret")
                or (str(body["admin_secret"]) if "admin_secret" in body else None)
            )
            if not secret_matches(provided, settings.webhook_secret):
                return PlainTextResponse("Unauthorized", status_code=401)
            return await handler(request, body)

        return wrapped

    def _upstream_failure(doing: str, exc: Exception) -> JSONResponse:
        log.error("Error %s: %s", doing, exc)
        # 502, not the spec's 500: the fault is upstream, and 500 is kept for our own bugs.
        return JSONResponse({"ok": False, "error": str(exc)}, status_code=502)

    def _with_info(body: dict[str, Any], info: Any) -> dict[str, Any]:
        if info is not None:  # a blank bot token makes Telegram calls no-ops (spec §1.2)
            body["webhook_info"] = info
        return body

    async def set_webhook(request: Request, body: dict[str, Any]) -> Response:
        q = request.query_params
        url = (
            body.get("url")
            or q.get("url")
            or f"{settings.telegram_webhook_base_url}/telegram/webhook"
        )
        secret = (
            body.get("secret_token")
            or q.get("secret_token")
            or settings.telegram_webhook_secret
            or "changeme"
        )
        try:
            tg = services.telegram
            await tg.set_webhook(url, secret_token=secret)
            info = await tg.get_webhook_info()
        except Exception as exc:  # noqa: BLE001
            return _upstream_failure("setting webhook", exc)
        return JSONResponse(_with_info({"ok": True, "message": "Webhook set successfully"}, info))

    async def webhook_info(request: Request, body: dict[str, Any]) -> Response:
        try:
            info = await services.telegram.get_webhook_info()
        except Exception as exc:  # noqa: BLE001
            return _upstream_failure("getting webhook info", exc)
        return JSONResponse(_with_info({"ok": True}, info))

    async def delete_webhook(request: Request, body: dict[str, Any]) -> Response:
        try:
            await services.telegram.delete_webhook()
        except Exception as exc:  # noqa: BLE001
            return _upstream_failure("deleting webhook", exc)
        return JSONResponse({"ok": True, "message": "Webhook deleted successfully"})

    # -- cursor-runner callback ------------------------------------------------------------
    async def cursor_callback(request: Request) -> Response:
        provided = (
            request.headers.get("x-webhook-secret")
            or request.headers.get("x-cursor-runner-secret")
            or request.query_params.get("secret")
        )
        if settings.webhook_secret.strip() and not secret_matches(
            provided, settings.webhook_secret
        ):
            client = request.client.host if request.client else "unknown"
            log.warning(
                "Unauthorized cursor-runner callback - invalid secret "
                "(provided_secret: %s, ip: %s)",
                "present" if provided else "missing", client,
            )  # fmt: skip
            return JSONResponse({"error": "Unauthorized"}, status_code=401)
        try:
            payload = await parse_body(request, CALLBACK_LIMIT)
        except BadBody as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        request_id = request_id_of(payload)
        if not request_id:
            return JSONResponse({"error": "request_id is required"}, status_code=400)
        if not valid_request_id(request_id):
            return JSONResponse({"error": "Invalid request_id format"}, status_code=400)
        log.info(
            "Received cursor-runner callback (request_id: %s, success: %s)",
            request_id, payload.get("success"),
        )  # fmt: skip
        return JSONResponse(await handle_callback(services, queue, request_id, payload))

    # -- cursor-runner proxy (spec §1.5) ---------------------------------------------------
    def proxy(
        call: Callable[[dict[str, Any]], Awaitable[tuple[int, Any]]],
        required: tuple[tuple[str, ...], ...] = (),
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                body = await parse_body(request) if request.method == "POST" else {}
            except BadBody as exc:
                return JSONResponse(
                    {"success": False, "error": exc.message}, status_code=exc.status
                )
            for names in required:
                if not any(body.get(n) not in (None, "") for n in names):
                    return JSONResponse(
                        {"success": False, "error": f"{names[0]} is required"}, status_code=400
                    )
            try:
                _status, result = await call(body)
            except CursorRunnerError as exc:
                return JSONResponse({"success": False, "error": str(exc)}, status_code=502)
            ok = isinstance(result, dict) and bool(result.get("success"))
            return JSONResponse(result, status_code=200 if ok else 422)

        return endpoint

    def _branch(b: dict[str, Any]) -> str:
        return str(b.get("branch_name") or b.get("branchName") or "main")

    cr = services.cursor_runner
    execute = proxy(
        lambda b: services.cursor_runner.execute(
            repository=b.get("repository", ""), branch_name=_branch(b), prompt=b["prompt"],
            request_id=b.get("id"),
        ),
        (("prompt",),),
    )  # fmt: skip
    iterate = proxy(
        lambda b: services.cursor_runner.iterate(
            repository=b.get("repository", ""), branch_name=_branch(b), prompt=b["prompt"],
            request_id=b.get("id"), max_iterations=int(b.get("max_iterations") or 25),
        ),
        (("prompt",),),
    )  # fmt: skip
    clone = proxy(
        lambda b: services.cursor_runner.clone(b["repository_url"], b.get("repository_name")),
        (("repository_url",),),
    )
    repos = proxy(lambda b: services.cursor_runner.list_repositories())
    repo_branch = (("repository",), ("branch",))
    checkout = proxy(
        lambda b: services.cursor_runner.checkout(b["repository"], b["branch"]), repo_branch
    )
    push = proxy(lambda b: services.cursor_runner.push(b["repository"], b["branch"]), repo_branch)
    pull = proxy(lambda b: services.cursor_runner.pull(b["repository"], b["branch"]), repo_branch)
    del cr

    # -- agent tools (spec §1.4) -----------------------------------------------------------
    async def agent_tools(request: Request) -> Response:
        bearer = request.headers.get("authorization", "")
        provided = request.headers.get("x-el-secret") or (
            bearer[7:] if bearer.lower().startswith("bearer ") else None
        )
        if not secret_matches(provided, settings.webhook_secret):
            return JSONResponse(
                {"ok": False, "say": "Unauthorized", "result": {"error": "Unauthorized"}},
                status_code=401,
            )
        try:
            body = await parse_body(request)
        except BadBody as exc:
            return _bad_body(exc)
        tool = body.get("tool")
        if not tool:
            return JSONResponse(
                {
                    "ok": False,
                    "say": "Missing required parameter: tool",
                    "result": {"error": "tool parameter is required"},
                },
                status_code=400,
            )
        args = body.get("args") if isinstance(body.get("args"), dict) else {}
        r = await tools.route(str(tool), args, body.get("conversation_id"))
        return JSONResponse({"ok": r.ok, "say": r.say, "result": r.data})

    # -- errors ----------------------------------------------------------------------------
    async def not_found(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            return JSONResponse(
                {"ok": False, "say": "Sorry, that method is not allowed here.",
                 "result": {"error": "Method Not Allowed"}},
                status_code=405,
            )  # fmt: skip
        return JSONResponse(NOT_FOUND, status_code=404)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("Unhandled error: %s", exc)
        return JSONResponse(
            {"ok": False, "say": SERVER_ERROR_SAY, "result": {"error": str(exc)}}, status_code=500
        )

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/", health, methods=["GET"]),
        Route("/telegram/webhook", telegram_webhook, methods=["POST"]),
        Route("/telegram/set_webhook", admin(set_webhook), methods=["POST"]),
        Route("/telegram/webhook_info", admin(webhook_info), methods=["GET"]),
        Route("/telegram/webhook", admin(delete_webhook), methods=["DELETE"]),
        Route("/cursor-runner/callback", cursor_callback, methods=["POST"]),
        Route("/cursor-runner/cursor/execute", execute, methods=["POST"]),
        Route("/cursor-runner/cursor/iterate", iterate, methods=["POST"]),
        Route("/cursor-runner/git/clone", clone, methods=["POST"]),
        Route("/cursor-runner/git/checkout", checkout, methods=["POST"]),
        Route("/cursor-runner/git/push", push, methods=["POST"]),
        Route("/cursor-runner/git/pull", pull, methods=["POST"]),
        Route("/cursor-runner/git/repositories", repos, methods=["GET"]),
        Route("/agent-tools", agent_tools, methods=["POST"]),
    ]
    # perfaudit instrumentation, only with PERFAUDIT_INSTRUMENT=1 (otherwise a no-op):
    # an event-loop lag probe over the lifespan, read at GET /__perfaudit/loop.
    from perfaudit.refservice import instrument

    probe = instrument.from_env()
    routes += instrument.routes(probe)
    lifespan = instrument.wrap_lifespan(lifespan, probe)
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_found, Exception: server_error},
    )
    app.add_middleware(RequestLogMiddleware, per_request_logger=not settings.on("leak-fix"))
    app.state.services = services
    return app
