"""Reading request bodies with a size limit, and secret checks in constant time."""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

KB = 1024
MB = 1024 * KB
# Per docs/input-validation-review-PHASE3-037: express's 100 kb is too small for callbacks.
DEFAULT_LIMIT = 1 * MB
CALLBACK_LIMIT = 10 * MB


class BadBody(Exception):  # noqa: N818
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BadBody(413, f"Request body too large (limit {limit} bytes)")
        except ValueError as exc:
            raise BadBody(400, "Invalid Content-Length header") from exc
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadBody(413, f"Request body too large (limit {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(request: Request, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """A JSON object or a urlencoded form; an empty body is an empty dict."""
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/x-www-form-urlencoded":
        try:
            return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError as exc:
            raise BadBody(400, "Malformed form body: not UTF-8") from exc
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadBody(400, f"Malformed JSON body: {exc}") from exc
    if not isinstance(data, dict):
        raise BadBody(400, "Malformed JSON body: expected an object")
    return data


def secret_matches(provided: str | None, expected: str) -> bool:
    if provided is None:
        return False
    return hmac.compare_digest(provided.encode("utf-8"), expected.encode("utf-8"))
