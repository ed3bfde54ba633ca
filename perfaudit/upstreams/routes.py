"""Route names of the stand-ins, shared by the servers, the control API and the toolkit.

Kept dependency-free so the toolkit can import it to build config dicts.
"""

from __future__ import annotations

# Telegram Bot API
TG_SEND_MESSAGE = "telegram.sendMessage"
TG_SEND_VOICE = "telegram.sendVoice"
TG_ANSWER_CALLBACK_QUERY = "telegram.answerCallbackQuery"
TG_GET_FILE = "telegram.getFile"
TG_SET_WEBHOOK = "telegram.setWebhook"
TG_DELETE_WEBHOOK = "telegram.deleteWebhook"
TG_GET_WEBHOOK_INFO = "telegram.getWebhookInfo"
TG_FILE_DOWNLOAD = "telegram.fileDownload"
TG_UNKNOWN = "telegram.unknown"  # recorded only (unknown method); not configurable

# cursor-runner
CR_ITERATE_ASYNC = "cursor.iterateAsync"
CR_ITERATE = "cursor.iterate"
CR_EXECUTE = "cursor.execute"
CR_CALLBACK = "cursor.callback"  # outgoing callback; recorded only, timing via callback_* keys
GIT_CLONE = "git.clone"
GIT_REPOSITORIES = "git.repositories"
GIT_CHECKOUT = "git.checkout"
GIT_PUSH = "git.push"
GIT_PULL = "git.pull"

# ElevenLabs
EL_STT = "elevenlabs.stt"
EL_TTS = "elevenlabs.tts"

TELEGRAM_ROUTES: tuple[str, ...] = (
    TG_SEND_MESSAGE,
    TG_SEND_VOICE,
    TG_ANSWER_CALLBACK_QUERY,
    TG_GET_FILE,
    TG_SET_WEBHOOK,
    TG_DELETE_WEBHOOK,
    TG_GET_WEBHOOK_INFO,
    TG_FILE_DOWNLOAD,
)
CURSOR_ROUTES: tuple[str, ...] = (
    CR_ITERATE_ASYNC,
    CR_ITERATE,
    CR_EXECUTE,
    GIT_CLONE,
    GIT_REPOSITORIES,
    GIT_CHECKOUT,
    GIT_PUSH,
    GIT_PULL,
)
ELEVENLABS_ROUTES: tuple[str, ...] = (EL_STT, EL_TTS)

# Routes whose behaviour (latency, errors, sizes) can be configured.
CONFIGURABLE_ROUTES: tuple[str, ...] = TELEGRAM_ROUTES + CURSOR_ROUTES + ELEVENLABS_ROUTES

# Upstream names as used in connection stats.
TELEGRAM = "telegram"
CURSOR_RUNNER = "cursor_runner"
ELEVENLABS = "elevenlabs"
UPSTREAMS: tuple[str, ...] = (TELEGRAM, CURSOR_RUNNER, ELEVENLABS)
