"""Every metric a run records that thresholds and comparisons can read, in one registry.

A metric is read from a results entry (``summary``, ``derived`` per-request costs, or
``server``), has a direction (lower or higher is better) and a scale for comparisons:

- ``log``: positive, multiplicative noise (latency, throughput): changes are ratios;
- ``abs``: rates and counts near zero (error rate, new connections per call), where a
  ratio is meaningless (0.01 -> 0.02 is "+100 %" but nothing happened): changes are
  differences, and must also clear ``abs_min`` to count.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Entry = dict[str, Any]
ALL_KINDS: tuple[str, ...] = ("http", "job", "redis-store", "flow")


@dataclass(frozen=True)
class Metric:
    name: str  # the key in thresholds, comparisons and reports
    label: str
    unit: str
    better: Literal["lower", "higher"]
    scale: Literal["log", "abs"]
    abs_min: float  # a change smaller than this (in the metric's unit) is never a verdict
    get: Callable[[Entry], float | None]
    kinds: tuple[str, ...] = ALL_KINDS
    compared: bool = True  # part of the default comparison (False: thresholds only)
    window: str | None = None  # per-second timeline value: a percentile "p95", "error_rate"
    # What a baseline must share with the candidate for this metric's verdict to be trusted:
    # "time" (the same machine, shown to run as fast: latency, throughput, CPU time),
    # "count" (code only: connections or calls per request), "instructions" (the same
    # valgrind, CPU, Python and packages: see perfaudit.measure.instructions).
    trust: Literal["time", "count", "instructions"] = "time"
    # Per-metric gate settings (None: GateSettings' min_effect and resolution).
    min_effect: float | None = None
    resolution: float | None = None
    # Deterministic: noise comes from the spread of sub-windows inside one run (instruction
    # counts agree to ~0.1 % across fresh processes), so one repeat per side can give a
    # verdict; ``get_windows`` returns the per-sub-window values of one entry.
    deterministic: bool = False
    get_windows: Callable[[Entry], list[float] | None] | None = None
    # The smallest step one entry's value can take (in the metric's unit), where the reading
    # is quantised: CPU time comes in clock ticks, so per request it moves in steps of
    # tick / requests and a difference of one step is no evidence.
    quantum: Callable[[Entry], float | None] | None = None

    def step(self, entry: Entry) -> float | None:
        if self.quantum is None:
            return None
        try:
            return self.quantum(entry)
        except (KeyError, TypeError, ZeroDivisionError):
            return None

    def window_values(self, entry: Entry) -> list[float]:
        if self.get_windows is None:
            return []
        try:
            vs = self.get_windows(entry)
        except (KeyError, TypeError):
            return []
        return [float(v) for v in vs or []]

    def value(self, entry: Entry) -> float | None:
        try:
            v = self.get(entry)
        except (KeyError, TypeError):
            return None
        return None if v is None else float(v)

    def worse(self, delta: float) -> float:
        """Orient a change so that positive means worse."""
        return delta if self.better == "lower" else -delta

    def diff_text(self, d: float, signed: bool = True) -> str:
        """A difference in the metric's unit (abs-scale metrics; error rate in points)."""
        if self.name == "error_rate":
            return f"{100 * d:{'+' if signed else ''}.2f} pp"
        return f"{d:{'+' if signed else ''}.3g}"

    def fmt(self, v: float | None) -> str:
        if v is None:
            return "n/a"
        if self.unit == "Ir/req":
            return f"{v / 1e6:.4g} M Ir/req" if v >= 1e6 else f"{v / 1e3:.4g} k Ir/req"
        if self.unit == "ms":
            return f"{v:.3g} ms" if v < 10 else f"{v:.1f} ms"
        if self.name == "error_rate":
            return f"{100 * v:.2f} %"
        return f"{v:.3g}{' ' + self.unit if self.unit else ''}"


def _summary(key: str) -> Callable[[Entry], float | None]:
    return lambda e: e["summary"].get(key)


