"""Access logging as a plain ASGI middleware (spec §1 middleware 4), with secrets redacted.

Switch ``leak-fix``: phase3 gives each request its own child logger named after its request id,
as a literal port of pino's ``logger.child({requestId})``. ``logging.getLogger`` keeps every
Logger it creates for the life of the process, so that leaks one Logger per request. With the
switch the module logger is used and the id goes into the message.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from perfaudit.redact import redact

log = logging.getLogger("refservice.http")


class RequestLogMiddleware:
    def __init__(self, app: ASGIApp, *, per_request_logger: bool = False) -> None:
        self.app = app
        self.per_request_logger = per_request_logger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        rlog = logging.getLogger(f"{log.name}.{request_id}") if self.per_request_logger else None
        started = time.perf_counter()
        path = scope.get("path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        url = redact(f"{path}?{query}" if query else path)
        method = scope.get("method", "")
        status: dict[str, Any] = {"code": 0}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if rlog is not None:
                if rlog.isEnabledFor(logging.INFO):
                    rlog.info(
                        "%s %s %s %.1fms",
                        method, url, status["code"], (time.perf_counter() - started) * 1000,
                    )  # fmt: skip
            elif log.isEnabledFor(logging.INFO):
                log.info(
                    "%s %s %s %.1fms rid=%s",
                    method, url, status["code"], (time.perf_counter() - started) * 1000,
                    request_id,
                )  # fmt: skip
