"""Telegram Bot API stand-in: ``/bot<token>/<method>`` and ``/file/bot<token>/<file_path>``."""

from __future__ import annotations

import hashlib
import http
import itertools
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from perfaudit.upstreams import routes as r
from perfaudit.upstreams import telegram_text
from perfaudit.upstreams.payloads import Body, read_body, stream_bytes
from perfaudit.upstreams.runtime import Runtime

_FILE_PATH_RE = re.compile(r"voice/file_(\d+)\.oga")


def tg_error(status: int, description: str | None = None) -> JSONResponse:
    if description is None:
        description = _ERROR_DESCRIPTIONS.get(status) or _phrase(status)
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if status == 429:
        body["parameters"] = {"retry_after": 1}
    return JSONResponse(body, status_code=status)


_ERROR_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    429: "Too Many Requests: retry after 1",
    500: "Internal Server Error",
}


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def tg_ok(result: Any) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


def _chat_id(value: Any) -> Any:
    # Form bodies carry strings; echo numeric ids as numbers like Telegram does.
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


@dataclass
class TelegramState:
    webhook_url: str = ""
    webhook_secret: str | None = None

    def __post_init__(self) -> None:
        self.message_ids = itertools.count(1)
        self.files_issued = 0


Handler = Callable[[Runtime, TelegramState, Body], Awaitable[Response]]


async def send_message(rt: Runtime, st: TelegramState, body: Body) -> Response:
    f = body.fields
    if f.get("chat_id") in (None, ""):
        return tg_error(400, "Bad Request: chat_id is empty")
    text = f.get("text")
    if not isinstance(text, str) or not text.strip():
        return tg_error(400, "Bad Request: message text is empty")
    try:
        plain = telegram_text.plain_text(text, f.get("parse_mode"))
    except telegram_text.EntityError as exc:
        return tg_error(400, f"Bad Request: can't parse entities: {exc}")
    except ValueError:
        return tg_error(400, "Bad Request: unsupported parse_mode")
    plain = plain.strip()
    if not plain:
        return tg_error(400, "Bad Request: message text is empty")
    if len(plain) > telegram_text.MAX_MESSAGE_LENGTH:
        return tg_error(400, "Bad Request: message is too long")
    return tg_ok(
        {
            "message_id": next(st.message_ids),
            "chat": {"id": _chat_id(f["chat_id"])},
            "date": int(time.time()),
            "text": plain,
        }
    )


async def send_voice(rt: Runtime, st: TelegramState, body: Body) -> Response:
    f = body.fields
    if f.get("chat_id") in (None, ""):
        return tg_error(400, "Bad Request: chat_id is empty")
    upload = body.files.get("voice")
    if upload is None and not f.get("voice"):  # a string voice is a file_id/URL reference
        return tg_error(400, "Bad Request: there is no voice in the request")
    voice: dict[str, Any] = {"duration": 1, "mime_type": "audio/ogg"}
    if upload is not None:
        digest = hashlib.sha1(f"{upload['filename']}:{upload['size']}".encode()).hexdigest()
        voice.update(
            file_id=f"voice-{digest[:24]}",
            file_unique_id=digest[:12],
            file_size=upload["size"],
            mime_type=upload["content_type"] or "audio/ogg",
        )
    else:
        voice.update(file_id=str(f["voice"]), file_unique_id=str(f["voice"])[:12])
    result: dict[str, Any] = {
        "message_id": next(st.message_ids),
        "chat": {"id": _chat_id(f["chat_id"])},
        "date": int(time.time()),
        "voice": voice,
    }
    if f.get("caption"):
        result["caption"] = f["caption"]
    return tg_ok(result)


async def answer_callback_query(rt: Runtime, st: TelegramState, body: Body) -> Response:
    if not body.fields.get("callback_query_id"):
        return tg_error(400, "Bad Request: query_id is empty")
    return tg_ok(True)


