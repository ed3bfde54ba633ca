"""What a service or worker process holds for its lifetime, built from Settings."""

from __future__ import annotations

from dataclasses import dataclass, field

from perfaudit.refservice.clients.cursor_runner import CursorRunnerClient
from perfaudit.refservice.clients.elevenlabs import SpeechToText, TextToSpeech
from perfaudit.refservice.clients.http import HttpClients
from perfaudit.refservice.clients.telegram import TelegramClient, WebhookInfoCache
from perfaudit.refservice.config import Settings
from perfaudit.refservice.store import RedisProvider
from perfaudit.refservice.system_settings import SystemSettings


@dataclass
class Services:
    settings: Settings
    http: HttpClients
    redis: RedisProvider
    flags: SystemSettings
    _telegram: TelegramClient | None = field(default=None, init=False, repr=False)

    @classmethod
    def build(cls, settings: Settings) -> Services:
        return cls(
            settings=settings,
            http=HttpClients(settings),
            redis=RedisProvider(settings),
            flags=SystemSettings(settings.shared_db_path, cached=settings.on("settings-cache")),
        )

    # Clients are cheap wrappers; whether a call reuses a connection is up to HttpClients.
    @property
    def telegram(self) -> TelegramClient:
        """phase3: a new bot client per use. ``response-cache``: one per process (the process
        has one token; Rails memoises ``@bot``), holding the getWebhookInfo cache."""
        if not self.settings.on("response-cache"):
            return TelegramClient(self.settings, self.http)
        if self._telegram is None:
            self._telegram = TelegramClient(
                self.settings, self.http, webhook_info_cache=WebhookInfoCache()
            )
        return self._telegram

    @property
    def cursor_runner(self) -> CursorRunnerClient:
        return CursorRunnerClient(self.settings, self.http)

    @property
    def stt(self) -> SpeechToText:
        return SpeechToText(self.settings, self.http)

    @property
    def tts(self) -> TextToSpeech:
        return TextToSpeech(self.settings, self.http)

    @property
    def fast_text(self) -> bool:
        return self.settings.on("text-fastpath")

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.redis.aclose()
