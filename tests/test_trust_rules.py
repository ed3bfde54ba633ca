"""Per-class trust of a baseline: what a stored instruction baseline must match (B), the
machine calibration (C), and the same rules in ``perfaudit compare``/``report`` where
nothing can be re-run."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from test_compare_entries import FAST, repeats

from perfaudit import baseline as bl
from perfaudit import calibrate
from perfaudit.analysis.compare import compare_entries
from perfaudit.baseline import recorded_untrusted
from perfaudit.commands import report as report_command
from perfaudit.gate import GateOptions, plan
from perfaudit.report.outcome import build_report
from perfaudit.results import RunRecord, environment, write_atomic
from perfaudit.run.runner import RunOptions, prepare
from perfaudit.scenario import load_scenarios
from perfaudit.scenario.model import CostSpec

CAL = {"workload": calibrate.WORKLOAD, "median_s": 0.09, "spread": 0.01}
ENV = {"cpu_model": "AMD EPYC", "cpu_count": 2, "python": "3.11.7", "calibration": CAL}


# -- C: the calibration --------------------------------------------------------------------
def test_calibration_is_recorded_and_compared_within_its_tolerance() -> None:
    env = environment()
    cal = env["calibration"]
    assert cal["workload"] == calibrate.WORKLOAD and len(cal["times_s"]) == calibrate.ROUNDS
    assert 0 < cal["median_s"] < 1 and cal["spread"] >= 0
    assert calibrate.difference(cal, {**cal, "median_s": cal["median_s"] * 1.05}) is None
    slower = calibrate.difference(cal, {**cal, "median_s": cal["median_s"] * 2})
    assert slower is not None and "2.00× slower" in slower and "±10 %" in slower
    assert calibrate.difference(None, cal) == (
        "the baseline was recorded without a machine calibration"
    )
    other = calibrate.difference(cal, {**cal, "workload": "x"})
    assert other is not None and "different workloads" in other


def test_a_calibration_mismatch_withholds_time_but_not_counts() -> None:
    b = bl.Baseline("p", "t", ENV, repeats("webhook-text", 1))
    planned = {"webhook-text": {"scenario": b.entries[0]["scenario"]}}
    assert bl.comparability(b, ENV, planned).reasons("webhook-text") == {}
    slow = {**ENV, "calibration": {**CAL, "median_s": 0.2}}
    c = bl.comparability(b, slow, planned)
    reasons = c.reasons("webhook-text")
    assert set(reasons) == {bl.TIME} and "2.22× slower" in reasons[bl.TIME]
    assert c.needs_remeasure(["webhook-text"]) == ["webhook-text"]


def untrusted_compare(env_a: dict[str, Any], env_b: dict[str, Any], **kw: Any) -> Any:
    """A is the baseline (5 repeats); B is 40 % slower and opens 0.5 more Redis
    connections per request: time and counts both regressed, if trusted."""
    a = repeats("webhook-text", 1, n=5)
    b = repeats("webhook-text", 2, n=5, scale=1.4, new_conns=0.5)
    untrusted, notes = recorded_untrusted(env_a, a, env_b, b, "A")
    c = compare_entries(a, b, baseline_label="A", candidate_label="B", mode="recorded",
                        settings=FAST, untrusted=untrusted, notes=notes)  # fmt: skip
    return {m.metric: m for m in c.scenarios[0].metrics}, c, b


def test_no_calibration_means_time_verdicts_are_inconclusive_and_counts_stand() -> None:
    old = {k: v for k, v in ENV.items() if k != "calibration"}  # like phase3.json
    metrics, c, b = untrusted_compare(old, ENV)
    p95 = metrics["p95_ms"]
    assert p95.verdict == "inconclusive" and "would be regressed" in p95.reason
    assert "A was recorded without a machine calibration" in p95.reason
    assert metrics["redis_new_connections_per_request"].verdict == "regressed"
    assert any("time metrics not trusted" in n for n in c.scenarios[0].notes)
    # Trusted on both sides: the time regression stands too.
    metrics, _, _ = untrusted_compare(ENV, ENV)
    assert metrics["p95_ms"].verdict == "regressed"


def test_the_headline_never_says_regressed_from_an_untrusted_time_comparison() -> None:
    a = repeats("webhook-text", 1, n=5)
    b = repeats("webhook-text", 2, n=5, scale=1.4)  # slower only: time metrics only
    old = {k: v for k, v in ENV.items() if k != "calibration"}
    untrusted, notes = recorded_untrusted(old, a, ENV, b, "A")
    c = compare_entries(a, b, baseline_label="A", candidate_label="B", mode="recorded",
                        settings=FAST, untrusted=untrusted, notes=notes)  # fmt: skip
    report = build_report("t", b, c, with_checks=False)
    assert c.verdict == "inconclusive" and "regressed" not in report.headline
    assert report.exit_code == 0


def test_a_machine_difference_withholds_time_only() -> None:
    a, b = repeats("webhook-text", 1), repeats("webhook-text", 2)
    trust = bl.recorded_trust(ENV, a, {**ENV, "cpu_model": "Intel"}, b)
    assert set(trust["webhook-text"]) == {bl.TIME}
    longer = copy.deepcopy(b)
    for e in longer:
        e["scenario"]["duration_s"] = 30.0
    trust = bl.recorded_trust(ENV, a, ENV, longer)
    assert set(trust["webhook-text"]) == {bl.TIME, bl.COUNT}


def test_report_applies_the_same_rules(tmp_path: Path) -> None:
    old = {k: v for k, v in ENV.items() if k != "calibration"}
    a = repeats("webhook-text", 1, n=5)
    b = repeats("webhook-text", 2, n=5, scale=1.4)
    write_atomic(tmp_path / "a" / "results.json", RunRecord("a", "t", [], old, a, "complete"))
    write_atomic(tmp_path / "b" / "results.json", RunRecord("b", "t", [], ENV, b, "complete"))
    c = report_command.recorded_comparison(tmp_path / "b", str(tmp_path / "a"))
    assert c is not None and c["verdict"] == "inconclusive"
    [s] = c["scenarios"]
    p95 = next(m for m in s["metrics"] if m["metric"] == "p95_ms")
    assert "without a machine calibration" in p95["reason"]


# -- B: instruction baselines --------------------------------------------------------------
def counted(env: dict[str, Any], name: str = "health") -> dict[str, Any]:
    e = repeats(name, 3, n=1)[0]
    e["cost"] = {"instructions": {"status": "ok", "per_request": 1.0e6, "environment": env}}
    return e


HERE = bl.this_cost_environment(CostSpec().settings())


@pytest.mark.parametrize(
    ("key", "value"),
    [("valgrind", "valgrind-3.22.0"), ("cpu_flags", "0" * 16), ("python", "3.11.9 (main)"),
     ("arch", "aarch64"), ("cpu_model", "Other"), ("packages", {"uvicorn": "0.1"})],
)  # fmt: skip
def test_instruction_differences_name_every_key_that_moves_counts(key: str, value: Any) -> None:
    assert bl.instruction_differences(counted(HERE), HERE) == []
    diffs = bl.instruction_differences(counted({**HERE, key: value}), HERE)
    assert len(diffs) == 1 and diffs[0].startswith(key)


def test_instruction_settings_must_match_when_known() -> None:
    other = {**HERE, "settings": {**HERE["settings"], "requests": 10}}
    [diff] = bl.instruction_differences(counted(other), HERE)
    assert diff.startswith("settings requests 10 there, 150 here")
    unknown = {k: v for k, v in HERE.items() if k != "settings"}
    assert bl.instruction_differences(counted(other), unknown) == []


def _stored_counts(tmp: Path, env: dict[str, Any], options: RunOptions) -> Path:
    [s] = [s for s in load_scenarios() if s.name == "health"]
    sc = prepare(s, options)
    entries = []
    for i in range(2):
        e = counted(env)
        e["scenario"] = sc.to_dict()
        e["scenario"]["target"] = {**e["scenario"]["target"], "variant": "phase3"}
        e["measures"], e["repeat"] = ["instructions"], i + 1
        entries.append(e)
    rec = RunRecord("r", "2026-01-01T00:00:00+00:00", ["x"], environment(), entries, "complete")
    bl.save(bl.from_records("ir", [rec]), tmp)
    return tmp


@pytest.mark.parametrize("key", ["valgrind", "cpu_flags", "python"])
def test_an_instruction_baseline_from_another_cost_environment_is_remeasured(
    tmp_path: Path, key: str
) -> None:
    options = RunOptions(measure=("instructions",))
    d = _stored_counts(tmp_path, {**HERE, key: "something else"}, options)
    health = [s for s in load_scenarios() if s.name == "health"]
    p = plan(health, options, GateOptions(baseline="ir", repeat=1, baselines_dir=d))
    assert p.remeasured == ["health"] and p.mode == "re-measured"
    assert any("not trusted for instruction verdicts" in n and key in n for n in p.notes)


def test_a_matching_instruction_baseline_is_trusted_as_stored(tmp_path: Path) -> None:
    options = RunOptions(measure=("instructions",))
    d = _stored_counts(tmp_path, HERE, options)
    health = [s for s in load_scenarios() if s.name == "health"]
    p = plan(health, options, GateOptions(baseline="ir", repeat=1, baselines_dir=d))
    # Instructions only: no time metrics, so no canary either.
    assert p.remeasured == [] and p.canary == [] and p.mode == "stored"
    assert [s.key for s in p.sides] == ["candidate"]
    assert any("trusted as stored for: health" in n for n in p.notes)


def test_compare_withholds_instruction_verdicts_from_another_cost_environment() -> None:
    a = [counted({**HERE, "valgrind": "valgrind-3.22.0"})]
    b = [counted(HERE)]
    trust = bl.recorded_trust(ENV, a, ENV, b)
    assert set(trust["health"]) == {bl.INSTRUCTIONS}
    assert "valgrind 'valgrind-3.22.0' there" in trust["health"][bl.INSTRUCTIONS]
    assert bl.recorded_trust(ENV, [counted(HERE)], ENV, b) == {}


def test_the_committed_phase3_baseline_is_never_trusted_for_time_in_compare() -> None:
    b = bl.load("phase3")
    trust = bl.recorded_trust(b.environment, b.entries, environment(), b.entries)
    assert trust and all(
        "A was recorded without a machine calibration" in r.get(bl.TIME, "")
        or "different machines" in r.get(bl.TIME, "")
        for r in trust.values()
    )
    assert not any(bl.COUNT in r for r in trust.values())
