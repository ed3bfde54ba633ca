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
    # The default scenarios whose path runs the changed code: the request itself and the work
    # it causes (the job, and the callback cursor-runner sends back), as the measures count it;
    # most affected first: the audit measures the first three by default (perfaudit.audit).
    touches: tuple[str, ...] = ()
    # Where the change lives: "path/to/file.py:function" or "path/to/file.py:Class.method".
    code: tuple[str, ...] = ()
    # The diagnosis rules (perfaudit.analysis.findings) whose finding this switch fixes: a
    # finding on a reference target names the switches of its rule that are off there.
    rules: tuple[str, ...] = ()


CATALOG: tuple[Switch, ...] = (
    Switch(
        "redis-pool",
        "PHASE3-029/032, spec §7.6: a Redis client per service instance",
        "every request builds its own pending-state store with a new Redis connection, "
        "and the webhook opens a new queue connection per request",
        "one Redis connection pool per process, shared by the state store and the job queue",
        touches=(
            "webhook-text",
            "callback-success",
            "redis-store",
            "callback-unknown",
            "webhook-voice",
            "webhook-command",
            "telegram-job",
            "e2e-flow",
        ),
        code=(
            "perfaudit/refservice/store.py:RedisProvider.client",
            "perfaudit/refservice/jobqueue.py:JobQueue.start",
            "perfaudit/refservice/jobqueue.py:JobQueue.enqueue",
            "perfaudit/refservice/app.py:create_app.lifespan",
            "perfaudit/refservice/worker.py:startup",
        ),
        rules=("connection-churn:redis",),
    ),
    Switch(
        "atomic-getdel",
        "spec §7.6: callback does GET then DEL (2 round-trips, duplicate callbacks race)",
        "GET the pending request, process it, then DEL it",
        "GETDEL claims the pending request in one atomic round-trip",
        touches=(
            "callback-success",
            "callback-unknown",
            "e2e-flow",
            "webhook-text",
            "webhook-voice",
            "telegram-job",
        ),
        code=(
            "perfaudit/refservice/store.py:PendingStore.claim",
            "perfaudit/refservice/store.py:PendingStore.release",
        ),
        rules=("redis-round-trips:get-del",),
    ),
    Switch(
        "http-keepalive",
        "PHASE3-032, spec §7.7: an HTTP client per outbound call, no connection reuse",
        "a new HTTP client (and TCP connection) for every Telegram, cursor-runner and "
        "ElevenLabs call",
        "one keep-alive HTTP client per upstream per process",
        # Not agent-tools: its scenario calls the status tool, which makes no outbound call.
        touches=(
            "webhook-text",
            "admin-webhook-info",
            "callback-success",
            "webhook-voice",
            "webhook-command",
            "telegram-job",
            "e2e-flow",
        ),
        code=("perfaudit/refservice/clients/http.py:HttpClients.session",),
        # Its per-call client builds an SSL context each time: that is what holds the
        # loop, takes the CPU and, with clients left open, the worker's memory in phase3.
        rules=("connection-churn:http", "loop-blocked", "dominant-function", "memory-growth"),
    ),
    Switch(
        "callback-background",
        "PHASE3-033/035, spec §3 timing: the callback awaits Telegram and TTS before it answers",
        "the callback formats and sends the reply (and synthesises speech) before answering 200",
        "the callback claims the state, enqueues the reply as a background job and answers at once",
        touches=("callback-success", "e2e-flow", "webhook-text", "webhook-voice", "telegram-job"),
        code=(
            "perfaudit/refservice/callback.py:handle_callback",
            "perfaudit/refservice/worker.py:deliver_callback",
        ),
        rules=("upstream-dominates",),
    ),
    Switch(
        "settings-cache",
        "PHASE3-030/031, spec §7.9: SystemSetting opens SQLite on every lookup",
        "each lookup opens the SQLite file, sets WAL, queries and closes, on the event loop",
        "settings are read once and cached for a few seconds per process",
        touches=("webhook-text", "callback-success", "telegram-job", "webhook-voice", "e2e-flow"),
        code=("perfaudit/refservice/system_settings.py:SystemSettings.enabled",),
        rules=("blocking-io", "loop-blocked"),
    ),
    Switch(
        "stream-audio",
        "PHASE3-032, spec §7.8: whole audio files held in memory, written then read back",
        "downloads buffer the whole file, copy it, write it, then read it back for the upload",
        "downloads and speech output stream to disk in chunks and uploads stream from the file",
        touches=("webhook-voice",),
        code=(
            "perfaudit/refservice/clients/telegram.py:TelegramClient.download_file",
            "perfaudit/refservice/clients/telegram.py:TelegramClient.send_voice",
            "perfaudit/refservice/clients/elevenlabs.py:SpeechToText.transcribe",
            "perfaudit/refservice/clients/elevenlabs.py:TextToSpeech.synthesize",
        ),
        rules=("blocking-io",),
    ),
    Switch(
        "text-fastpath",
        "spec §7.13: regexes built per call, escaping in three passes, audio id extracted twice",
        "patterns are compiled inside each call and HTML is escaped with three regex passes",
        "patterns are compiled once and HTML is escaped in a single pass",
        touches=(
            "callback-success",
            "webhook-command",
            "webhook-text",
            "webhook-voice",
            "telegram-job",
            "e2e-flow",
        ),
        code=(
            "perfaudit/refservice/formatting.py:clean",
            "perfaudit/refservice/formatting.py:escape_html",
            "perfaudit/refservice/formatting.py:local_command_reply",
            "perfaudit/refservice/formatting.py:is_forwardable",
        ),
        rules=("dominant-function",),
    ),
    Switch(
        "lean-logging",
        "spec §7.10: the full update is JSON-serialised into the log twice per message",
        "the whole update is serialised and logged by the webhook and again by the job",
        "the log gets the update id and kind only",
        touches=("webhook-text", "webhook-command", "telegram-job", "webhook-voice", "e2e-flow"),
        code=(
            "perfaudit/refservice/app.py:create_app.telegram_webhook",
            "perfaudit/refservice/handler.py:handle_update",
        ),
        rules=("logging-overhead",),
    ),
    Switch(
        "redis-pipeline",
        "PHASE3-029/030: sequential Redis round trips per message (dedupe check + mark, "
        "SET then EXPIRE, store) that one pipeline would batch",
        "forwarding a message makes five sequential round trips: HGETALL the update's marker, "
        "HSET it pending, EXPIRE it, SETEX the pending request, then HSET it sent; a failed "
        "forward DELs the pending request and HSETs the marker in two more",
        "the mark, its TTL and the pending request go in one pipeline (five round trips become "
        "three); a failed forward's DEL and HSET go in one",
        touches=("webhook-text", "telegram-job", "e2e-flow", "webhook-voice"),
        code=("perfaudit/refservice/handler.py:_forward",),
        rules=("redis-round-trips",),
    ),
    Switch(
        "concurrent-awaits",
        'PHASE3-030: sequential awaits of independent calls ("sequential Telegram sends and '
        'downloads", Promise.all)',
        "a voice message's 🎤 notice is sent before getFile and the download start; a button "
        "press is answered (answerCallbackQuery) before the forwarding starts",
        "the notice runs concurrently with getFile, download and speech-to-text, and the "
        "answer concurrently with the forwarding (asyncio.gather); every later message still "
        "waits for both, so the order the user sees is unchanged",
        touches=("webhook-voice",),
        code=(
            "perfaudit/refservice/handler.py:_transcribe",
            "perfaudit/refservice/handler.py:handle_callback_query",
        ),
        rules=("sequential-awaits",),
    ),
    Switch(
        "response-cache",
        "PHASE3-031: no caching of the bot client or of getWebhookInfo",
        "every use of the Telegram client builds a new bot client, and every "
        "GET /telegram/webhook_info calls getWebhookInfo",
        "one bot client per process (per token) holds getWebhookInfo for 5 s; setWebhook and "
        "deleteWebhook invalidate it",
        touches=(
            "admin-webhook-info",
            "webhook-text",
            "callback-success",
            "webhook-voice",
            "webhook-command",
            "telegram-job",
            "e2e-flow",
        ),
        code=(
            "perfaudit/refservice/services.py:Services.telegram",
            "perfaudit/refservice/clients/telegram.py:WebhookInfoCache",
            "perfaudit/refservice/clients/telegram.py:TelegramClient.get_webhook_info",
            "perfaudit/refservice/clients/telegram.py:TelegramClient.set_webhook",
            "perfaudit/refservice/clients/telegram.py:TelegramClient.delete_webhook",
        ),
        rules=("upstream-dominates",),
    ),
    Switch(
        "leak-fix",
        "PHASE3-032: per-request objects that are never freed (listener/closure leaks)",
        "the request logger and the job make a child logger per request id / update id "
        '(pino\'s logger.child ported as logging.getLogger(f"...{id}")); logging keeps every '
        "Logger forever, so each request leaks one",
        "module loggers, with the id in the message: nothing is kept per request",
        touches=(
            "health",
            "webhook-text",
            "callback-unknown",
            "webhook-voice",
            "webhook-command",
            "admin-webhook-info",
            "agent-tools",
            "callback-success",
            "telegram-job",
            "e2e-flow",
        ),
        code=(
            "perfaudit/refservice/request_log.py:RequestLogMiddleware.__call__",
            "perfaudit/refservice/handler.py:handle_update",
        ),
        rules=("kept-objects", "memory-growth"),
    ),
    Switch(
        "backpressure",
        "spec §7.12: no backpressure, webhooks start unbounded concurrent jobs and outbound "
        "calls have no per-upstream limit",
        "the worker runs every queued job at once (the TS port's un-awaited promises), and "
        "outbound calls to an upstream are not limited",
        "at most 10 jobs at a time (Sidekiq's production concurrency) and a cap on in-flight "
        "calls per upstream (maxSockets: Telegram 30, cursor-runner 10, ElevenLabs 10)",
        touches=(
            "webhook-voice",
            "webhook-text",
            "e2e-flow",
            "webhook-command",
            "callback-success",
            "admin-webhook-info",
            "telegram-job",
        ),
        code=(
            "perfaudit/refservice/worker.py:max_jobs",
            "perfaudit/refservice/clients/http.py:HttpClients.session",
        ),
        rules=("unbounded-queue",),
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
