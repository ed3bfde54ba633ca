"""cursor-runner client (spec §4.2).

Every method returns ``(status_code, json_body)``. 2xx and 422 are valid answers (422 carries a
failed run's result); any other status raises ``CursorRunnerError("HTTP <code>: <msg>")``.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any

import httpx

from perfaudit.refservice.clients.http import HttpClients, transport_errors
from perfaudit.refservice.config import Settings

log = logging.getLogger(__name__)

HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
DEFAULT_MAX_ITERATIONS = 25


class CursorRunnerError(Exception):
    """Base of every cursor-runner failure (``CursorRunnerService::Error``).

    ``status_code`` is set when cursor-runner answered, so callers can tell a 503 (worth a
    retry) from a 400 (not).
    """

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class CursorRunnerConnectionError(CursorRunnerError):
    transient = True  # worth another attempt

    def __init__(self, detail: str) -> None:
        super().__init__(f"Failed to connect to cursor-runner: {detail}")


class CursorRunnerTimeoutError(CursorRunnerError):
    transient = True  # worth another attempt

    def __init__(self, detail: str) -> None:
        super().__init__(f"Request to cursor-runner timed out: {detail}")


class CursorRunnerInvalidResponseError(CursorRunnerError):
    def __init__(self, detail: str) -> None:
        super().__init__(f"Failed to parse response: {detail}")


def new_request_id(prefix: str = "req") -> str:
    """``<prefix>-<unix seconds>-<8 lowercase hex>``, e.g. ``telegram-1735689600-a1b2c3d4``."""
    return f"{prefix}-{int(time.time())}-{secrets.token_hex(4)}"


def _http_error(resp: httpx.Response) -> CursorRunnerError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    msg = str(error) if error else (resp.reason_phrase or resp.text[:200])
    return CursorRunnerError(f"HTTP {resp.status_code}: {msg}", status_code=resp.status_code)


class CursorRunnerClient:
    def __init__(self, settings: Settings, clients: HttpClients) -> None:
        self._clients = clients

    async def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        log.info("CursorRunnerService: %s %s", method, path)
        with transport_errors(CursorRunnerConnectionError, CursorRunnerTimeoutError):
            async with self._clients.session("cursor_runner") as http:
                resp = await http.request(method, path, json=body, headers=HEADERS)
        log.info("CursorRunnerService: Response %s %s", resp.status_code, resp.reason_phrase)
        if not (resp.is_success or resp.status_code == 422):
            raise _http_error(resp)
        try:
            data = resp.json()
        except ValueError as e:
            raise CursorRunnerInvalidResponseError(str(e)) from e
        if not isinstance(data, dict):
            raise CursorRunnerInvalidResponseError("expected a JSON object")
        return resp.status_code, data

    async def iterate_async(
        self,
        *,
        prompt: str,
        request_id: str,
        repository: str = "",
        branch_name: str = "main",
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
        callback_url: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """POST ``/cursor/iterate/async``: accepted at once, the result arrives by callback."""
        body = _iterate_body(
            prompt, request_id, repository, branch_name, max_iterations, callback_url
        )
        return await self._request("POST", "/cursor/iterate/async", body)

    async def iterate(
        self,
        *,
        prompt: str,
        request_id: str | None = None,
        repository: str = "",
        branch_name: str = "main",
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
        callback_url: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """POST ``/cursor/iterate``: synchronous, waits for the whole run."""
        rid = request_id or new_request_id()
        body = _iterate_body(prompt, rid, repository, branch_name, max_iterations, callback_url)
        return await self._request("POST", "/cursor/iterate", body)

    async def execute(
        self,
        *,
        prompt: str,
        request_id: str | None = None,
        repository: str = "",
        branch_name: str = "main",
    ) -> tuple[int, dict[str, Any]]:
        body = {
            "repository": repository,
            "branchName": branch_name,
            "prompt": prompt,
            "id": request_id or new_request_id(),
        }
        return await self._request("POST", "/cursor/execute", body)

    async def clone(
        self, repository_url: str, repository_name: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        body: dict[str, Any] = {"repositoryUrl": repository_url}
        if repository_name:
            body["repositoryName"] = repository_name
        return await self._request("POST", "/git/clone", body)

    async def list_repositories(self) -> tuple[int, dict[str, Any]]:
        return await self._request("GET", "/git/repositories")

    async def checkout(self, repository: str, branch: str) -> tuple[int, dict[str, Any]]:
        return await self._request("POST", "/git/checkout", _git_body(repository, branch))

    async def push(self, repository: str, branch: str) -> tuple[int, dict[str, Any]]:
        return await self._request("POST", "/git/push", _git_body(repository, branch))

    async def pull(self, repository: str, branch: str) -> tuple[int, dict[str, Any]]:
        return await self._request("POST", "/git/pull", _git_body(repository, branch))


def _iterate_body(
    prompt: str,
    request_id: str,
    repository: str,
    branch_name: str,
    max_iterations: int,
    callback_url: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "repository": repository,
        "branchName": branch_name,
        "prompt": prompt,
        "maxIterations": max_iterations,
        "id": request_id,
    }
    if callback_url:  # omitted: cursor-runner builds the callback URL itself (spec §2.6)
        body["callbackUrl"] = callback_url
    return body


def _git_body(repository: str, branch: str) -> dict[str, Any]:
    return {"repository": repository, "branch": branch}
