"""Runtime configuration of the stand-ins: per-route behaviour plus a few global knobs.

The same dict shape is used by ``--config FILE.json``, ``POST /_standin/config`` and
:meth:`StandinConfig.apply`. A patch is validated completely before any of it is
applied, so a 400 never leaves the config half-changed.
"""

from __future__ import annotations

import copy
import fnmatch
import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from perfaudit.upstreams import routes as r

KIB = 1024


class ConfigError(ValueError):
    """A config patch was rejected; the message names the offending key."""


@dataclass(frozen=True, slots=True)
class RouteSettings:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0  # uniform 0..jitter added to latency
    error_rate: float = 0.0  # probability of answering an injected error
    error_status: int = 500
    response_bytes: int | None = None  # download/TTS body size, or cursor output size
    timeout_rate: float = 0.0  # probability of hanging timeout_ms before answering
    timeout_ms: float = 65_000.0


SETTING_KEYS: tuple[str, ...] = tuple(f.name for f in fields(RouteSettings))


def _defaults() -> dict[str, RouteSettings]:
    tg = RouteSettings(latency_ms=40, jitter_ms=40)
    cursor_sync = RouteSettings(latency_ms=50, jitter_ms=50)
    git = RouteSettings(latency_ms=100, jitter_ms=100)
    out = {name: tg for name in r.TELEGRAM_ROUTES}
    out[r.TG_GET_FILE] = RouteSettings(latency_ms=40, jitter_ms=20)
    out[r.TG_FILE_DOWNLOAD] = RouteSettings(latency_ms=60, jitter_ms=40, response_bytes=48 * KIB)
    out[r.CR_ITERATE_ASYNC] = RouteSettings(latency_ms=20, jitter_ms=20)
    out[r.CR_ITERATE] = cursor_sync
    out[r.CR_EXECUTE] = cursor_sync
    for name in (r.GIT_CLONE, r.GIT_REPOSITORIES, r.GIT_CHECKOUT, r.GIT_PUSH, r.GIT_PULL):
        out[name] = git
    out[r.EL_STT] = RouteSettings(latency_ms=900, jitter_ms=300)
    out[r.EL_TTS] = RouteSettings(latency_ms=400, jitter_ms=200, response_bytes=32 * KIB)
    assert set(out) == set(r.CONFIGURABLE_ROUTES)
    return out


DEFAULT_ROUTES: dict[str, RouteSettings] = _defaults()

MAX_RESPONSE_BYTES = 2**31 - 1


# --- value validators: each returns the normalised value or raises ConfigError(key) ---


def _number(key: str, v: Any, lo: float = 0.0, hi: float = math.inf) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ConfigError(f"{key}: expected a number, got {v!r}")
    if not lo <= v <= hi:
        raise ConfigError(f"{key}: must be between {lo:g} and {hi:g}, got {v!r}")
    return float(v)


