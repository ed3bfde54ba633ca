"""Async clients for the three upstreams: Telegram Bot API, cursor-runner and ElevenLabs.

All of them take their HTTP clients from one ``HttpClients``, which holds the ``http-keepalive``
switch: one pooled client per upstream per process, or a new client (and TCP connection) per call.
"""

from perfaudit.refservice.clients.cursor_runner import (
    CursorRunnerClient,
    CursorRunnerConnectionError,
    CursorRunnerError,
    CursorRunnerInvalidResponseError,
    CursorRunnerTimeoutError,
    new_request_id,
)
from perfaudit.refservice.clients.elevenlabs import (
    ElevenLabsConnectionError,
    ElevenLabsError,
    ElevenLabsTimeoutError,
    SpeechToText,
    SynthesisError,
    TextToSpeech,
    TranscriptionError,
)
from perfaudit.refservice.clients.http import HttpClients, Upstream
from perfaudit.refservice.clients.telegram import TelegramClient, TelegramError

__all__ = [
    "CursorRunnerClient",
    "CursorRunnerConnectionError",
    "CursorRunnerError",
    "CursorRunnerInvalidResponseError",
    "CursorRunnerTimeoutError",
    "ElevenLabsConnectionError",
    "ElevenLabsError",
    "ElevenLabsTimeoutError",
    "HttpClients",
    "SpeechToText",
    "SynthesisError",
    "TelegramClient",
    "TelegramError",
    "TextToSpeech",
    "TranscriptionError",
    "Upstream",
    "new_request_id",
]
