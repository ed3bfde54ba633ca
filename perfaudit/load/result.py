"""Load-run results: a plain dataclass, JSON-able via to_dict()/from_dict(), mergeable
across generator processes (histograms merge exactly through their encoded form)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from perfaudit.load.client import ERROR_KINDS
from perfaudit.load.histogram import LatencyHistogram

# Per-second histograms keep 2 significant digits (1 % resolution): ~26 KB each instead
# of ~190 KB, so an hour-long run's timeline stays small. The main histograms keep 3.
TIMELINE_DIGITS = 2


class Progress(NamedTuple):
    """One closed second of one generator process, for a live display."""

    process: int
    t: int  # seconds since the start, warm-up included
    sent: int
    completed: int
    errors: int
    p99_us: int


@dataclass
class SecondStats:
    """One second of the run, by completion time (t = whole seconds since the start,
    warm-up included: seconds with t < warmup_s are warm-up)."""

    t: int
    sent: int = 0
    completed: int = 0  # requests finished in this second (responses and errors)
    errors: int = 0  # of which failed (status >= 400 or no response)
    hist: LatencyHistogram = field(default_factory=lambda: LatencyHistogram(digits=TIMELINE_DIGITS))

    def to_dict(self) -> dict[str, Any]:
        p = self.hist.percentiles_us([50.0, 99.0])
        return {
            "t": self.t,
            "sent": self.sent,
            "completed": self.completed,
            "errors": self.errors,
            "p50_ms": p[50.0] / 1000.0,
            "p99_ms": p[99.0] / 1000.0,
            "hist": self.hist.encode(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SecondStats:
        return cls(
            d["t"], d["sent"], d["completed"], d["errors"], LatencyHistogram.decode(d["hist"])
        )

    def add(self, other: SecondStats) -> None:
        self.sent += other.sent
        self.completed += other.completed
        self.errors += other.errors
        self.hist.add(other.hist)


@dataclass
class ProcessStats:
    """Generator-side cost of one process over the measured window.

    cpu_pct is CPU time / wall time in % of one core (100 = the process saturated its
    core; results are then limited by the generator, not the server)."""

    index: int
    cpu_s: float
    user_s: float
    sys_s: float
    wall_s: float
    loop: str
    connections: int  # sockets opened (connect attempts)
    connect_errors: int

    @property
    def cpu_pct(self) -> float:
        return 100.0 * self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "cpu_s": self.cpu_s,
            "user_s": self.user_s,
            "sys_s": self.sys_s,
            "wall_s": self.wall_s,
            "cpu_pct": self.cpu_pct,
            "loop": self.loop,
            "connections": self.connections,
            "connect_errors": self.connect_errors,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ProcessStats:
        return cls(**{k: v for k, v in d.items() if k != "cpu_pct"})


def _int_keys(d: dict[Any, int]) -> dict[int, int]:
    return {int(k): int(v) for k, v in d.items()}


@dataclass
class LoadResult:
    """Counters cover the measured window only (requests whose intended send time, or
    actual send time in the closed model, falls after warm-up)."""

    model: str  # "open" | "closed"
    duration_s: float
    warmup_s: float
    processes: int
    concurrency: int  # closed: users; open: max_connections
    target_rps: float | None  # open: scheduled arrivals / duration; closed: None
    achieved_rps: float  # requests actually sent inside the measured window / duration
    scheduled: int  # open: arrivals planned in the window (closed: = sent)
    sent: int
    completed: int  # got a response (any status)
    ok: int  # status < 400
    errors: dict[str, int]  # by kind: status, timeout, connect, closed, protocol
    error_status: dict[int, int]  # status code -> count, codes >= 400
    status_codes: dict[int, int]  # every status code seen
    late: int  # open: sent more than late_tolerance_s after the intended time
    dropped: int  # open: never sent (queue full, or still queued at the drain deadline)
    warmup_requests: int
    bytes_sent: int
    bytes_received: int
    send_lag_mean_ms: float  # open: mean (actual - intended) send time
    send_lag_max_ms: float
    latency: LatencyHistogram  # open: from intended send (CO-corrected); closed: from send
    service: LatencyHistogram  # from the actual send
    warmup_latency: LatencyHistogram
    timeline: list[SecondStats]
    cpu: list[ProcessStats]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def cpu_pct_max(self) -> float:
        """Busiest generator process, % of one core."""
        return max((p.cpu_pct for p in self.cpu), default=0.0)

    @property
    def cpu_us_per_request(self) -> float:
        total = sum(p.cpu_s for p in self.cpu)
        return 1e6 * total / self.sent if self.sent else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "duration_s": self.duration_s,
            "warmup_s": self.warmup_s,
            "processes": self.processes,
            "concurrency": self.concurrency,
            "target_rps": self.target_rps,
            "achieved_rps": self.achieved_rps,
            "scheduled": self.scheduled,
            "sent": self.sent,
            "completed": self.completed,
            "ok": self.ok,
            "errors": dict(self.errors),
            "error_status": {str(k): v for k, v in sorted(self.error_status.items())},
            "status_codes": {str(k): v for k, v in sorted(self.status_codes.items())},
            "late": self.late,
            "dropped": self.dropped,
            "warmup_requests": self.warmup_requests,
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
            "send_lag_mean_ms": self.send_lag_mean_ms,
            "send_lag_max_ms": self.send_lag_max_ms,
            "latency": self.latency.to_dict(),
            "service": self.service.to_dict(),
            "warmup_latency": self.warmup_latency.to_dict(),
            "timeline": [s.to_dict() for s in self.timeline],
            "cpu": {
                "cpu_pct_max": self.cpu_pct_max,
                "cpu_us_per_request": self.cpu_us_per_request,
                "processes": [p.to_dict() for p in self.cpu],
            },
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LoadResult:
        return cls(
            model=d["model"],
            duration_s=d["duration_s"],
            warmup_s=d["warmup_s"],
            processes=d["processes"],
            concurrency=d["concurrency"],
            target_rps=d["target_rps"],
            achieved_rps=d["achieved_rps"],
            scheduled=d["scheduled"],
            sent=d["sent"],
            completed=d["completed"],
            ok=d["ok"],
            errors={k: int(v) for k, v in d["errors"].items()},
            error_status=_int_keys(d["error_status"]),
            status_codes=_int_keys(d["status_codes"]),
            late=d["late"],
            dropped=d["dropped"],
            warmup_requests=d["warmup_requests"],
            bytes_sent=d["bytes_sent"],
            bytes_received=d["bytes_received"],
            send_lag_mean_ms=d["send_lag_mean_ms"],
            send_lag_max_ms=d["send_lag_max_ms"],
            latency=LatencyHistogram.from_dict(d["latency"]),
            service=LatencyHistogram.from_dict(d["service"]),
            warmup_latency=LatencyHistogram.from_dict(d["warmup_latency"]),
            timeline=[SecondStats.from_dict(s) for s in d["timeline"]],
            cpu=[ProcessStats.from_dict(p) for p in d["cpu"]["processes"]],
            extra=dict(d.get("extra", {})),
        )


def _add_counts(into: dict[Any, int], other: dict[Any, int]) -> None:
    for k, v in other.items():
        into[k] = into.get(k, 0) + v


def merge_results(results: list[LoadResult]) -> LoadResult:
    """Sum counters, add histograms exactly, align timelines by second.

    The processes ran the same window concurrently, so rates add up."""
    if not results:
        raise ValueError("nothing to merge")
    if len(results) == 1:
        return results[0]
    first = results[0]
    errors = dict.fromkeys(ERROR_KINDS, 0)
    error_status: dict[int, int] = {}
    status_codes: dict[int, int] = {}
    latency, service, warm = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    seconds: dict[int, SecondStats] = {}
    lag_weighted = 0.0
    for r in results:
        _add_counts(errors, r.errors)
        _add_counts(error_status, r.error_status)
        _add_counts(status_codes, r.status_codes)
        latency.add(r.latency)
        service.add(r.service)
        warm.add(r.warmup_latency)
        lag_weighted += r.send_lag_mean_ms * r.sent
        for s in r.timeline:
            if s.t not in seconds:
                seconds[s.t] = SecondStats(s.t)
            seconds[s.t].add(s)
    sent = sum(r.sent for r in results)
    targets = [r.target_rps for r in results]
    return LoadResult(
        model=first.model,
        duration_s=first.duration_s,
        warmup_s=first.warmup_s,
        processes=sum(r.processes for r in results),
        concurrency=sum(r.concurrency for r in results),
        target_rps=None if any(t is None for t in targets) else sum(t or 0.0 for t in targets),
        achieved_rps=sum(r.achieved_rps for r in results),
        scheduled=sum(r.scheduled for r in results),
        sent=sent,
        completed=sum(r.completed for r in results),
        ok=sum(r.ok for r in results),
        errors=errors,
        error_status=error_status,
        status_codes=status_codes,
        late=sum(r.late for r in results),
        dropped=sum(r.dropped for r in results),
        warmup_requests=sum(r.warmup_requests for r in results),
        bytes_sent=sum(r.bytes_sent for r in results),
        bytes_received=sum(r.bytes_received for r in results),
        send_lag_mean_ms=lag_weighted / sent if sent else 0.0,
        send_lag_max_ms=max(r.send_lag_max_ms for r in results),
        latency=latency,
        service=service,
        warmup_latency=warm,
        timeline=[seconds[t] for t in sorted(seconds)],
        cpu=[p for r in results for p in r.cpu],
        extra=dict(first.extra),
    )


def is_valid(
    result: LoadResult,
    *,
    min_rate_ratio: float = 0.95,
    max_late_ratio: float = 0.01,
    max_dropped_ratio: float = 0.01,
    max_cpu_pct: float = 90.0,
) -> tuple[bool, list[str]]:
    """Can the run's latencies be trusted as the *server's*? Returns (ok, reasons).

    Flags: achieved rate < 95 % of target (open), late sends or dropped arrivals over
    1 % of the schedule (open; the generator or the connection cap could not keep the
    schedule), and any generator process above 90 % of one core (it was the bottleneck;
    k6 advises keeping >= 20 % idle, Locust warns at 90 %).
    """
    reasons: list[str] = []
    if result.target_rps:
        ratio = result.achieved_rps / result.target_rps
        if ratio < min_rate_ratio:
            reasons.append(
                f"achieved rate {result.achieved_rps:.1f} req/s is {ratio:.1%} of the target "
                f"{result.target_rps:.1f} req/s (< {min_rate_ratio:.0%})"
            )
    base = result.scheduled or result.sent
    if base:
        # A couple of late sends in a short run is scheduler noise, not a generator
        # that fell behind: require more than 2 as well as more than the ratio.
        if result.late > 2 and result.late / base > max_late_ratio:
            reasons.append(
                f"{result.late} of {base} requests ({result.late / base:.1%}) were sent late (> {max_late_ratio:.0%})"
            )
        if result.dropped / base > max_dropped_ratio:
            reasons.append(
                f"{result.dropped} of {base} requests ({result.dropped / base:.1%}) were dropped (> {max_dropped_ratio:.0%}): "
                "raise max_connections/max_queue or use fewer arrivals"
            )
    for p in result.cpu:
        if p.cpu_pct > max_cpu_pct:
            reasons.append(
                f"generator process {p.index} used {p.cpu_pct:.0f}% of a core (> {max_cpu_pct:.0f}%): "
                "the generator may be the bottleneck; use more processes"
            )
    if result.sent == 0:
        reasons.append("no requests were sent")
    return (not reasons, reasons)
