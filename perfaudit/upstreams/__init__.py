"""Local stand-ins for the reference service's external APIs (Telegram Bot API,
cursor-runner, ElevenLabs): deterministic, controllable upstreams for performance work.

Run with ``python -m perfaudit.upstreams --telegram-port ... --control-port ...``; drive
them through the control API (``/_standin/...``). This package root only re-exports the
light, dependency-free pieces the toolkit needs to build config patches.
"""

from perfaudit.upstreams.config import (
    DEFAULT_ROUTES,
    SETTING_KEYS,
    ConfigError,
    RouteSettings,
    StandinConfig,
    fast_patch,
)
from perfaudit.upstreams.routes import (
    CONFIGURABLE_ROUTES,
    CURSOR_ROUTES,
    ELEVENLABS_ROUTES,
    TELEGRAM_ROUTES,
    UPSTREAMS,
)

CONTROL_PREFIX = "/_standin"

__all__ = [
    "CONFIGURABLE_ROUTES",
    "CONTROL_PREFIX",
    "CURSOR_ROUTES",
    "DEFAULT_ROUTES",
    "ELEVENLABS_ROUTES",
    "SETTING_KEYS",
    "TELEGRAM_ROUTES",
    "UPSTREAMS",
    "ConfigError",
    "RouteSettings",
    "StandinConfig",
    "fast_patch",
]
