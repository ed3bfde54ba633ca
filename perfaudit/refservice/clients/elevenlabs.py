"""ElevenLabs speech-to-text and text-to-speech clients (spec §4.3).

Switch ``stream-audio``: phase3 reads the saved audio back into memory to upload it and buffers
the synthesised speech before writing it; with the switch the upload streams from the open file
and the speech streams to disk in chunks. The resulting requests and files are the same.
"""

from __future__ import annotations

import logging
import mimetypes
import secrets
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx

from perfaudit.refservice.clients.http import HttpClients, transport_errors
from perfaudit.refservice.config import Settings

log = logging.getLogger(__name__)

CHUNK_SIZE = 64 * 1024
TTS_OUTPUT_FORMAT = "mp3_44100_128"


class ElevenLabsError(Exception):
    """Base of every ElevenLabs failure; ``status_code`` is set when the API answered."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class ElevenLabsConnectionError(ElevenLabsError):
    transient = True  # worth another attempt

    def __init__(self, detail: str) -> None:
        super().__init__(f"Failed to connect to ElevenLabs: {detail}")


class ElevenLabsTimeoutError(ElevenLabsError):
    transient = True  # worth another attempt

    def __init__(self, detail: str) -> None:
        super().__init__(f"Request to ElevenLabs timed out: {detail}")


class TranscriptionError(ElevenLabsError):
    pass


class SynthesisError(ElevenLabsError):
    pass


def _msgs(items: list[Any]) -> str:
    return "; ".join(str(i["msg"]) for i in items if isinstance(i, dict) and i.get("msg"))


def error_message(resp: httpx.Response) -> str:
    """The error text of a non-2xx answer, in the preference order of spec §4.3 (TTS).

    STT's order (detail, error, message, HTTP) is the same list without the leading array case.
    A ``detail`` object (``{"status": ..., "message": ...}``, what ElevenLabs sends for a bad
    key) yields its ``message``.
    """
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, list) and (joined := _msgs(body)):
        return joined
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str) and detail:
            return detail
        if isinstance(detail, list) and (joined := _msgs(detail)):
            return joined
        if isinstance(detail, dict) and detail.get("message"):
            return str(detail["message"])
        for key in ("error", "message"):
            if body.get(key):
                return str(body[key])
    return f"HTTP {resp.status_code}: {resp.reason_phrase or resp.text[:500]}"


def _transport() -> AbstractContextManager[None]:
    return transport_errors(ElevenLabsConnectionError, ElevenLabsTimeoutError)


class _Base:
    def __init__(self, settings: Settings, clients: HttpClients) -> None:
        self._settings = settings
        self._clients = clients
        self._stream = settings.on("stream-audio")

    def check_configured(self) -> None:
        """Raise when the API key is blank; call it before downloading anything to send."""
        if not self._settings.elevenlabs_api_key.strip():
            raise ElevenLabsError("ElevenLabs API key is not configured")

    def _headers(self, **extra: str) -> dict[str, str]:
        return {"xi-api-key": self._settings.elevenlabs_api_key, **extra}


class SpeechToText(_Base):
    async def transcribe(self, path: str | Path, *, language: str | None = None) -> str:
        """POST the audio file to ``/v1/speech-to-text``; returns the transcript text."""
        self.check_configured()
        path = Path(path)
        data = {"model_id": self._settings.elevenlabs_stt_model_id}
        if language:
            data["language"] = language
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if self._stream:
            with path.open("rb") as f:  # httpx streams the open file in chunks
                resp = await self._post(data, (path.name, f, mime))
        else:
            # phase3: the file just written by the download is read back whole into memory.
            resp = await self._post(data, (path.name, path.read_bytes(), mime))
        if not resp.is_success:
            log.error("ElevenLabs STT error %s: %s", resp.status_code, resp.text[:500])
            raise TranscriptionError(error_message(resp), status_code=resp.status_code)
        try:
            body = resp.json()
        except ValueError as e:
            raise TranscriptionError(f"Failed to parse response: {e}") from e
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise TranscriptionError("No text returned from transcription")
        return text

    async def _post(self, data: dict[str, str], file: tuple[str, Any, str]) -> httpx.Response:
        with _transport():
            async with self._clients.session("elevenlabs") as http:
                return await http.post(
                    "/v1/speech-to-text", data=data, files={"file": file}, headers=self._headers()
                )


class TextToSpeech(_Base):
    async def synthesize(
        self, text: str, dest_dir: str | Path, *, voice_settings: dict[str, Any] | None = None
    ) -> Path:
        """POST ``text`` to ``/v1/text-to-speech/<voice>``; writes and returns the mp3 path.

        On any failure no file is left behind.
        """
        self.check_configured()
        if not text or not text.strip():
            raise SynthesisError("Text is required")
        voice_id = self._settings.elevenlabs_voice_id
        if not voice_id or not voice_id.strip():
            raise SynthesisError("ElevenLabs voice_id is not configured")
        body: dict[str, Any] = {
            "text": text,
            "model_id": self._settings.elevenlabs_tts_model_id,
            "output_format": TTS_OUTPUT_FORMAT,
        }
        if voice_settings:
            body["voice_settings"] = voice_settings
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        dest = dest_dir / f"elevenlabs_tts_{secrets.token_hex(8)}.mp3"
        url = f"/v1/text-to-speech/{voice_id}"
        headers = self._headers(Accept="audio/mpeg")
        try:
            with _transport():
                if self._stream:
                    await self._synthesize_streamed(url, body, headers, dest)
                else:
                    await self._synthesize_buffered(url, body, headers, dest)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        return dest

    @staticmethod
    def _error(resp: httpx.Response) -> SynthesisError:
        log.error("ElevenLabs TTS error %s: %s", resp.status_code, resp.text[:500])
        return SynthesisError(error_message(resp), status_code=resp.status_code)

    async def _synthesize_buffered(
        self, url: str, body: dict[str, Any], headers: dict[str, str], dest: Path
    ) -> None:
        async with self._clients.session("elevenlabs") as http:
            resp = await http.post(url, json=body, headers=headers)
        if not resp.is_success:
            raise self._error(resp)
        dest.write_bytes(resp.content)

    async def _synthesize_streamed(
        self, url: str, body: dict[str, Any], headers: dict[str, str], dest: Path
    ) -> None:
        async with (
            self._clients.session("elevenlabs") as http,
            http.stream("POST", url, json=body, headers=headers) as resp,
        ):
            if not resp.is_success:
                await resp.aread()
                raise self._error(resp)
            with dest.open("wb") as f:
                async for chunk in resp.aiter_bytes(CHUNK_SIZE):
                    f.write(chunk)