async def get_file(rt: Runtime, st: TelegramState, body: Body) -> Response:
    file_id = body.fields.get("file_id")
    if not file_id:
        return tg_error(400, "Bad Request: file_id is empty")
    st.files_issued += 1
    size = rt.config.routes[r.TG_FILE_DOWNLOAD].response_bytes or 0
    return tg_ok(
        {
            "file_id": str(file_id),
            "file_unique_id": hashlib.sha1(str(file_id).encode()).hexdigest()[:12],
            "file_size": size,
            "file_path": f"voice/file_{st.files_issued}.oga",
        }
    )


async def set_webhook(rt: Runtime, st: TelegramState, body: Body) -> Response:
    url = body.fields.get("url") or ""
    st.webhook_url = str(url)
    st.webhook_secret = body.fields.get("secret_token") or None
    return JSONResponse(
        {
            "ok": True,
            "result": True,
            "description": "Webhook was set" if url else "Webhook was deleted",
        }
    )


async def delete_webhook(rt: Runtime, st: TelegramState, body: Body) -> Response:
    st.webhook_url, st.webhook_secret = "", None
    return JSONResponse({"ok": True, "result": True, "description": "Webhook was deleted"})


async def get_webhook_info(rt: Runtime, st: TelegramState, body: Body) -> Response:
    return tg_ok(
        {"url": st.webhook_url, "has_custom_certificate": False, "pending_update_count": 0}
    )


# Telegram matches method names case-insensitively.
METHODS: dict[str, tuple[str, Handler]] = {
    "sendmessage": (r.TG_SEND_MESSAGE, send_message),
    "sendvoice": (r.TG_SEND_VOICE, send_voice),
    "answercallbackquery": (r.TG_ANSWER_CALLBACK_QUERY, answer_callback_query),
    "getfile": (r.TG_GET_FILE, get_file),
    "setwebhook": (r.TG_SET_WEBHOOK, set_webhook),
    "deletewebhook": (r.TG_DELETE_WEBHOOK, delete_webhook),
    "getwebhookinfo": (r.TG_GET_WEBHOOK_INFO, get_webhook_info),
}


def build_app(rt: Runtime) -> Starlette:
    st = TelegramState()

    def authorized(token: str) -> bool:
        expected = rt.credentials.telegram_token
        return expected is None or token == expected

    async def method(request: Request) -> Response:
        token, name = request.path_params["token"], request.path_params["method"]
        path = f"/bot<token>/{name}"
        body = await read_body(request)
        entry = METHODS.get(name.lower())
        if entry is None:
            rt.record_now(r.TG_UNKNOWN, request, path, 404, body.record())
            return tg_error(404)
        route, handler = entry

        async def handle() -> Response:
            if not authorized(token):
                return tg_error(401)
            if body.invalid_json:
                return tg_error(400, "Bad Request: invalid JSON body")
            return await handler(rt, st, body)

        return await rt.serve(route, request, path, body.record(), handle, tg_error)

    async def file_download(request: Request) -> Response:
        token, file_path = request.path_params["token"], request.path_params["file_path"]

        async def handle() -> Response:
            if not authorized(token):
                return tg_error(401)
            m = _FILE_PATH_RE.fullmatch(file_path)
            if m is None or not 1 <= int(m.group(1)) <= st.files_issued:
                return tg_error(404, "Not Found: file not found")
            size = rt.config.routes[r.TG_FILE_DOWNLOAD].response_bytes or 0
            return StreamingResponse(
                stream_bytes(b"OggS", size),
                media_type="audio/ogg",
                headers={"content-length": str(size)},
            )

        path = f"/file/bot<token>/{file_path}"
        return await rt.serve(r.TG_FILE_DOWNLOAD, request, path, {}, handle, tg_error)

    async def not_found(request: Request, exc: Exception) -> Response:
        return tg_error(404)

    return Starlette(
        routes=[
            Route("/bot{token}/{method}", method, methods=["GET", "POST"]),
            Route("/file/bot{token}/{file_path:path}", file_download, methods=["GET"]),
        ],
        exception_handlers={404: not_found},
    )