def _derived(*path: str) -> Callable[[Entry], float | None]:
    def get(e: Entry) -> float | None:
        node: Any = e.get("derived")
        for p in path:
            if not isinstance(node, dict):
                return None
            node = node.get(p)
        return node

    return get


def _process_cpu_ms(name: str) -> Callable[[Entry], float | None]:
    """CPU time of one process (service, worker) per request, over the steady window."""

    def get(e: Entry) -> float | None:
        procs = e["server"]["process"]["processes"]
        requests = e["summary"]["requests"]
        if not requests or name not in procs:
            return None
        return 1000.0 * procs[name]["cpu_seconds"] / requests

    return get


def _process_rss_max(name: str) -> Callable[[Entry], float | None]:
    """Peak resident memory of one process over the steady window, in MB."""

    def get(e: Entry) -> float | None:
        proc = e["server"]["process"]["processes"].get(name)
        return None if not proc else proc["rss_mb"]["max"]

    return get


_service_cpu_ms = _process_cpu_ms("service")
CPU_TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")  # psutil's CPU times count clock ticks


def _cpu_quantum(e: Entry) -> float | None:
    requests = e["summary"]["requests"]
    return CPU_TICK_MS / requests if requests else None


def _instructions(
    process: str | None,
) -> tuple[Callable[[Entry], float | None], Callable[[Entry], list[float] | None]]:
    """Readers of ``entry["cost"]["instructions"]`` (perfaudit.measure.instructions): the
    whole target's, or one process's, instructions per request and per sub-window."""

    def node(e: Entry) -> Any:
        cost = ((e.get("cost") or {}).get("instructions")) or {}
        if cost.get("status") != "ok":
            return None
        if process is None:
            return cost
        proc = (cost.get("processes") or {}).get(process)
        return proc if proc and proc.get("busy", True) else None  # an idle process: no figure

    def get(e: Entry) -> float | None:
        n = node(e)
        return None if n is None else n.get("per_request")

    def windows(e: Entry) -> list[float] | None:
        n = node(e)
        return None if n is None else n.get("windows")

    return get, windows


def _ir_metric(name: str, label: str, process: str | None, compared: bool) -> Metric:
    get, windows = _instructions(process)
    return Metric(
        name, label, "Ir/req", "lower", "log", 1.0, get, compared=compared, trust="instructions",
        min_effect=0.005, resolution=0.01, deterministic=True, get_windows=windows,
    )  # fmt: skip


def _latency(name: str, label: str, pct: str | None, compared: bool = False) -> Metric:
    return Metric(
        name, label, "ms", "lower", "log", 0.01, _summary(name), compared=compared, window=pct
    )


