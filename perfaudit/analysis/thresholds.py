"""Checking a run against its thresholds (pure: reads, never measures).

Any recorded metric can be limited (see :mod:`perfaudit.analysis.metrics`): latency
percentiles, error rate, throughput, job and flow latencies, per-request costs. Where a
scenario of the reference service sets no ``p95_ms``, the Phase 4 target for its endpoint
applies (webhook < 200 ms, job enqueue < 50 ms, Redis operation < 50 ms, callback
< 500 ms, health < 10 ms, all at p95) and the check says so.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from perfaudit.analysis.metrics import Entry, threshold_keys

KEYS = threshold_keys()
# threshold key -> (metric name, direction): "max" means actual must be <= limit.
CHECKS: dict[str, tuple[str, str]] = {k: (m.name, d) for k, (m, d) in KEYS.items()}


@dataclass(frozen=True)
class Default:
    key: str
    limit: float
    why: str


@dataclass(frozen=True)
class Check:
    name: str  # the threshold key, e.g. "p95_ms"
    metric: str
    limit: float
    actual: float | None
    passed: bool
    source: str = "scenario"  # scenario | default (a Phase 4 target)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        op = ">=" if CHECKS[self.name][1] == "min" else "<="
        actual = "n/a" if self.actual is None else f"{self.actual:.4g}"
        text = f"{self.metric} {actual} {op} {self.limit:g}: {'pass' if self.passed else 'FAIL'}"
        return f"{text} ({self.note})" if self.note else text


def phase4_default(scenario: dict[str, Any]) -> Default | None:
    """The Phase 4 response-time target for a reference-service scenario, at p95."""
    if (scenario.get("target") or {}).get("service", "reference") != "reference":
        return None
    kind = scenario.get("kind")
    path = ((scenario.get("request") or {}).get("path") or "").split("?", 1)[0]
    if kind == "job":
        return Default("p95_ms", 50.0, "Phase 4 target: job enqueue < 50 ms at p95")
    if kind == "redis-store":
        return Default("p95_ms", 50.0, "Phase 4 target: Redis operation < 50 ms at p95")
    if path == "/telegram/webhook":
        return Default("p95_ms", 200.0, "Phase 4 target: webhook response < 200 ms at p95")
    if path == "/cursor-runner/callback":
        return Default("p95_ms", 500.0, "Phase 4 target: callback response < 500 ms at p95")
    if path in ("/health", "/"):
        return Default("p95_ms", 10.0, "Phase 4 target: health check < 10 ms at p95")
    return None


def _check(key: str, limit: float, actual: float | None, source: str, note: str) -> Check:
    metric, direction = CHECKS[key]
    if actual is None:
        passed = False  # a metric that was not measured fails its check
    elif direction == "max":
        passed = actual <= limit
    else:
        passed = actual >= limit
    return Check(key, metric, float(limit), actual, passed, source, note)


def evaluate(
    thresholds: dict[str, float],
    summary: dict[str, Any],
    derived: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
    default: Default | None = None,
) -> list[Check]:
    """One check per threshold, plus the Phase 4 default when the scenario sets no p95."""
    entry: Entry = {"summary": summary, "derived": derived, "server": server or {}}
    checks = [
        _check(key, limit, KEYS[key][0].value(entry), "scenario", "")
        for key, limit in thresholds.items()
    ]
    if default is not None and default.key not in thresholds:
        actual = KEYS[default.key][0].value(entry)
        checks.append(_check(default.key, default.limit, actual, "default", default.why))
    return checks


def evaluate_scenario(
    scenario: dict[str, Any],
    summary: dict[str, Any],
    derived: dict[str, Any] | None = None,
    server: dict[str, Any] | None = None,
) -> list[Check]:
    """:func:`evaluate` for a scenario as recorded (``Scenario.to_dict()``)."""
    return evaluate(
        scenario.get("thresholds") or {}, summary, derived, server, phase4_default(scenario)
    )


def evaluate_entry(entry: Entry) -> list[Check]:
    """The checks of a recorded entry on what it measured: instruction thresholds only when
    the instructions measure ran, every other threshold (and the Phase 4 default) only when
    the load run did."""
    scenario = entry.get("scenario") or {}
    measures = set(entry.get("measures") or scenario.get("measure") or ["latency"])
    out = []
    for key, limit in (scenario.get("thresholds") or {}).items():
        counted = KEYS[key][0].trust == "instructions"
        if ("instructions" if counted else "latency") in measures:
            out.append(_check(key, limit, KEYS[key][0].value(entry), "scenario", ""))
    default = phase4_default(scenario) if "latency" in measures else None
    if default is not None and default.key not in (scenario.get("thresholds") or {}):
        actual = KEYS[default.key][0].value(entry)
        out.append(_check(default.key, default.limit, actual, "default", default.why))
    return out


def over_repeats(entries: list[Entry]) -> list[Check]:
    """The checks of one scenario run several times: each threshold against the median of
    its per-repeat values, so one noisy repeat neither fails nor passes the build alone."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        for c in e.get("checks", []):
            by_key.setdefault(c["name"], []).append(c)
    out = []
    for key, checks in by_key.items():
        values = [c["actual"] for c in checks if c["actual"] is not None]
        actual = statistics.median(values) if len(values) == len(checks) else None
        first = checks[0]
        note = first.get("note", "")
        if len(checks) > 1:
            passed_n = sum(1 for c in checks if c["passed"])
            extra = f"median of {len(checks)} repeats; {passed_n} passed alone"
            note = f"{note}; {extra}" if note else extra
        out.append(_check(key, first["limit"], actual, first.get("source", "scenario"), note))
    return out
