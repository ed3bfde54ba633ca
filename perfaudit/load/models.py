"""Load models and run configuration.

* **Open** (default): requests arrive on a schedule whether or not earlier ones have
  finished (k6 ``constant-arrival-rate`` / ``ramping-arrival-rate``, wrk2 ``-R``).
  Latency is measured from each request's *intended* send time, so time spent queued
  behind a stalled server counts (coordinated-omission correction); the time from the
  actual send ("service time") is recorded separately.
* **Closed**: N users each send, wait for the response, optionally think, and repeat.
  Latency is measured from the actual send. This model *hides stalls*: while the server
  is stuck, the users are stuck too and send nothing, so the stall shows up in only ~N
  samples instead of in every request that should have been sent meanwhile
  (coordinated omission). Use it for "max throughput at concurrency N", not for latency
  SLOs.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

# A request source: the same bytes every time, or a callable giving the next request.
RequestSource = bytes | Callable[[], bytes]
# Builds a per-process source: factory(process_index, process_count) -> source.
SourceFactory = Callable[[int, int], RequestSource]


@dataclass(frozen=True)
class Stage:
    """Ramp linearly from the previous stage's rate to ``target_rps`` over ``duration_s``."""

    duration_s: float
    target_rps: float


@dataclass(frozen=True, kw_only=True)
class OpenOptions:
    """Knobs shared by the open models.

    connections: sockets opened before the run (k6 preAllocatedVUs); None = min(8, max).
    max_connections: cap on concurrent requests (k6 maxVUs); the pool grows up to it.
    max_queue: arrivals waiting for a free connection beyond this are ``dropped``.
    late_tolerance_s: a send later than this after its intended time counts as ``late``.
    """

    max_connections: int = 256
    connections: int | None = None
    max_queue: int = 10_000
    late_tolerance_s: float = 0.010

    def initial_connections(self) -> int:
        n = self.connections if self.connections is not None else 8
        return max(1, min(n, self.max_connections))


@dataclass(frozen=True, kw_only=True)
class ConstantArrivalRate(OpenOptions):
    rate: float
    duration_s: float

    kind = "open"

    def segments(self) -> list[tuple[float, float, float]]:
        return [(self.duration_s, self.rate, self.rate)]

    @property
    def total_duration_s(self) -> float:
        return self.duration_s

    @property
    def warmup_rate(self) -> float:
        return self.rate

    def scaled(self, share: float) -> ConstantArrivalRate:
        """This model's share of the load for one of several generator processes."""
        return ConstantArrivalRate(
            **{**asdict(self), "rate": self.rate * share, **_scaled_open(self, share)}
        )


@dataclass(frozen=True, kw_only=True)
class RampingArrivalRate(OpenOptions):
    stages: tuple[Stage, ...]
    start_rps: float = 0.0

    kind = "open"

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "stages", tuple(s if isinstance(s, Stage) else Stage(**s) for s in self.stages)
        )
        if not self.stages:
            raise ValueError("RampingArrivalRate needs at least one stage")

    def segments(self) -> list[tuple[float, float, float]]:
        out = []
        prev = self.start_rps
        for s in self.stages:
            out.append((s.duration_s, prev, s.target_rps))
            prev = s.target_rps
        return out

    @property
    def total_duration_s(self) -> float:
        return sum(s.duration_s for s in self.stages)

    @property
    def warmup_rate(self) -> float:
        # Warm up at the rate the measured part starts with; a ramp from 0 warms up at
        # the first stage's target instead (warming up at 0 req/s would warm nothing).
        return self.start_rps if self.start_rps > 0 else self.stages[0].target_rps

    def scaled(self, share: float) -> RampingArrivalRate:
        return RampingArrivalRate(
            stages=tuple(Stage(s.duration_s, s.target_rps * share) for s in self.stages),
            start_rps=self.start_rps * share,
            **_scaled_open(self, share),
        )


def _scaled_open(m: OpenOptions, share: float) -> dict[str, Any]:
    conns = None if m.connections is None else max(1, math.ceil(m.connections * share))
    return {
        "max_connections": max(1, math.ceil(m.max_connections * share)),
        "connections": conns,
        "max_queue": max(1, math.ceil(m.max_queue * share)),
        "late_tolerance_s": m.late_tolerance_s,
    }


@dataclass(frozen=True, kw_only=True)
class ClosedModel:
    """``users`` concurrent users (one connection each) sending back-to-back.

    think_time_s: a fixed pause, or a (low, high) range drawn uniformly, after each
    response. After a connect error a user waits at least 10 ms so a refused port does
    not turn into a busy loop.
    """

    users: int
    duration_s: float
    think_time_s: float | tuple[float, float] = 0.0

    kind = "closed"

    @property
    def total_duration_s(self) -> float:
        return self.duration_s

    def scaled_users(self, index: int, count: int) -> int:
        return self.users // count + (1 if index < self.users % count else 0)


LoadModel = ConstantArrivalRate | RampingArrivalRate | ClosedModel


def model_from_dict(data: dict[str, Any]) -> LoadModel:
    """Build a model from a scenario mapping.

    ``{"type": "open", "rate": 200, "duration_s": 10}``,
    ``{"type": "open", "stages": [{"duration_s": 10, "target_rps": 100}], "start_rps": 0}``,
    ``{"type": "closed", "users": 8, "duration_s": 10, "think_time_s": [0.01, 0.05]}``;
    open models also take max_connections, connections, max_queue, late_tolerance_s.
    """
    d = dict(data)
    kind = d.pop("type", "open")
    if kind == "closed":
        think = d.pop("think_time_s", 0.0)
        if isinstance(think, list | tuple):
            think = (float(think[0]), float(think[1]))
        return ClosedModel(think_time_s=think, **d)
    if kind != "open":
        raise ValueError(f"unknown load model type {kind!r} (open|closed)")
    if "stages" in d:
        d["stages"] = tuple(Stage(**s) if isinstance(s, dict) else s for s in d["stages"])
        return RampingArrivalRate(**d)
    return ConstantArrivalRate(**d)


@dataclass(frozen=True, kw_only=True)
class LoadConfig:
    """One load run against ``host:port`` (plain http).

    request: bytes (sent every time) or a callable giving each request's bytes.
    request_factory: optional ``factory(process_index, process_count) -> request`` so
        each generator process can build its own source (unique ids per process);
        overrides ``request``.
    warmup_s: run this long first (open: at the model's starting rate); measured into
        a separate histogram and kept out of the main results.
    timeout_s: per-request read timeout; connect_timeout_s: per connect.
    processes: generator processes, each with 1/N of the rate (or users).
    precise_timer: dispatch open-model arrivals on a Linux timerfd (tens of µs late)
        instead of the loop's ~1 ms timers.
    start_method: multiprocessing start method; None = "fork" where available (lets
        lambdas be request sources), else "spawn" (sources must then be picklable).
    """

    host: str
    port: int
    model: LoadModel
    request: RequestSource = b""
    request_factory: SourceFactory | None = None
    warmup_s: float = 0.0
    timeout_s: float = 10.0
    connect_timeout_s: float = 5.0
    processes: int = 1
    use_uvloop: bool = True
    precise_timer: bool = True  # open model: timerfd dispatch (Linux), see load/timer.py
    start_method: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # free-form labels copied to the result
    # Anything with put(): receives one Progress tuple per closed second (live display).
    progress: Any = None
