"""cursor-runner stand-in: cursor execute/iterate (sync + async with callback) and git endpoints."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from perfaudit.upstreams import routes as r
from perfaudit.upstreams.behaviour import sleep_at_least
from perfaudit.upstreams.payloads import Body, output_text, read_body
from perfaudit.upstreams.runtime import Runtime

DEFAULT_REPOSITORIES = ("telegram-receiver", "cursor-runner")


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def cr_error(status: int, message: str = "Injected error (stand-in)") -> JSONResponse:
    return JSONResponse({"success": False, "error": message}, status_code=status)


def result_payload(
    rt: Runtime, route: str, req: dict[str, Any], started: float, success: bool
) -> dict[str, Any]:
    """The §3 result payload (also the sync iterate/execute body)."""
    cfg = rt.config
    max_iterations = req.get("maxIterations")
    if not isinstance(max_iterations, int) or isinstance(max_iterations, bool):
        max_iterations = 25
    base = {"success": success, "requestId": req.get("id")}
    tail = {"timestamp": iso_now(), "maxIterations": max_iterations}
    if not success:
        return {**base, "error": cfg.callback_error, **tail, "iterations": 0}
    size = cfg.routes[route].response_bytes
    return {
        **base,
        "repository": req.get("repository", ""),
        "branchName": req.get("branchName") or "main",
        "output": cfg.callback_output if size is None else output_text(size),
        "error": None,
        "exitCode": 0,
        "duration": f"{round((time.monotonic() - started) * 1000)}ms",
        **tail,
        "iterations": min(3, max_iterations),
    }


def _work_delay_s(rt: Runtime) -> float:
    cfg = rt.config
    return (cfg.callback_delay_ms + rt.rng.random() * cfg.callback_jitter_ms) / 1000.0


def _cursor_request(body: Body) -> dict[str, Any] | Response:
    if body.invalid_json:
        return cr_error(400, "Invalid JSON body")
    req = dict(body.fields)
    if not isinstance(req.get("prompt"), str) or not req["prompt"].strip():
        return cr_error(400, "prompt is required")
    if not req.get("id"):
        req["id"] = f"req-{int(time.time())}-{secrets.token_hex(4)}"
    return req


def build_app(rt: Runtime) -> Starlette:
    repositories: set[str] = set(DEFAULT_REPOSITORIES)

    def endpoint(
        route: str, handler: Callable[[Body], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def view(request: Request) -> Response:
            body = await read_body(request)
            return await rt.serve(
                route, request, request.url.path, body.record(), lambda: handler(body), cr_error
            )

        return view

    async def iterate_async(body: Body) -> Response:
        req = _cursor_request(body)
        if isinstance(req, Response):
            return req
        started = time.monotonic()
        success = rt.rng.random() >= rt.config.callback_failure_rate
        callback_url = req.get("callbackUrl") if isinstance(req.get("callbackUrl"), str) else None
        rt.callbacks.schedule(
            callback_url,
            _work_delay_s(rt),
            lambda: result_payload(rt, r.CR_ITERATE_ASYNC, req, started, success),
        )
        return JSONResponse(
            {
                "success": True,
                "message": "Request accepted, processing asynchronously",
                "requestId": req["id"],
                "timestamp": iso_now(),
            }
        )

    async def iterate(body: Body) -> Response:
        req = _cursor_request(body)
        if isinstance(req, Response):
            return req
        started = time.monotonic()
        success = rt.rng.random() >= rt.config.callback_failure_rate
        await sleep_at_least(_work_delay_s(rt))  # the "agent work" the sync call waits for
        payload = result_payload(rt, r.CR_ITERATE, req, started, success)
        return JSONResponse(payload, status_code=200 if success else 422)

    async def execute(body: Body) -> Response:
        req = _cursor_request(body)
        if isinstance(req, Response):
            return req
        return JSONResponse(result_payload(rt, r.CR_EXECUTE, req, time.monotonic(), True))

    async def clone(body: Body) -> Response:
        url = body.fields.get("repositoryUrl")
        if not isinstance(url, str) or not url.strip():
            return cr_error(400, "repositoryUrl is required")
        name = body.fields.get("repositoryName") or os.path.basename(url.rstrip("/"))
        name = str(name).removesuffix(".git")
        repositories.add(name)
        return JSONResponse(
            {"success": True, "repository": name, "message": "Repository cloned successfully"}
        )

    async def list_repositories(body: Body) -> Response:
        names = sorted(repositories)
        return JSONResponse({"success": True, "repositories": names, "count": len(names)})

    def git_branch_op(verb: str) -> Callable[[Body], Awaitable[Response]]:
        async def op(body: Body) -> Response:
            repo, branch = body.fields.get("repository"), body.fields.get("branch")
            if not repo or not branch:
                return cr_error(400, "repository and branch are required")
            if repo not in repositories:
                return cr_error(422, "Repository not found")
            return JSONResponse({"success": True, "message": f"{verb} branch {branch} in {repo}"})

        return op

    return Starlette(
        routes=[
            Route(
                "/cursor/iterate/async",
                endpoint(r.CR_ITERATE_ASYNC, iterate_async),
                methods=["POST"],
            ),
            Route("/cursor/iterate", endpoint(r.CR_ITERATE, iterate), methods=["POST"]),
            Route("/cursor/execute", endpoint(r.CR_EXECUTE, execute), methods=["POST"]),
            Route("/git/clone", endpoint(r.GIT_CLONE, clone), methods=["POST"]),
            Route(
                "/git/repositories",
                endpoint(r.GIT_REPOSITORIES, list_repositories),
                methods=["GET"],
            ),
            Route(
                "/git/checkout",
                endpoint(r.GIT_CHECKOUT, git_branch_op("Checked out")),
                methods=["POST"],
            ),
            Route("/git/push", endpoint(r.GIT_PUSH, git_branch_op("Pushed")), methods=["POST"]),
            Route("/git/pull", endpoint(r.GIT_PULL, git_branch_op("Pulled")), methods=["POST"]),
        ]
    )
