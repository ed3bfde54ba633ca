"""Telegram Bot API client (spec §4.1).

Methods live at ``{base}/bot{token}/{method}``, files at ``{base}/file/bot{token}/{file_path}``.
A blank token makes every method a no-op returning ``None``. Failures raise ``TelegramError``
with the API's description and HTTP status, so callers can fall back (Markdown -> HTML -> plain).

Switches: ``text-fastpath`` (HTML escaping), ``stream-audio`` (file download and voice upload),
``response-cache`` (a ``WebhookInfoCache`` on the one client per process, see Services.telegram).
The token is never put into log lines or error messages.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import httpx

from perfaudit.refservice import formatting
from perfaudit.refservice.clients.http import HttpClients, transport_errors
from perfaudit.refservice.config import Settings

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
WEBHOOK_INFO_TTL_S = 5.0  # response-cache: how long a getWebhookInfo answer is reused
VOICE_MIME = {".ogg": "audio/ogg", ".oga": "audio/ogg", ".wav": "audio/wav"}  # else audio/mpeg


class TelegramError(Exception):
    """A Telegram call failed; ``status_code``/``description`` are set when the API answered."""

    def __init__(
        self, message: str, *, status_code: int | None = None, description: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.description = description


class TelegramConnectionError(TelegramError):
    transient = True  # worth another attempt

    def __init__(self, detail: str) -> None:
        super().__init__(f"Failed to connect to Telegram: {detail}")


class TelegramTimeoutError(TelegramError):
    transient = True  # worth another attempt

    def __init__(self, detail: str) -> None:
        super().__init__(f"Request to Telegram timed out: {detail}")


def voice_mime_type(path: Path) -> str:
    return VOICE_MIME.get(path.suffix.lower(), "audio/mpeg")


@contextmanager
def _logged(doing: str) -> Iterator[None]:
    """Log ``Error <doing>: <msg>`` and re-raise (spec §4.1)."""
    try:
        yield
    except TelegramError as e:
        log.error("Error %s: %s", doing, e)
        raise


def _transport() -> AbstractContextManager[None]:
    return transport_errors(TelegramConnectionError, TelegramTimeoutError)


def _envelope(resp: httpx.Response) -> dict[str, Any]:
    """The ``{"ok": ..., "result": ...}`` envelope, or ``TelegramError`` when not ok."""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("ok") and resp.is_success:
        return body
    description = None
    if isinstance(body, dict):
        description = body.get("description")
    description = str(description) if description else f"HTTP {resp.status_code}"
    raise TelegramError(
        f"Telegram API error: {description}",
        status_code=resp.status_code,
        description=description,
    )


class WebhookInfoCache:
    """The last getWebhookInfo envelope, for ``ttl`` seconds (``response-cache``).

    ``invalidate`` (after setWebhook/deleteWebhook) bumps a generation: an answer to a call
    that started before the change is not stored, so the cache never goes back to stale info.
    Failures are not cached.
    """

    def __init__(self, ttl: float = WEBHOOK_INFO_TTL_S) -> None:
        self.ttl = ttl
        self.generation = 0
        self._value: dict[str, Any] | None = None
        self._at = float("-inf")

    def get(self) -> dict[str, Any] | None:
        if self._value is not None and time.monotonic() - self._at <= self.ttl:
            return copy.deepcopy(self._value)  # callers may change what they get
        return None

    def put(self, value: dict[str, Any], generation: int) -> None:
        if generation == self.generation:
            self._value, self._at = copy.deepcopy(value), time.monotonic()

    def invalidate(self) -> None:
        self.generation += 1
        self._value = None


class TelegramClient:
    def __init__(
        self,
        settings: Settings,
        clients: HttpClients,
        *,
        webhook_info_cache: WebhookInfoCache | None = None,
    ) -> None:
        self._token = settings.telegram_bot_token
        self._clients = clients
        self._info_cache = webhook_info_cache
        self._fast_text = settings.on("text-fastpath")
        self._stream = settings.on("stream-audio")

    @property
    def enabled(self) -> bool:
        return bool(self._token.strip())

    async def _call(
        self,
        method: str,
        *,
        http_method: str = "POST",
        json: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        with _transport():
            async with self._clients.session("telegram") as http:
                resp = await http.request(
                    http_method, f"/bot{self._token}/{method}", json=json, data=data, files=files
                )
        return _envelope(resp)

    async def send_message(
        self,
        chat_id: int | str,
        text: str,
        *,
        parse_mode: str | None = "HTML",
        reply_to_message_id: int | None = None,
    ) -> dict[str, Any] | None:
        """Send ``text``; escaped only for ``parse_mode="HTML"``; ``None``/"" sends plain text."""
        if not self.enabled:
            return None
        if parse_mode == "HTML":
            text = formatting.escape_html(text, fast=self._fast_text)
        payload: dict[str, Any] = {"chat_id": chat_id, "text": text}
        if parse_mode:
            payload["parse_mode"] = parse_mode
        if reply_to_message_id is not None:
            payload["reply_to_message_id"] = reply_to_message_id
        with _logged("sending message"):
            return await self._call("sendMessage", json=payload)

    async def send_voice(
        self,
        chat_id: int | str,
        path: str | Path,
        *,
        reply_to_message_id: int | None = None,
        caption: str | None = None,
    ) -> dict[str, Any] | None:
        """Upload ``path`` as a voice note. phase3 reads it into memory; stream-audio streams it."""
        if not self.enabled:
            return None
        path = Path(path)
        data = {"chat_id": str(chat_id)}
        if reply_to_message_id is not None:
            data["reply_to_message_id"] = str(reply_to_message_id)
        if caption is not None:
            data["caption"] = caption
        mime = voice_mime_type(path)
        with _logged("sending voice"):
            if not self._stream:
                # Check-then-read (fs.access + readFile in TS): an extra syscall, whole file in RAM.
                if not path.is_file():
                    raise TelegramError("Voice file does not exist")
                content = path.read_bytes()
                return await self._call(
                    "sendVoice", data=data, files={"voice": (path.name, content, mime)}
                )
            try:
                f = path.open("rb")
            except (FileNotFoundError, IsADirectoryError) as e:
                raise TelegramError("Voice file does not exist") from e
            with f:  # httpx reads the open file in chunks and sizes it with fstat
                return await self._call(
                    "sendVoice", data=data, files={"voice": (path.name, f, mime)}
                )

    async def answer_callback_query(
        self, callback_query_id: str, text: str | None = None, show_alert: bool = False
    ) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        payload: dict[str, Any] = {"callback_query_id": callback_query_id}
        if text is not None:
            payload["text"] = text
        if show_alert:
            payload["show_alert"] = True
        with _logged("answering callback query"):
            return await self._call("answerCallbackQuery", json=payload)

    async def get_file(self, file_id: str) -> dict[str, Any] | None:
        """The Telegram ``File`` object (``result``: ``file_id``, ``file_path``, ...)."""
        if not self.enabled:
            return None
        with _logged("getting file"):
            body = await self._call("getFile", json={"file_id": file_id})
            result = body.get("result")
            return result if isinstance(result, dict) else {}

    async def download_file(self, file_path: str, dest: Path) -> int | None:
        """Save ``file_path`` to ``dest`` (parents created); returns the bytes written.

        phase3 buffers the whole body, copies it twice (``Buffer.from`` for the write and again
        for the size log in TS) and writes it; stream-audio streams it to disk in chunks.
        A failed download leaves no file behind.
        """
        if not self.enabled:
            return None
        url = f"/file/bot{self._token}/{file_path}"
        dest = Path(dest)
        with _logged("downloading file"):
            try:
                with _transport():
                    if self._stream:
                        return await self._download_streamed(url, dest)
                    return await self._download_buffered(url, dest)
            except BaseException:
                dest.unlink(missing_ok=True)
                raise

    @staticmethod
    def _download_error(resp: httpx.Response) -> TelegramError:
        return TelegramError(
            f"Failed to download file: HTTP {resp.status_code} {resp.reason_phrase}",
            status_code=resp.status_code,
        )

    async def _download_buffered(self, url: str, dest: Path) -> int:
        async with self._clients.session("telegram") as http:
            resp = await http.get(url)
        if not resp.is_success:
            raise self._download_error(resp)
        buffer = bytearray(resp.content)  # copy 1: the buffer written to disk
        size = len(bytearray(resp.content))  # copy 2: only to log the size
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(buffer)
        log.info("Downloaded Telegram file %s (%d bytes)", dest.name, size)
        return size

    async def _download_streamed(self, url: str, dest: Path) -> int:
        size = 0
        async with self._clients.session("telegram") as http, http.stream("GET", url) as resp:
            if not resp.is_success:
                raise self._download_error(resp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with dest.open("wb") as f:
                async for chunk in resp.aiter_bytes(CHUNK_SIZE):
                    f.write(chunk)
                    size += len(chunk)
        log.info("Downloaded Telegram file %s (%d bytes)", dest.name, size)
        return size

    async def set_webhook(self, url: str, secret_token: str | None = None) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        payload: dict[str, Any] = {"url": url}
        if secret_token and secret_token.strip():
            payload["secret_token"] = secret_token
        try:
            with _logged("setting webhook"):
                return await self._call("setWebhook", json=payload)
        finally:  # failed or not, Telegram's state may have changed
            if self._info_cache is not None:
                self._info_cache.invalidate()

    async def delete_webhook(self) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        try:
            with _logged("deleting webhook"):
                return await self._call("deleteWebhook", json={})
        finally:
            if self._info_cache is not None:
                self._info_cache.invalidate()

    async def get_webhook_info(self) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        cache = self._info_cache
        if cache is None:
            with _logged("getting webhook info"):
                return await self._call("getWebhookInfo", http_method="GET")
        cached = cache.get()
        if cached is not None:
            return cached
        generation = cache.generation
        with _logged("getting webhook info"):
            info = await self._call("getWebhookInfo", http_method="GET")
        cache.put(info, generation)
        return info