METRICS: tuple[Metric, ...] = (
    _latency("p50_ms", "p50 latency", "p50", compared=True),
    _latency("p90_ms", "p90 latency", "p90"),
    _latency("p95_ms", "p95 latency", "p95", compared=True),
    _latency("p99_ms", "p99 latency", "p99", compared=True),
    _latency("p99_9_ms", "p99.9 latency", None),
    _latency("max_ms", "max latency", None),
    _latency("mean_ms", "mean latency", None),
    Metric("error_rate", "error rate", "", "lower", "abs", 0.005, _summary("error_rate"),
           window="error_rate"),
    Metric("rps", "throughput", "req/s", "higher", "log", 0.5, _summary("rps"), window="rps"),
    # flow: webhook -> reply at the Telegram stand-in
    Metric("e2e_p50_ms", "e2e p50", "ms", "lower", "log", 0.01, _summary("e2e_p50_ms"), ("flow",)),
    Metric("e2e_p95_ms", "e2e p95", "ms", "lower", "log", 0.01, _summary("e2e_p95_ms"), ("flow",)),
    Metric("e2e_p99_ms", "e2e p99", "ms", "lower", "log", 0.01, _summary("e2e_p99_ms"), ("flow",),
           compared=False),
    # job: enqueued -> started -> finished
    Metric("first_reply_p50_ms", "first reply p50", "ms", "lower", "log", 0.01,
           _summary("first_reply_p50_ms"), ("flow",), compared=False),
    Metric("queue_wait_p50_ms", "queue wait p50", "ms", "lower", "log", 0.01,
           _summary("queue_wait_p50_ms"), ("job",), compared=False),
    Metric("queue_wait_p95_ms", "queue wait p95", "ms", "lower", "log", 0.01,
           _summary("queue_wait_p95_ms"), ("job",)),
    Metric("run_p50_ms", "job run p50", "ms", "lower", "log", 0.01, _summary("run_p50_ms"),
           ("job",), compared=False),
    Metric("run_p95_ms", "job run p95", "ms", "lower", "log", 0.01, _summary("run_p95_ms"),
           ("job",)),
    Metric("jobs_per_s", "jobs/s", "jobs/s", "higher", "log", 0.5, _summary("jobs_per_s"),
           ("job",)),
    # per-request costs (window counters / requests). Command and call counts include the
    # worker's background work, which lags when the service is slow (phase3 "does" fewer
    # commands per webhook because its worker falls behind): thresholds only, by default.
    Metric("redis_commands_per_request", "Redis commands/request", "/req", "lower", "abs", 0.5,
           _derived("redis", "commands"), compared=False, trust="count"),
    Metric("redis_new_connections_per_request", "new Redis connections/request", "/req",
           "lower", "abs", 0.05, _derived("redis", "new_connections"), trust="count"),
    Metric("upstream_calls_per_request", "upstream calls/request", "/req", "lower", "abs", 0.05,
           _derived("upstreams", "calls"), compared=False, trust="count"),
    Metric("upstream_new_connections_per_call", "new upstream connections/call", "/call",
           "lower", "abs", 0.05, _derived("upstreams", "new_connections_per_call"),
           trust="count"),
    Metric("service_cpu_ms_per_request", "service CPU/request", "ms", "lower", "log", 0.01,
           _service_cpu_ms, quantum=_cpu_quantum),
    # Audit-only (perfaudit.audit): not part of the gate's default comparison.
    Metric("worker_cpu_ms_per_request", "worker CPU/request", "ms", "lower", "log", 0.01,
           _process_cpu_ms("worker"), compared=False, quantum=_cpu_quantum),
    Metric("service_rss_max_mb", "service peak RSS", "MB", "lower", "log", 1.0,
           _process_rss_max("service"), compared=False),
    Metric("worker_rss_max_mb", "worker peak RSS", "MB", "lower", "log", 1.0,
           _process_rss_max("worker"), compared=False),
    # instructions per request under callgrind (measure: [instructions]); every process is
    # gated on its own: a 1 % change in the service hides in the worker's larger total.
    _ir_metric("instructions_per_request", "instructions/request", None, compared=False),
    _ir_metric("service_instructions_per_request", "service instructions/request", "service",
               compared=True),
    _ir_metric("worker_instructions_per_request", "worker instructions/request", "worker",
               compared=True),
)  # fmt: skip

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def rel_text(ratio_minus_1: float, signed: bool = True) -> str:
    """A relative change: "+12.3 %", or "×3.4" from +100 % on (where percentages get silly)."""
    if ratio_minus_1 >= 1.0:
        x = 1 + ratio_minus_1
        return f"×{x:.3g}" if x < 100 else f"×{x:,.0f}"
    return f"{100 * ratio_minus_1:{'+' if signed else ''}.1f} %"


def log_text(x: float, signed: bool = True) -> str:
    return rel_text(math.expm1(x), signed)


def threshold_keys() -> dict[str, tuple[Metric, str]]:
    """Threshold key -> (metric, "max" | "min"). A lower-is-better metric is limited by
    its own name (``p95_ms: 200``), a higher-is-better one by ``min_<name>``
    (``min_rps: 45``)."""
    keys: dict[str, tuple[Metric, str]] = {}
    for m in METRICS:
        if m.better == "lower":
            keys[m.name] = (m, "max")
        else:
            keys[f"min_{m.name}"] = (m, "min")
    return keys


def compared_metrics(kind: str) -> list[Metric]:
    return [m for m in METRICS if m.compared and kind in m.kinds]
