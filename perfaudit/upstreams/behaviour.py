"""Latency / error / timeout model applied to every stand-in route."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass

from perfaudit.upstreams.config import RouteSettings


@dataclass(frozen=True, slots=True)
class Decision:
    delay_s: float
    timed_out: bool
    error: bool


def decide(settings: RouteSettings, rng: random.Random) -> Decision:
    # Always draw the same three numbers so the RNG stream (and hence a seeded run)
    # does not depend on which rates happen to be zero.
    u_timeout, u_error, u_jitter = rng.random(), rng.random(), rng.random()
    timed_out = u_timeout < settings.timeout_rate
    delay_ms = (
        settings.timeout_ms if timed_out else settings.latency_ms + u_jitter * settings.jitter_ms
    )
    return Decision(delay_ms / 1000.0, timed_out, u_error < settings.error_rate)


async def sleep_at_least(seconds: float) -> None:
    """Non-blocking sleep that never returns early.

    uvloop timers have 1 ms granularity and can fire slightly early; loop until the
    full delay has passed so configured latencies are true lower bounds.
    """
    deadline = time.perf_counter() + seconds
    while (remaining := deadline - time.perf_counter()) > 0:
        await asyncio.sleep(remaining)


async def wait(decision: Decision) -> None:
    await sleep_at_least(decision.delay_s)
