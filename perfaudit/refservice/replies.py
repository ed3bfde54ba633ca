"""Sending replies to Telegram: the parse-mode fallback and voice replies (spec §2.7, §3)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from perfaudit.refservice.services import Services

log = logging.getLogger("refservice.replies")


async def send_with_parse_fallback(
    services: Services, chat_id: int, text: str, reply_to: int | None
) -> None:
    """Markdown, then HTML, then plain text; the last error propagates."""
    tg = services.telegram
    try:
        await tg.send_message(chat_id, text, parse_mode="Markdown", reply_to_message_id=reply_to)
        return
    except Exception as exc:  # noqa: BLE001 - any failure moves on to the next parse mode
        log.warning("Markdown send failed, retrying as HTML: %s", exc)
    try:
        await tg.send_message(chat_id, text, parse_mode="HTML", reply_to_message_id=reply_to)
        return
    except Exception as exc:  # noqa: BLE001
        log.warning("HTML send failed, retrying as plain text: %s", exc)
    await tg.send_message(chat_id, text, parse_mode=None, reply_to_message_id=reply_to)


async def send_as_voice(
    services: Services,
    chat_id: int,
    text: str,
    reply_to: int | None,
    *,
    fallback_parse_mode: str,
) -> None:
    """TTS then sendVoice; on failure send the text instead. The mp3 never outlives this."""
    audio: Path | None = None
    try:
        audio = await services.tts.synthesize(text, Path(services.settings.tmp_dir))
        await services.telegram.send_voice(chat_id, audio, reply_to_message_id=reply_to)
    except Exception as exc:  # noqa: BLE001 - fall back to text, as the spec says
        log.warning("Voice reply failed, sending text instead: %s", exc)
        await services.telegram.send_message(
            chat_id, text, parse_mode=fallback_parse_mode, reply_to_message_id=reply_to
        )
    finally:
        if audio is not None:
            with contextlib.suppress(FileNotFoundError):
                audio.unlink()
