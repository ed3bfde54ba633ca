"""Redis N+1 and round trips per request, from the window's INFO/commandstats deltas.

Three patterns, each on the service's data commands (queue and client plumbing taken out,
see ``_counters.PLUMBING``):
- one command type repeated per request that a multi-key command or a pipeline would batch
  (20 GETs per request -> one MGET);
- many data round trips per request, most of them one command each (nothing pipelined);
- known pairs one command does (GET then DEL -> GETDEL, SET then EXPIRE -> SET EX, ...),
  reported only when the round trips show they were not already sent together.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perfaudit.analysis.findings import _counters as c
from perfaudit.analysis.findings import _stacks
from perfaudit.analysis.findings._base import Finding, Impact, Location, NotChecked, Outcome, Rule

ID = "redis-round-trips"
# Sentry's N+1 detector wants 5 repeats of one span; a repeat per request at that count is
# what MGET/a pipeline turns into one round trip.
REPEAT_MIN = 5.0
# Data round trips per request at which sequential access is worth a pipeline: phase3's
# forward makes 6.2-9.4 here, optimized 1.0-4.2 (fixtures); 4 is where a loop-back RTT
# (~0.05-0.1 ms) times the requests starts to show beside the service's own work.
SEQUENTIAL_MIN = 4.0
# Data round trips per data command above which commands go one at a time: phase3 0.41-1.4,
# optimized 0.09-0.20 (arq's transactions and the switch's pipeline batch the rest).
UNBATCHED_MIN = 0.3
PAIR_MIN = 0.5  # each command of a pair at least every other request
# Counts of a pair's two commands within this share of each other: a pair issued together
# comes in equal numbers; unequal counts are two unrelated uses (arq's SET PX and its
# retry-counter EXPIRE are 1 and 2 per job).
PAIR_MATCH = 0.25

BATCH_FIX: dict[str, str] = {
    "get": "MGET the keys in one call",
    "set": "MSET the keys (or a pipeline when each needs its own TTL)",
    "hget": "HMGET the fields (one key) or a pipeline (several keys)",
    "hgetall": "send the HGETALLs in one pipeline",
    "hset": "set all fields in one HSET (it takes several) or pipeline the keys",
    "exists": "one EXISTS with all keys (it counts them)",
    "del": "one DEL with all keys",
    "unlink": "one UNLINK with all keys",
    "sismember": "SMISMEMBER",
    "zscore": "ZMSCORE",
    "incr": "a pipeline (or one Lua script)",
    "incrby": "a pipeline (or one Lua script)",
    "lpush": "one LPUSH with all values",
    "rpush": "one RPUSH with all values",
    "sadd": "one SADD with all members",
    "expire": "a pipeline, or set the TTL with the write (SET EX)",
}
# (first, second) -> the one command (or batch) that does both.
PAIRS: dict[tuple[str, str], str] = {
    ("get", "del"): "GETDEL (Redis 6.2): claims the value atomically in one round trip",
    ("set", "expire"): "SET key value EX seconds: one command",
    ("hset", "expire"): "send HSET and EXPIRE in one pipeline (MULTI/EXEC if they must be atomic)",
}

NO_REDIS = (
    "no Redis metrics in this run: reference targets record them; for your own service set "
    "target.redis_url (or --redis-url) so perfaudit can read INFO and commandstats"
)


def check(entry: Mapping[str, Any]) -> Outcome:
    view = c.redis_view(entry)
    if view is None:
        return NotChecked(ID, NO_REDIS)
    where = _where(entry)
    base_evidence = _evidence(view)
    found: list[Finding] = []
    rt = view.data_round_trips
    unbatched = view.unbatched

    covered = 0.0
    for name, per in sorted(view.data.items(), key=lambda kv: -kv[1]):
        if per < REPEAT_MIN or name not in BATCH_FIX:
            continue
        # Already batched: the data round trips are far fewer than these commands alone.
        if rt is not None and rt < 0.8 * per:
            continue
        covered += per
        found.append(_finding(
            entry, where, per - 1.0,
            f"{c.endpoint(entry)} sends {per:.3g} {name.upper()} commands per request",
            {**base_evidence, "command": name, "per_request": round(per, 3)},
            f"batch them: {BATCH_FIX[name]}",
            f"{name.upper()} per request (derived.redis.by_command) and round trips per request",
            "repeated",
        ))  # fmt: skip

    if (
        rt is not None and unbatched is not None and rt >= SEQUENTIAL_MIN
        and unbatched >= UNBATCHED_MIN and covered < rt / 2
    ):  # fmt: skip
        top = sorted(view.data.items(), key=lambda kv: -kv[1])[:6]
        found.append(_finding(
            entry, where, rt,
            f"{c.endpoint(entry)} makes {rt:.3g} sequential Redis round trips per request",
            {**base_evidence, "top_commands": {k: round(v, 3) for k, v in top}},
            "send the commands that do not depend on each other's answers in one pipeline "
            "(redis.asyncio: async with r.pipeline(transaction=False) as p), or MULTI/EXEC "
            "where they must apply together",
            "data round trips per request (server.redis.round_trips minus the queue's)",
            "sequential",
        ))  # fmt: skip

    # A pair is reported when nothing shows it was sent together: the round trips say most
    # data commands went one at a time or, without them, no transaction ran at all.
    pairs_unbatched = (
        unbatched >= UNBATCHED_MIN if unbatched is not None else view.transactions == 0
    )
    # A redis-store scenario's operations (store, get, remove, one id) are the workload it
    # was asked to run, not a pattern of the service's.
    if pairs_unbatched and entry.get("kind") != "redis-store":
        for (a, b), fix in PAIRS.items():
            na, nb = view.data.get(a, 0.0), view.data.get(b, 0.0)
            k = min(na, nb)
            if k < PAIR_MIN or abs(na - nb) > PAIR_MATCH * max(na, nb):
                continue
            found.append(_finding(
                entry, where, k,
                f"{c.endpoint(entry)} sends {a.upper()} then {b.upper()} "
                f"({k:.3g} pairs per request)",
                {**base_evidence, "pair": [a, b], "pairs_per_request": round(k, 3)},
                f"use {fix}",
                f"{a.upper()} and {b.upper()} per request (derived.redis.by_command)",
                f"{a}-{b}",
            ))  # fmt: skip
    return found


def _finding(
    entry: Mapping[str, Any], where: tuple[Location, ...], impact: float, title: str,
    evidence: dict[str, Any], fix: str, metric: str, topic: str,
) -> Finding:  # fmt: skip
    return Finding.make(
        rule=ID, title=title, impact=Impact(round(max(impact, 0.0), 3), "round trips/request"),
        evidence=evidence, where=where, fix=fix, confirm=c.confirm(entry, metric), topic=topic,
    )  # fmt: skip


def _evidence(view: c.RedisView) -> dict[str, Any]:
    rt = view.data_round_trips
    return {
        "window": "steady window, server.redis (INFO commandstats delta) / requests",
        "requests": view.requests,
        "commands_per_request": round(view.commands, 3),
        "data_commands_per_request": round(view.data_commands, 3),
        "round_trips_per_request": None if view.round_trips is None else round(view.round_trips, 3),
        "data_round_trips_per_request": None if rt is None else round(rt, 3),
        "unbatched": None if view.unbatched is None else round(view.unbatched, 3),
    }


def _where(entry: Mapping[str, Any]) -> tuple[Location, ...]:
    """The own-code frames whose loop samples ran inside redis-py, else the endpoint."""
    in_redis = _stacks.callers(entry, lambda leaf: "/redis/" in str(leaf.get("file", "")))
    return in_redis or (c.endpoint_location(entry),)


RULE = Rule(
    id=ID,
    title="Redis N+1 and round trips per request: repeats MGET or a pipeline would batch, "
    "sequential round trips, pairs one command does",
    check=check,
)
