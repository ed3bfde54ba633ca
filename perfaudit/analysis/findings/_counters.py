"""Reading window counters out of a results entry, for the counter rules (redis-round-trips,
connection-churn, memory-growth, upstream-dominates, unbounded-queue).

Counters are per window (INFO deltas, stand-in and connect() counts, 4 Hz process samples);
rules divide them by the window's requests. Nothing here measures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

from perfaudit.analysis.findings._base import Location

Entry = Mapping[str, Any]

# Redis commands that are a queue library's or the client's machinery rather than the
# service's data access, each one round trip of its own: handshakes (redis-py sends
# CLIENT SETINFO twice per new connection), transactions (MULTI..EXEC goes in one write, so
# EXEC stands for the block), optimistic locks, and job-queue polls (arq, rq and Celery poll a
# sorted set or block on a list; perfaudit's job driver counts the queue with ZCARD/KEYS).
_HANDSHAKE = frozenset({"client", "hello", "auth", "select", "ping", "info", "quit", "readonly"})
_TRANSACTION = frozenset({"exec", "discard", "watch", "unwatch"})
_POLL = frozenset({
    "zrangebyscore", "zcard", "keys", "brpop", "blpop", "brpoplpush", "blmove", "bzpopmin",
    "bzpopmax", "xread", "xreadgroup",
})  # fmt: skip
PLUMBING = _HANDSHAKE | _TRANSACTION | _POLL | {"multi"}
# Reads made between WATCH and MULTI (arq's job claim checks EXISTS and ZSCORE under WATCH):
# they must be answered one at a time by design, so up to one per WATCH is plumbing too.
UNDER_WATCH = ("exists", "zscore")


def requests(entry: Entry) -> int:
    derived = entry.get("derived") or {}
    summary = entry.get("summary") or {}
    return int(derived.get("requests") or summary.get("requests") or 0)


def usable(part: Any) -> bool:
    return isinstance(part, Mapping) and "error" not in part


@dataclass(frozen=True)
class RedisView:
    """Per-request Redis figures with the plumbing separated from the service's data access."""

    requests: int
    commands: float  # all commands per request
    data: Mapping[str, float]  # per request, plumbing taken out
    round_trips: float | None  # all reads Redis did, per request (None: not recorded)
    plumbing_round_trips: float
    new_connections: float
    transactions: float  # EXEC blocks per request

    @property
    def data_commands(self) -> float:
        return sum(self.data.values())

    @property
    def data_round_trips(self) -> float | None:
        """Round trips of the service's own data access: all reads minus the plumbing's."""
        if self.round_trips is None:
            return None
        return max(0.0, self.round_trips - self.plumbing_round_trips)

    @property
    def unbatched(self) -> float | None:
        """Data round trips per data command: 1 = every command waited for its own answer,
        well below 1 = pipelines, MGET or transactions carry several per round trip."""
        rt = self.data_round_trips
        if rt is None or not self.data_commands:
            return None
        return rt / self.data_commands


def redis_view(entry: Entry) -> RedisView | None:
    server = (entry.get("server") or {}).get("redis")
    n = requests(entry)
    if not usable(server) or not n:
        return None
    calls: Mapping[str, int] = server.get("commands") or {}
    per = {name.lower(): c / n for name, c in calls.items()}
    watch = per.get("watch", 0.0)
    data = {k: v for k, v in per.items() if k not in PLUMBING}
    plumbing = sum(v for k, v in per.items() if k in PLUMBING and k != "multi")
    for name in UNDER_WATCH:
        guarded = min(data.get(name, 0.0), watch)
        plumbing += guarded
        if name in data:
            data[name] -= guarded
    data = {k: v for k, v in data.items() if v > 1e-9}
    rt = server.get("round_trips")
    return RedisView(
        requests=n,
        commands=float(server.get("total_commands") or sum(calls.values())) / n,
        data=data,
        round_trips=None if rt is None else float(rt) / n,
        plumbing_round_trips=plumbing,
        new_connections=float(server.get("connections_received") or 0) / n,
        transactions=per.get("exec", 0.0),
    )


def endpoint(entry: Entry) -> str:
    """``POST /telegram/webhook``, or the job / scenario name for kinds without a request."""
    req = (entry.get("scenario") or {}).get("request") or {}
    if req.get("path"):
        return f"{str(req.get('method') or 'GET').upper()} {req['path']}"
    return f"{entry.get('kind', 'scenario')} {entry.get('name', '')}".strip()


def endpoint_location(entry: Entry, process: str = "service") -> Location:
    return Location(function=endpoint(entry), file=str(entry.get("file") or ""), process=process)


def confirm(entry: Entry, metric: str) -> str:
    name = entry.get("name") or "the scenario"
    file = str(entry.get("file") or f"scenarios/{name}.yaml")
    file = "scenarios/" + file.split("/scenarios/", 1)[1] if "/scenarios/" in file else file
    return f"rerun {name} (perfaudit run {file}) and check {metric}"


def window_s(entry: Entry) -> float:
    load = entry.get("load") or {}
    return float(load.get("duration_s") or 0.0)


def rate(entry: Entry) -> float:
    """Requests per second the window achieved (the offered rate when it did not say)."""
    summary = entry.get("summary") or {}
    return float(summary.get("rps") or summary.get("target_rps") or 0.0)


# Processes perfaudit starts for the reference stack that are not the service under test.
INFRASTRUCTURE = frozenset({"redis", "stand-ins"})


def processes(entry: Entry) -> Mapping[str, Mapping[str, Any]]:
    procs = ((entry.get("server") or {}).get("process") or {}).get("processes") or {}
    return {k: v for k, v in procs.items() if k not in INFRASTRUCTURE and isinstance(v, Mapping)}


@dataclass(frozen=True)
class Trend:
    slope: float  # units per second
    low: float  # 95 % confidence bounds of the slope
    high: float
    p: float
    n: int
    rise: float  # fitted change over the series: slope x span

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def trend(t: Sequence[float], y: Sequence[float]) -> Trend | None:
    """Least-squares slope with its 95 % interval (t distribution, n-2 degrees of freedom)."""
    if len(t) < 4 or len(set(t)) < 2:
        return None
    if len(set(y)) < 2:  # flat: linregress would divide 0 by 0 for the p-value
        return Trend(0.0, 0.0, 0.0, 1.0, len(t), 0.0)
    fit = stats.linregress(t, y)
    half = float(stats.t.ppf(0.975, len(t) - 2)) * float(fit.stderr)
    slope = float(fit.slope)
    return Trend(slope, slope - half, slope + half, float(fit.pvalue), len(t),
                 slope * (max(t) - min(t)))  # fmt: skip
