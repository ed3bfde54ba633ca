"""Thresholds on any recorded metric, the Phase 4 defaults, and medians over repeats."""

from __future__ import annotations

from pathlib import Path

from perfaudit.analysis.thresholds import evaluate, evaluate_scenario, over_repeats, phase4_default
from perfaudit.scenario import ScenarioError, load_scenarios

SUMMARY = {"p50_ms": 3.0, "p95_ms": 12.0, "p99_ms": 30.0, "rps": 49.0, "error_rate": 0.0,
           "requests": 100}  # fmt: skip
DERIVED = {"redis": {"commands": 4.0, "new_connections": 1.0},
           "upstreams": {"calls": 2.0, "new_connections_per_call": 0.5}}  # fmt: skip
SERVER = {"process": {"processes": {"service": {"cpu_seconds": 0.25}}}}


def test_any_recorded_metric_can_be_limited() -> None:
    checks = {c.name: c for c in evaluate(
        {"p95_ms": 10, "min_rps": 45, "redis_commands_per_request": 5,
         "redis_new_connections_per_request": 0, "upstream_new_connections_per_call": 0.1,
         "service_cpu_ms_per_request": 1.0},
        SUMMARY, DERIVED, SERVER,
    )}  # fmt: skip
    assert not checks["p95_ms"].passed and checks["min_rps"].passed
    assert checks["redis_commands_per_request"].passed
    assert not checks["redis_new_connections_per_request"].passed
    assert not checks["upstream_new_connections_per_call"].passed
    assert checks["service_cpu_ms_per_request"].actual == 2.5
    assert (
        "redis_new_connections_per_request 1 <= 0: FAIL"
        in checks["redis_new_connections_per_request"].describe()
    )
    # a cost that was not measured (no stand-ins) fails its check rather than passing
    [c] = evaluate({"upstream_calls_per_request": 3}, SUMMARY, {"redis": None, "upstreams": None})
    assert c.actual is None and not c.passed


def test_phase4_defaults_apply_at_p95_where_a_scenario_sets_none() -> None:
    def sc(kind: str = "http", path: str = "/", service: str = "reference", **t: float) -> dict:
        return {"kind": kind, "request": {"path": path}, "target": {"service": service},
                "thresholds": t}  # fmt: skip

    assert phase4_default(sc(path="/telegram/webhook")).limit == 200  # type: ignore[union-attr]
    assert phase4_default(sc(kind="job")).limit == 50  # type: ignore[union-attr]
    assert phase4_default(sc(kind="redis-store")).limit == 50  # type: ignore[union-attr]
    assert phase4_default(sc(path="/cursor-runner/callback")).limit == 500  # type: ignore[union-attr]
    assert phase4_default(sc(path="/health")).limit == 10  # type: ignore[union-attr]
    assert phase4_default(sc(path="/agent-tools")) is None
    assert phase4_default(sc(path="/health", service="external")) is None

    [c] = evaluate_scenario(sc(path="/health"), SUMMARY)
    assert c.source == "default" and not c.passed and "health check < 10 ms at p95" in c.note
    # a scenario's own p95 wins; other keys do not switch the default off
    checks = evaluate_scenario(sc(path="/health", p95_ms=20, error_rate=0.0), SUMMARY)
    assert [(c.name, c.source) for c in checks] == [
        ("p95_ms", "scenario"),
        ("error_rate", "scenario"),
    ]
    checks = evaluate_scenario(sc(path="/health", p99_ms=50), SUMMARY)
    assert [(c.name, c.source) for c in checks] == [("p99_ms", "scenario"), ("p95_ms", "default")]


def test_over_repeats_uses_the_median() -> None:
    def rep(p95: float) -> dict:
        return {"checks": [c.to_dict() for c in evaluate({"p95_ms": 10}, {"p95_ms": p95})]}

    [c] = over_repeats([rep(8), rep(30), rep(9)])  # one noisy repeat does not fail the build
    assert c.passed and c.actual == 9 and "median of 3 repeats; 2 passed alone" in c.note
    [c] = over_repeats([rep(11), rep(30), rep(9)])
    assert not c.passed and c.actual == 11


def test_scenario_files_accept_cost_thresholds(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "name: s\nrequest: {path: /health}\nload: {rate: 10}\nduration: 1s\n"
        "thresholds: {redis_new_connections_per_request: 0, service_cpu_ms_per_request: 2, "
        "min_rps: 9}\n"
    )
    [s] = load_scenarios([f])
    assert s.thresholds.to_dict() == {
        "min_rps": 9.0, "redis_new_connections_per_request": 0.0, "service_cpu_ms_per_request": 2.0,
    }  # fmt: skip
    assert "redis_new_connections_per_request<=0" in s.thresholds.describe()
    f.write_text("name: s\nrequest: {path: /health}\nload: {rate: 10}\nduration: 1s\n"
                 "thresholds: {redis_hops: 1, e2e_p95_ms: 5}\n")  # fmt: skip
    try:
        load_scenarios([f])
    except ScenarioError as exc:
        text = str(exc)
        assert "thresholds.redis_hops" in text and "unknown key" in text
        assert "thresholds.e2e_p95_ms: only for kind flow" in text
    else:
        raise AssertionError("bad threshold keys were accepted")
