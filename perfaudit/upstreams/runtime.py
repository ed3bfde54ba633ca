"""State shared by the stand-in apps, and the per-route serve wrapper."""

from __future__ import annotations

import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from perfaudit.upstreams import behaviour
from perfaudit.upstreams.callbacks import CallbackDispatcher
from perfaudit.upstreams.config import StandinConfig
from perfaudit.upstreams.recorder import Recorder


@dataclass
class Credentials:
    telegram_token: str | None = None  # None: any token accepted
    elevenlabs_key: str | None = None  # None: any/no key accepted


@dataclass
class Runtime:
    config: StandinConfig
    credentials: Credentials = field(default_factory=Credentials)
    recorder: Recorder = field(init=False)
    rng: random.Random = field(init=False)
    callbacks: CallbackDispatcher = field(init=False)
    ready: Callable[[], bool] = lambda: True  # replaced by the server: all ports bound

    def __post_init__(self) -> None:
        self.recorder = Recorder(self.config.max_calls, self.config.record_text_limit)
        self.rng = random.Random(self.config.seed)
        self.callbacks = CallbackDispatcher(self)

    def apply_config(self, patch: Any) -> None:
        """Apply a patch (raises ConfigError) and propagate the keys that need it."""
        changed = self.config.apply(patch)
        if "seed" in changed:
            self.rng.seed(self.config.seed)
        if "max_calls" in changed:
            self.recorder.set_max_calls(self.config.max_calls)
        if "record_text_limit" in changed:
            self.recorder.text_limit = self.config.record_text_limit

    async def serve(
        self,
        route: str,
        request: Request,
        path: str,
        body: Any,
        handler: Callable[[], Awaitable[Response]],
        error: Callable[[int], Response],
    ) -> Response:
        """Apply the route's latency/timeout/error model around ``handler`` and record the call."""
        ts = time.time()
        t0 = time.perf_counter()
        settings = self.config.routes[route]
        decision = behaviour.decide(settings, self.rng)
        await behaviour.wait(decision)
        response = error(settings.error_status) if decision.error else await handler()
        self.recorder.record(
            route,
            request.method,
            path,
            response.status_code,
            body,
            (time.perf_counter() - t0) * 1000.0,
            ts,
            extra={"timed_out": True} if decision.timed_out else None,
        )
        return response

    def record_now(self, route: str, request: Request, path: str, status: int, body: Any) -> None:
        """Record a call that bypasses the behaviour model (e.g. unknown Telegram method)."""
        self.recorder.record(route, request.method, path, status, body, 0.0, time.time())