def _int(key: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConfigError(f"{key}: expected an integer, got {v!r}")
    if not lo <= v <= hi:
        raise ConfigError(f"{key}: must be between {lo} and {hi}, got {v!r}")
    return v


def _str(key: str, v: Any) -> str:
    if not isinstance(v, str):
        raise ConfigError(f"{key}: expected a string, got {v!r}")
    return v


def _opt_str(key: str, v: Any) -> str | None:
    return None if v is None else _str(key, v)


def _url(key: str, v: Any) -> str | None:
    s = _opt_str(key, v)
    if s and not s.startswith(("http://", "https://")):
        raise ConfigError(f"{key}: expected an http(s) URL, got {v!r}")
    return s or None


def _setting(key: str, name: str, v: Any) -> Any:
    if name in ("latency_ms", "jitter_ms", "timeout_ms"):
        return _number(key, v)
    if name in ("error_rate", "timeout_rate"):
        return _number(key, v, 0.0, 1.0)
    if name == "error_status":
        return _int(key, v, 400, 599)
    if name == "response_bytes":
        return None if v is None else _int(key, v, 0, MAX_RESPONSE_BYTES)
    raise ConfigError(f"{key}: unknown route setting (known: {', '.join(SETTING_KEYS)})")


# Global keys: name -> validator(key, value) -> normalised value.
_GLOBAL_VALIDATORS: dict[str, Any] = {
    "seed": lambda k, v: None if v is None else _int(k, v, -(2**63), 2**63 - 1),
    "callback_delay_ms": _number,
    "callback_jitter_ms": _number,
    "callback_failure_rate": lambda k, v: _number(k, v, 0.0, 1.0),
    "callback_output": _str,
    "callback_error": _str,
    "callback_url": _url,
    "callback_secret": _opt_str,
    "transcript": _str,
    "max_calls": lambda k, v: _int(k, v, 1, 10_000_000),
    "record_text_limit": lambda k, v: _int(k, v, 0, 2**31 - 1),
}


@dataclass
class StandinConfig:
    """Mutable runtime config. ``apply`` takes the JSON patch shape; ``to_dict`` returns it."""

    routes: dict[str, RouteSettings]
    seed: int | None = 0
    callback_delay_ms: float = 3000.0
    callback_jitter_ms: float = 2000.0
    callback_failure_rate: float = 0.0
    callback_output: str = "Created README.md\n"
    callback_error: str = "cursor-agent exited with code 1"
    callback_url: str | None = None  # default callback target (service's /cursor-runner/callback)
    callback_secret: str | None = None
    transcript: str = "Add a README to the repo"
    max_calls: int = 100_000  # call log bound; counters are never truncated
    record_text_limit: int = 8192  # clip long strings in the call log (memory under load)

    @classmethod
    def default(cls) -> StandinConfig:
        return cls(routes=dict(DEFAULT_ROUTES))

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in _GLOBAL_VALIDATORS}
        d["routes"] = {name: asdict(s) for name, s in self.routes.items()}
        return d

    def apply(self, patch: Any) -> set[str]:
        """Validate then apply a partial update; returns the top-level keys changed."""
        if not isinstance(patch, dict):
            raise ConfigError("config body must be a JSON object")
        staged: dict[str, Any] = {}
        for key, value in patch.items():
            if key == "routes":
                staged["routes"] = self._staged_routes(value)
            elif key in _GLOBAL_VALIDATORS:
                staged[key] = _GLOBAL_VALIDATORS[key](key, value)
            else:
                known = ", ".join(["routes", *_GLOBAL_VALIDATORS])
                raise ConfigError(f"unknown config key {key!r} (known: {known})")
        for key, value in staged.items():
            setattr(self, key, value)
        return set(staged)

    def _staged_routes(self, value: Any) -> dict[str, RouteSettings]:
        if not isinstance(value, dict):
            raise ConfigError("routes: expected an object of route name -> settings")

        # Wildcards first, broadest first, so an exact name in the same patch wins.
        def breadth(item: tuple[str, Any]) -> int:
            return -len(_match_routes(item[0])) if "*" in item[0] or "?" in item[0] else 1

        new = copy.copy(self.routes)
        for pattern, settings in sorted(value.items(), key=breadth):
            names = _match_routes(pattern)
            if not names:
                known = ", ".join(r.CONFIGURABLE_ROUTES)
                raise ConfigError(f"routes: unknown route {pattern!r} (known: {known})")
            if not isinstance(settings, dict):
                raise ConfigError(f"routes.{pattern}: expected an object of settings")
            changes = {k: _setting(f"routes.{pattern}.{k}", k, v) for k, v in settings.items()}
            for name in names:
                new[name] = replace(new[name], **changes)
        return new


def _match_routes(pattern: str) -> list[str]:
    if pattern in r.CONFIGURABLE_ROUTES:
        return [pattern]
    if "*" in pattern or "?" in pattern:
        return [n for n in r.CONFIGURABLE_ROUTES if fnmatch.fnmatchcase(n, pattern)]
    return []


def fast_patch() -> dict[str, Any]:
    """A patch that removes all simulated latency; handy for functional checks."""
    return {
        "routes": {"*": {"latency_ms": 0, "jitter_ms": 0}},
        "callback_delay_ms": 0,
        "callback_jitter_ms": 0,
    }
