"""The cursor-runner callback flow (spec §3): claim the pending request, reply to the user.

Switch ``callback-background``: phase3 formats and sends the reply (speech synthesis
included) before answering cursor-runner; the optimized path claims the state, queues the
reply as a durable background job and answers at once.
"""

from __future__ import annotations

import contextlib
import logging
import re
from typing import Any

from perfaudit.refservice import formatting as fmt
from perfaudit.refservice.jobqueue import DELIVER_CALLBACK, JobQueue
from perfaudit.refservice.replies import send_as_voice, send_with_parse_fallback
from perfaudit.refservice.services import Services

log = logging.getLogger("refservice.callback")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]+$")  # a UUID matches this too
MAX_REQUEST_ID = 255


def request_id_of(payload: dict[str, Any]) -> str:
    rid = payload.get("requestId") or payload.get("request_id") or ""
    return str(rid).strip()


def valid_request_id(request_id: str) -> bool:
    return len(request_id) <= MAX_REQUEST_ID and bool(_REQUEST_ID.match(request_id))


async def send_response_to_telegram(
    services: Services,
    chat_id: int,
    message_id: int | None,
    result: fmt.CallbackResult,
    original_was_audio: bool,
) -> None:
    fast = services.fast_text
    try:
        debug = services.flags.enabled("debug")
        text = (
            fmt.format_success(result, debug=debug, fast=fast)
            if result.success
            else fmt.format_error(result, debug=debug, fast=fast)
        )
        if original_was_audio and services.flags.enabled("allow_audio_output"):
            await send_as_voice(services, chat_id, text, message_id, fallback_parse_mode="Markdown")
            return
        await send_with_parse_fallback(services, chat_id, text, message_id)
    except Exception as exc:
        log.error("Failed to send cursor-runner result to Telegram: %s", exc)
        with contextlib.suppress(Exception):
            await services.telegram.send_message(
                chat_id, fmt.FORMAT_FAILED_FALLBACK, parse_mode=None,
                reply_to_message_id=message_id,
            )  # fmt: skip


async def process_callback(
    services: Services, payload: dict[str, Any], pending: dict[str, Any]
) -> None:
    result = fmt.normalize_result(payload)
    chat_id = pending.get("chat_id")
    if chat_id in (None, ""):
        log.warning("Pending request has no chat_id; nothing to send")
        return
    await send_response_to_telegram(
        services,
        chat_id,
        pending.get("message_id"),
        result,
        bool(pending.get("original_was_audio", False)),
    )


async def handle_callback(
    services: Services, queue: JobQueue, request_id: str, payload: dict[str, Any]
) -> dict[str, Any]:
    """Steps 2-5 of spec §3; the body of the 200 answer. Never raises."""
    pending: dict[str, Any] | None = None
    try:
        async with services.redis.store() as store:
            pending = await store.claim(request_id)
            if pending is None:
                log.warning("Pending request not found or expired: %s", request_id)
                return {"received": True, "message": "Request not found"}
            if services.settings.on("callback-background"):
                await queue.enqueue(DELIVER_CALLBACK, payload, pending, job_id=f"cb:{request_id}")
            else:
                await process_callback(services, payload, pending)
            await store.release(request_id)
        return {"received": True, "request_id": request_id}
    except Exception as exc:
        log.error("Error processing cursor-runner callback %s: %s", request_id, exc, exc_info=True)
        if pending and pending.get("chat_id") not in (None, ""):
            with contextlib.suppress(Exception):
                await services.telegram.send_message(
                    pending["chat_id"],
                    fmt.CALLBACK_RESULT_ERROR.format(error=exc),
                    parse_mode="HTML",
                    reply_to_message_id=pending.get("message_id"),
                )
        return {"received": True, "error": "Internal error"}
