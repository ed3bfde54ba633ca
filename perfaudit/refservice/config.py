"""Settings of the reference service, read from the environment (spec §5)."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

from perfaudit.refservice import switches as sw


@dataclass(frozen=True)
class Settings:
    app_name: str = "Virtual Assistant API"
    app_version: str = "1.0.0"
    webhook_secret: str = "changeme"  # admin, callback and agent-tools secret
    telegram_bot_token: str = ""
    telegram_webhook_secret: str = "changeme"
    telegram_webhook_base_url: str = "http://localhost:3000"
    telegram_api_url: str = "https://api.telegram.org"  # stand-in base URL in perfaudit stacks
    cursor_runner_url: str = "http://localhost:3001"
    cursor_runner_timeout: float = 300.0
    elevenlabs_api_url: str = "https://api.elevenlabs.io"
    elevenlabs_api_key: str = ""
    elevenlabs_stt_model_id: str = "scribe_v1"
    elevenlabs_tts_model_id: str = "eleven_turbo_v2_5"
    elevenlabs_voice_id: str = "vfaqCOvlrKi4Zp7C2IAm"
    redis_url: str = "redis://localhost:6379/0"
    shared_db_path: str = "shared.sqlite3"
    tmp_dir: str = field(default_factory=tempfile.gettempdir)
    log_level: str = "info"
    job_max_tries: int = 4  # 1 attempt + 3 retries (spec §2.1)
    job_retry_delays: tuple[float, ...] = (2.0, 4.0, 8.0)
    switches: frozenset[str] = frozenset()

    def on(self, switch: str) -> bool:
        """Is the optimization ``switch`` turned on?"""
        if switch not in sw.BY_NAME:
            raise KeyError(f"unknown switch {switch!r}")
        return switch in self.switches

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)

        def get(name: str, default: str) -> str:
            return env.get(name, default)

        delays = get("JOB_RETRY_DELAYS", "2,4,8")
        return cls(
            app_name=get("APP_NAME", cls.app_name),
            app_version=get("APP_VERSION", cls.app_version),
            webhook_secret=get("WEBHOOK_SECRET", cls.webhook_secret),
            telegram_bot_token=get("TELEGRAM_BOT_TOKEN", ""),
            telegram_webhook_secret=get("TELEGRAM_WEBHOOK_SECRET", cls.telegram_webhook_secret),
            telegram_webhook_base_url=get(
                "TELEGRAM_WEBHOOK_BASE_URL", cls.telegram_webhook_base_url
            ),
            telegram_api_url=get("TELEGRAM_API_URL", cls.telegram_api_url).rstrip("/"),
            cursor_runner_url=get("CURSOR_RUNNER_URL", cls.cursor_runner_url).rstrip("/"),
            cursor_runner_timeout=float(get("CURSOR_RUNNER_TIMEOUT", "300")),
            elevenlabs_api_url=get("ELEVENLABS_API_URL", cls.elevenlabs_api_url).rstrip("/"),
            elevenlabs_api_key=get("ELEVENLABS_API_KEY", ""),
            elevenlabs_stt_model_id=get("ELEVENLABS_STT_MODEL_ID", cls.elevenlabs_stt_model_id),
            elevenlabs_tts_model_id=get("ELEVENLABS_TTS_MODEL_ID", cls.elevenlabs_tts_model_id),
            elevenlabs_voice_id=get("ELEVENLABS_VOICE_ID", cls.elevenlabs_voice_id),
            redis_url=get("REDIS_URL", cls.redis_url),
            shared_db_path=get("SHARED_DB_PATH", cls.shared_db_path),
            tmp_dir=get("PERFAUDIT_TMP_DIR", tempfile.gettempdir()),
            log_level=get("LOG_LEVEL", "info"),
            job_max_tries=int(get("JOB_MAX_TRIES", "4")),
            job_retry_delays=tuple(float(x) for x in delays.split(",") if x.strip()),
            switches=sw.from_env(env),
        )
