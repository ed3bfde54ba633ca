"""Checking a scenario's summary against its thresholds (pure: reads, never measures)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# threshold key -> (summary metric, direction): "max" means actual must be <= limit.
CHECKS: dict[str, tuple[str, str]] = {
    "p50_ms": ("p50_ms", "max"),
    "p95_ms": ("p95_ms", "max"),
    "p99_ms": ("p99_ms", "max"),
    "max_ms": ("max_ms", "max"),
    "error_rate": ("error_rate", "max"),
    "min_rps": ("rps", "min"),
    "e2e_p95_ms": ("e2e_p95_ms", "max"),
    "queue_wait_p95_ms": ("queue_wait_p95_ms", "max"),
    "run_p95_ms": ("run_p95_ms", "max"),
    "min_jobs_per_s": ("jobs_per_s", "min"),
}


@dataclass(frozen=True)
class Check:
    name: str  # the threshold key, e.g. "p95_ms"
    metric: str
    limit: float
    actual: float | None
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        op = ">=" if CHECKS[self.name][1] == "min" else "<="
        actual = "n/a" if self.actual is None else f"{self.actual:.4g}"
        return f"{self.metric} {actual} {op} {self.limit:g}: {'pass' if self.passed else 'FAIL'}"


def evaluate(thresholds: dict[str, float], summary: dict[str, Any]) -> list[Check]:
    """One check per threshold; a metric that was not measured fails its check."""
    checks = []
    for name, limit in thresholds.items():
        metric, direction = CHECKS[name]
        actual = summary.get(metric)
        if actual is None:
            passed = False
        elif direction == "max":
            passed = actual <= limit
        else:
            passed = actual >= limit
        checks.append(Check(name, metric, float(limit), actual, passed))
    return checks
