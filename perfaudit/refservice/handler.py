"""The Telegram message job (spec §2): local commands, voice, forwarding to cursor-runner.

Every step is safe to run again: an attempt that fails transiently is retried with backoff,
only the last attempt tells the user, and an update is forwarded to cursor-runner at most
once however often it is retried or re-delivered (a marker per ``update_id`` in Redis).

Switches: ``redis-pipeline`` (the forward's Redis writes in one round trip),
``concurrent-awaits`` (independent Telegram calls overlap; what the user sees keeps its order)
and ``leak-fix`` (no per-update child logger).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from perfaudit.refservice import formatting as fmt
from perfaudit.refservice.clients.cursor_runner import CursorRunnerError
from perfaudit.refservice.clients.elevenlabs import TranscriptionError
from perfaudit.refservice.clients.telegram import TelegramClient
from perfaudit.refservice.errors import RetryLater, is_transient
from perfaudit.refservice.replies import send_as_voice
from perfaudit.refservice.services import Services

log = logging.getLogger("refservice.job")

FORWARD_MARKER_PREFIX = "perfaudit:forwarded:"
FORWARD_MARKER_TTL = 86400
UPDATE_KINDS = ("message", "edited_message", "callback_query")
NO_TRANSCRIPT = "No text returned from transcription"  # the STT client's empty-result error


@dataclass(frozen=True)
class Attempt:
    number: int  # 1-based
    max_tries: int

    @property
    def first(self) -> bool:
        return self.number <= 1

    @property
    def final(self) -> bool:
        return self.number >= self.max_tries


def update_kind(update: dict[str, Any]) -> str | None:
    return next((k for k in UPDATE_KINDS if isinstance(update.get(k), dict)), None)


def new_request_id() -> str:
    return f"telegram-{int(time.time())}-{secrets.token_hex(4)}"


def _chat_and_message(update: dict[str, Any]) -> tuple[int | None, int | None]:
    msg = update.get("message") or update.get("edited_message")
    if not isinstance(msg, dict):
        cq = update.get("callback_query")
        msg = cq.get("message") if isinstance(cq, dict) else None
    if not isinstance(msg, dict):
        return None, None
    chat = msg.get("chat") if isinstance(msg.get("chat"), dict) else {}
    return chat.get("id"), msg.get("message_id")


def _give_up_or_retry(exc: BaseException, attempt: Attempt) -> None:
    if is_transient(exc) and not attempt.final:
        log.warning("Attempt %s failed transiently, will retry: %s", attempt.number, exc)
        raise RetryLater(str(exc)) from exc


async def handle_update(services: Services, update: dict[str, Any], attempt: Attempt) -> str:
    """Process one update; returns what happened (for the job result)."""
    if services.settings.on("leak-fix"):
        job_log = log
    else:
        # pino's logger.child({updateId}) ported literally: logging keeps every Logger it
        # ever made (Logger.manager.loggerDict), so each update leaks one.
        job_log = logging.getLogger(f"{log.name}.{update.get('update_id')}")
    if not services.settings.on("lean-logging"):
        job_log.info("TelegramMessageJob processing update: %s", json.dumps(update))
    else:
        job_log.info("TelegramMessageJob update %s", update.get("update_id"))
    kind = update_kind(update)
    try:
        if kind in ("message", "edited_message"):
            return await handle_message(services, update[kind], update.get("update_id"), attempt)
        if kind == "callback_query":
            return await handle_callback_query(
                services, update["callback_query"], update.get("update_id"), attempt
            )
        log.info("Unhandled update type: %s", sorted(update))
        return "unhandled"
    except RetryLater:
        raise
    except Exception as exc:
        _give_up_or_retry(exc, attempt)
        log.exception("Error in TelegramMessageJob: %s", exc)
        chat_id, message_id = _chat_and_message(update)
        if chat_id is not None:
            with contextlib.suppress(Exception):
                await services.telegram.send_message(
                    chat_id,
                    fmt.ERROR_PROCESSING_MESSAGE.format(error=exc),
                    parse_mode="HTML",
                    reply_to_message_id=message_id,
                )
        return "failed"


async def handle_message(
    services: Services, message: dict[str, Any], update_id: Any, attempt: Attempt
) -> str:
    chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
    chat_id = chat.get("id")
    message_id = message.get("message_id")
    text = message.get("text")
    file_id = fmt.extract_audio_file_id(message)
    original_was_audio = file_id is not None

    if file_id is not None:
        transcript = await _transcribe(services, chat_id, message_id, file_id, attempt)
        if transcript is None:
            return "transcription-failed"
        text = transcript

    if await forward_to_cursor_runner(
        services,
        update_id=update_id,
        chat_id=chat_id,
        message_id=message_id,
        text=text,
        original_was_audio=original_was_audio,
        attempt=attempt,
    ):
        return "forwarded"

    say = fmt.local_command_reply(text, fast=services.fast_text)
    if say and chat_id is not None:
        if original_was_audio and services.flags.enabled("allow_audio_output"):
            await send_as_voice(services, chat_id, say, message_id, fallback_parse_mode="HTML")
        else:
            await services.telegram.send_message(
                chat_id, say, parse_mode="HTML", reply_to_message_id=message_id
            )
    return "local-reply"


async def _transcribe(
    services: Services, chat_id: Any, message_id: Any, file_id: str, attempt: Attempt
) -> str | None:
    """The transcript, or None after telling the user why there is none.

    ``concurrent-awaits``: the 🎤 notice is independent of getFile, the download and STT, so it
    runs alongside them; any later message waits for both, so the user sees the same order.
    """
    tg = services.telegram

    async def notice() -> None:
        if attempt.first and services.flags.enabled("debug") and chat_id is not None:
            try:
                await tg.send_message(
                    chat_id, fmt.TRANSCRIBING_ACK, parse_mode="HTML",
                    reply_to_message_id=message_id,
                )  # fmt: skip
            except Exception as exc:  # noqa: BLE001 - an acknowledgement must not stop the job
                log.warning("Could not send the transcribing notice: %s", exc)

    got: str | BaseException
    if services.settings.on("concurrent-awaits"):
        noticed, got = await asyncio.gather(
            notice(), _fetch_transcript(services, tg, file_id), return_exceptions=True
        )
        if isinstance(noticed, BaseException):
            raise noticed
    else:
        await notice()
        try:
            got = await _fetch_transcript(services, tg, file_id)
        except Exception as exc:  # noqa: BLE001 - handled below, as in the concurrent path
            got = exc
    if isinstance(got, BaseException):
        if not isinstance(got, Exception):
            raise got  # cancellation
        _give_up_or_retry(got, attempt)
        if chat_id is not None:
            reply = (
                fmt.TRANSCRIBE_EMPTY
                if str(got) == NO_TRANSCRIPT
                else fmt.transcribe_error(str(got))
            )
            await tg.send_message(chat_id, reply, parse_mode="HTML", reply_to_message_id=message_id)
        return None
    transcript = got
    if not (transcript or "").strip():
        if chat_id is not None:
            await tg.send_message(
                chat_id, fmt.TRANSCRIBE_EMPTY, parse_mode="HTML", reply_to_message_id=message_id
            )
        return None
    return transcript


async def _fetch_transcript(services: Services, tg: TelegramClient, file_id: str) -> str:
    """getFile, download to a temp file, speech-to-text; the temp file never outlives this."""
    stt = services.stt
    stt.check_configured()  # before the download, so a missing key wastes nothing
    info = await tg.get_file(file_id)
    file_path = str((info or {}).get("file_path") or "")
    if not file_path:
        raise TranscriptionError("Telegram returned no file_path")
    dest = Path(services.settings.tmp_dir) / f"telegram_{file_id}_{PurePosixPath(file_path).name}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        await tg.download_file(file_path, dest)
        return await stt.transcribe(dest)
    finally:
        try:
            dest.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("Could not remove temp file %s: %s", dest, exc)


async def forward_to_cursor_runner(
    services: Services,
    *,
    update_id: Any,
    chat_id: Any,
    message_id: Any,
    text: str | None,
    original_was_audio: bool,
    attempt: Attempt,
) -> bool:
    """Spec §2.6. True when the message was (or had already been) handed to cursor-runner."""
    outcome = await _forward(
        services,
        update_id=update_id,
        chat_id=chat_id,
        message_id=message_id,
        text=text,
        original_was_audio=original_was_audio,
        attempt=attempt,
    )
    if outcome == SENT:
        await _processing_notice(services, chat_id, message_id, attempt)
    return outcome != SKIPPED


SKIPPED, ALREADY, FAILED, SENT = "skipped", "already-forwarded", "failed", "sent"


async def _forward(
    services: Services,
    *,
    update_id: Any,
    chat_id: Any,
    message_id: Any,
    text: str | None,
    original_was_audio: bool,
    attempt: Attempt,
) -> str:
    """Hand the message to cursor-runner once per update: SKIPPED, ALREADY, FAILED or SENT.

    ``redis-pipeline`` off (phase3), five sequential round trips: HGETALL the marker, HSET it
    pending, EXPIRE it, SETEX the pending request, and HSET the marker sent after the call.
    On, the three writes before the call go in one pipeline (three round trips in all).
    """
    if chat_id is None or not fmt.is_forwardable(text, fast=services.fast_text):
        return SKIPPED
    assert text is not None
    marker = f"{FORWARD_MARKER_PREFIX}{update_id}" if update_id is not None else None
    pipelined = services.settings.on("redis-pipeline")
    async with services.redis.store() as store:
        redis = store.redis
        request_id = new_request_id()
        if marker is not None:
            seen = await redis.hgetall(marker)
            if seen.get(b"state") == b"sent":
                log.info("Update %s was already forwarded; not forwarding again", update_id)
                return ALREADY
            # Reuse the id of an earlier, unfinished attempt so cursor-runner sees one request.
            request_id = (seen.get(b"request_id") or request_id.encode()).decode()
        pending = {
            "chat_id": chat_id,
            "message_id": message_id,
            "prompt": text,
            "original_was_audio": original_was_audio,
            "created_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        if pipelined:
            async with redis.pipeline(transaction=False) as pipe:
                if marker is not None:
                    pipe.hset(marker, mapping={"request_id": request_id, "state": "pending"})
                    pipe.expire(marker, FORWARD_MARKER_TTL)
                store.queue_store(pipe, request_id, pending)
                await pipe.execute()
            store.log_stored(request_id)
        else:
            if marker is not None:
                await redis.hset(marker, mapping={"request_id": request_id, "state": "pending"})
                await redis.expire(marker, FORWARD_MARKER_TTL)
            await store.store(request_id, pending)
        try:
            await services.cursor_runner.iterate_async(prompt=text, request_id=request_id)
        except CursorRunnerError as exc:
            _give_up_or_retry(exc, attempt)
            log.warning("cursor-runner iterate failed for %s: %s", request_id, exc)
            if pipelined:
                async with redis.pipeline(transaction=False) as pipe:
                    store.queue_remove(pipe, request_id)
                    if marker is not None:
                        pipe.hset(marker, "state", "failed")
                    await pipe.execute()
                store.log_removed(request_id)
            else:
                await store.remove(request_id)
                if marker is not None:
                    await redis.hset(marker, "state", "failed")
            await services.telegram.send_message(
                chat_id,
                fmt.CURSOR_ERROR.format(error=exc),
                parse_mode="HTML",
                reply_to_message_id=message_id,
            )
            return FAILED
        if marker is not None:
            await redis.hset(marker, "state", "sent")
    log.info("Forwarded to cursor-runner (request_id: %s, prompt: %s)", request_id, text[:50])
    return SENT


async def _processing_notice(
    services: Services, chat_id: Any, message_id: Any, attempt: Attempt
) -> None:
    if attempt.first and services.flags.enabled("debug"):
        try:
            await services.telegram.send_message(
                chat_id, fmt.PROCESSING_ACK, parse_mode="HTML", reply_to_message_id=message_id
            )
        except Exception as exc:  # noqa: BLE001 - the request is on its way; only log
            log.warning("Could not send the processing notice: %s", exc)


async def handle_callback_query(
    services: Services, query: dict[str, Any], update_id: Any, attempt: Attempt
) -> str:
    """``concurrent-awaits``: answerCallbackQuery runs alongside the forwarding; the ⏳ notice
    and any reply wait for both, as they waited for the answer before."""
    tg = services.telegram

    async def answer() -> None:
        if attempt.first:
            try:
                await tg.answer_callback_query(query.get("id"), text=fmt.CALLBACK_QUERY_ACK)
            except Exception as exc:  # noqa: BLE001 - spec: errors are only logged
                log.warning("answerCallbackQuery failed: %s", exc)

    message = query.get("message") if isinstance(query.get("message"), dict) else {}
    chat = message.get("chat") if isinstance(message.get("chat"), dict) else None
    if not chat:
        await answer()
        return "no-chat"
    data = query.get("data")
    chat_id, message_id = chat.get("id"), message.get("message_id")

    def forward() -> Any:
        return _forward(
            services,
            update_id=update_id,
            chat_id=chat_id,
            message_id=message_id,
            text=data,
            original_was_audio=False,
            attempt=attempt,
        )

    outcome: str | BaseException
    if services.settings.on("concurrent-awaits"):
        _, outcome = await asyncio.gather(answer(), forward(), return_exceptions=True)
        if isinstance(outcome, BaseException):
            raise outcome
    else:
        await answer()
        outcome = await forward()
    if outcome == SENT:
        await _processing_notice(services, chat_id, message_id, attempt)
    if outcome != SKIPPED:
        return "forwarded"
    await tg.send_message(chat_id, fmt.YOU_SELECTED.format(data=data), parse_mode="HTML")
    return "selected"
