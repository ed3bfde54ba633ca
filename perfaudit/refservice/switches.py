"""The catalog of optimization switches and the variants built from them.

Each switch names one Phase 3 finding and the change that answers it. ``phase3`` turns none
on, ``optimized`` turns all on; any subset can be chosen (``--variant phase3 --with redis-pool``).
The service reads its switches from the ``PERFAUDIT_SWITCHES`` environment variable.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

ENV_VAR = "PERFAUDIT_SWITCHES"


@dataclass(frozen=True)
class Switch:
    name: str
    finding: str  # the Phase 3 finding it answers (spec section or task id)
    phase3: str  # what the phase3 code does
    optimized: str  # what the switch changes
    touches: tuple[str, ...] = ()  # the default scenarios whose path runs the changed code


CATALOG: tuple[Switch, ...] = (
    Switch(
        "redis-pool",
        "PHASE3-029/032, spec §7.6: a Redis client per service instance",
        "every request builds its own pending-state store with a new Redis connection, "
        "and the webhook opens a new queue connection per request",
        "one Redis connection pool per process, shared by the state store and the job queue",
        touches=(
            "webhook-text",
            "webhook-voice",
            "webhook-command",
            "callback-success",
            "callback-unknown",
            "telegram-job",
            "redis-store",
            "e2e-flow",
        ),
    ),
    Switch(
        "atomic-getdel",
        "spec §7.6: callback does GET then DEL (2 round-trips, duplicate callbacks race)",
        "GET the pending request, process it, then DEL it",
        "GETDEL claims the pending request in one atomic round-trip",
        touches=("callback-success", "callback-unknown", "e2e-flow"),
    ),
    Switch(
        "http-keepalive",
        "PHASE3-032, spec §7.7: an HTTP client per outbound call, no connection reuse",
        "a new HTTP client (and TCP connection) for every Telegram, cursor-runner and "
        "ElevenLabs call",
        "one keep-alive HTTP client per upstream per process",
        touches=(
            "webhook-text",
            "webhook-voice",
            "webhook-command",
            "callback-success",
            "admin-webhook-info",
            "agent-tools",
            "telegram-job",
            "e2e-flow",
        ),
    ),
    Switch(
        "callback-background",
        "PHASE3-033/035, spec §3 timing: the callback awaits Telegram and TTS before it answers",
        "the callback formats and sends the reply (and synthesises speech) before answering 200",
        "the callback claims the state, enqueues the reply as a background job and answers at once",
        touches=("callback-success", "e2e-flow"),
    ),
    Switch(
        "settings-cache",
        "PHASE3-030/031, spec §7.9: SystemSetting opens SQLite on every lookup",
        "each lookup opens the SQLite file, sets WAL, queries and closes, on the event loop",
        "settings are read once and cached for a few seconds per process",
        touches=("webhook-text", "webhook-voice", "callback-success", "telegram-job", "e2e-flow"),
    ),
    Switch(
        "stream-audio",
        "PHASE3-032, spec §7.8: whole audio files held in memory, written then read back",
        "downloads buffer the whole file, copy it, write it, then read it back for the upload",
        "downloads and speech output stream to disk in chunks and uploads stream from the file",
        touches=("webhook-voice",),
    ),
    Switch(
        "text-fastpath",
        "spec §7.13: regexes built per call, escaping in three passes, audio id extracted twice",
        "patterns are compiled inside each call and HTML is escaped with three regex passes",
        "patterns are compiled once and HTML is escaped in a single pass",
        touches=("webhook-text", "webhook-command", "callback-success", "telegram-job", "e2e-flow"),
    ),
    Switch(
        "lean-logging",
        "spec §7.10: the full update is JSON-serialised into the log twice per message",
        "the whole update is serialised and logged by the webhook and again by the job",
        "the log gets the update id and kind only",
        touches=("webhook-text", "webhook-voice", "webhook-command", "telegram-job", "e2e-flow"),
    ),
)

NAMES: tuple[str, ...] = tuple(s.name for s in CATALOG)
BY_NAME: dict[str, Switch] = {s.name: s for s in CATALOG}
VARIANTS: dict[str, frozenset[str]] = {
    "phase3": frozenset(),
    "optimized": frozenset(NAMES),
}


class UnknownSwitchError(ValueError):
    pass


def resolve(variant: str, with_: Iterable[str] = (), without: Iterable[str] = ()) -> frozenset[str]:
    """The switches on for ``variant`` plus ``with_`` minus ``without``."""
    if variant not in VARIANTS:
        raise UnknownSwitchError(
            f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}"
        )
    on = set(VARIANTS[variant])
    for name in (*with_, *without):
        if name not in BY_NAME:
            raise UnknownSwitchError(
                f"unknown optimization switch {name!r}; known: {', '.join(NAMES)}"
            )
    on.update(with_)
    on.difference_update(without)
    return frozenset(on)


def encode(switches: Iterable[str]) -> str:
    return ",".join(sorted(switches))


def decode(value: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    unknown = names - set(NAMES)
    if unknown:
        raise UnknownSwitchError(f"unknown optimization switch(es): {', '.join(sorted(unknown))}")
    return names


def from_env(environ: dict[str, str] | None = None) -> frozenset[str]:
    env = os.environ if environ is None else environ
    return decode(env.get(ENV_VAR, ""))
