"""The gate's trust logic on synthetic repeats: the canary (task C) and the confirming
rerun of a time regression (task D). A fake runner stands in for the stacks; the
planning, interleaving, comparison and CI outputs are the real ones."""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from test_compare_entries import FAST, entry

from perfaudit import baseline as bl
from perfaudit.gate import GateOptions, plan, run_gate
from perfaudit.results import RunRecord, environment
from perfaudit.run.runner import RunOptions, prepare
from perfaudit.scenario import Scenario, load_scenarios

OPTIONS = RunOptions(duration_s=8, warmup_s=1)
# side ("A" baseline, "B" candidate), round (1; 2: the rerun), sub-run id -> latency scale
Scale = Callable[[str, int, str], float]


class Quiet:
    def scenario_started(self, scenario: Any, index: int, total: int) -> None: ...
    def progress(self, item: Any) -> None: ...
    def scenario_finished(self, entry: dict[str, Any]) -> None: ...
    def note(self, message: str) -> None: ...


@dataclass
class FakeRunner:
    """Synthetic entries like the runner's (1 s warm-up + 8 s at 50 req/s), slower by
    ``scale`` per side, round and repeat; every call is logged."""

    scale: Scale
    new_conns: Callable[[str], float] = lambda side: 0.01
    calls: list[tuple[str, int, str, list[str]]] = field(default_factory=list)

    def __call__(
        self,
        scenarios: list[Scenario],
        options: RunOptions,
        events: Any,
        command: list[str],
        record: RunRecord,
    ) -> RunRecord:
        side = "B" if record.run_id.startswith("candidate") else "A"
        rnd = 2 if "confirm" in options.out_dir.parts else 1
        for s in scenarios:
            rng = random.Random(zlib.crc32(f"{side}{rnd}{record.run_id}{s.name}".encode()))
            e = entry(s.name, rng, scale=self.scale(side, rnd, record.run_id),
                      new_conns=self.new_conns(side))  # fmt: skip
            ran = prepare(s, options)
            e["scenario"], e["target"] = ran.to_dict(), {"label": ran.target.label()}
            record.scenarios.append(e)
        self.calls.append((side, rnd, record.run_id, [s.name for s in scenarios]))
        return record


def health() -> list[Scenario]:
    return [s for s in load_scenarios() if s.name == "health"]


def gate(tmp: Path, baseline: str, runner: FakeRunner, **kw: Any) -> Any:
    g = GateOptions(baseline=baseline, repeat=3, baselines_dir=tmp / "bl", settings=FAST, **kw)
    options = replace(OPTIONS, out_dir=tmp / "reports")
    return run_gate(health(), options, g, Quiet(), ["test"], "run1", runner=runner)


def metric(run: Any, name: str) -> dict[str, Any]:
    [s] = run.report.comparison.to_dict()["scenarios"]
    return next(m for m in s["metrics"] if m["metric"] == name)


def store(tmp: Path, env: dict[str, Any], n: int = 5) -> None:
    """A stored phase3 baseline of health: n repeats at scale 1, with ``env``."""
    rng = random.Random(7)
    entries = []
    for i, s in enumerate(health() * n):
        e = entry(s.name, rng)
        ran = prepare(replace(s, target=replace(s.target, variant="phase3")), OPTIONS)
        e["scenario"], e["target"], e["repeat"] = ran.to_dict(), {"label": "x"}, i + 1
        entries.append(e)
    rec = RunRecord("r", "2026-01-01T00:00:00+00:00", ["x"], env, entries, "complete")
    bl.save(bl.from_records("p3", [rec]), tmp / "bl")


# -- C: the canary ---------------------------------------------------------------------------
def test_a_canary_inside_the_baselines_noise_trusts_it_as_stored(tmp_path: Path) -> None:
    store(tmp_path, environment())
    p = plan(health(), OPTIONS, GateOptions(baseline="p3", repeat=3, baselines_dir=tmp_path / "bl"))
    assert p.canary == ["health"] and p.remeasured == [] and p.mode == "stored"
    runner = FakeRunner(lambda side, rnd, run_id: 1.0)
    run = gate(tmp_path, "p3", runner)
    baseline_calls = [c for c in runner.calls if c[0] == "A"]
    assert [c[2] for c in baseline_calls] == ["canary-1"]  # one repeat, nothing re-measured
    comparison = run.report.comparison
    assert comparison.mode == "stored"
    assert metric(run, "p95_ms")["n_baseline"] == 5  # the stored repeats, not the canary
    assert any("canary repeat fell inside" in n and "trusted as stored" in n
               for n in comparison.notes)  # fmt: skip
    canary = json.loads((tmp_path / "reports/run1/baseline/results.json").read_text())
    assert [e.get("canary") for e in canary["scenarios"]] == [True]


def test_a_canary_outside_is_remeasured_and_reused_as_the_first_repeat(tmp_path: Path) -> None:
    store(tmp_path, environment())
    # This machine runs the baseline's configuration twice as slowly as it was recorded.
    runner = FakeRunner(lambda side, rnd, run_id: 2.0)
    run = gate(tmp_path, "p3", runner)
    baseline_calls = [c[2] for c in runner.calls if c[0] == "A"]
    assert baseline_calls == ["canary-1", "baseline-2", "baseline-3"]  # 3 repeats in all
    comparison = run.report.comparison
    assert comparison.mode == "re-measured"
    assert metric(run, "p95_ms")["n_baseline"] == 3
    assert metric(run, "p95_ms")["verdict"] != "improved"  # side by side: no machine effect
    assert any("fell outside" in n and "canary kept as its repeat 1 of 3" in n
               for n in comparison.notes)  # fmt: skip
    record = json.loads((tmp_path / "reports/run1/baseline/results.json").read_text())
    assert [e["repeat"] for e in record["scenarios"]] == [1, 2, 3]


def test_a_calibration_mismatch_is_remeasured_without_a_canary(tmp_path: Path) -> None:
    env = environment()
    env["calibration"] = {**env["calibration"], "median_s": 2 * env["calibration"]["median_s"]}
    store(tmp_path, env)
    p = plan(health(), OPTIONS, GateOptions(baseline="p3", repeat=3, baselines_dir=tmp_path / "bl"))
    assert p.remeasured == ["health"] and p.canary == [] and p.mode == "re-measured"
    assert any("ran the machine calibration 2.00× faster than the baseline" in n
               and "re-measured" in n
               for n in p.notes)  # fmt: skip


def test_a_baseline_without_a_calibration_is_remeasured_by_the_gate(tmp_path: Path) -> None:
    env = environment()
    del env["calibration"]
    store(tmp_path, env)
    p = plan(health(), OPTIONS, GateOptions(baseline="p3", repeat=3, baselines_dir=tmp_path / "bl"))
    assert p.remeasured == ["health"]
    assert any("recorded without a machine calibration" in n for n in p.notes)


# -- D: confirming a time regression -------------------------------------------------------
def slow_in(rounds: set[int]) -> Scale:
    return lambda side, rnd, run_id: 1.5 if side == "B" and rnd in rounds else 1.0


def test_a_time_regression_not_seen_again_is_inconclusive(tmp_path: Path) -> None:
    runner = FakeRunner(slow_in({1}))
    run = gate(tmp_path, "variant:phase3", runner)
    assert {c[1] for c in runner.calls} == {1, 2}
    rerun = [c for c in runner.calls if c[1] == 2]
    assert sorted(c[2] for c in rerun) == ["baseline-1", "baseline-2", "baseline-3",
                                           "candidate-1", "candidate-2", "candidate-3"]  # fmt: skip
    m = metric(run, "p95_ms")
    assert m["verdict"] == "inconclusive" and m["reason"].startswith("not confirmed by a rerun")
    assert run.report.exit_code == 0 and "regressed" not in run.report.headline
    saved = json.loads((tmp_path / "reports/run1/comparison.json").read_text())
    first = saved["confirmation"]["first"]["scenarios"][0]
    assert first["verdict"] == "regressed"
    assert saved["confirmation"]["second"]["scenarios"][0]["verdict"] != "regressed"
    assert saved["comparison"]["scenarios"][0]["verdict"] != "regressed"
    assert (tmp_path / "reports/run1/confirm/results.json").exists()


def test_a_time_regression_seen_again_fails(tmp_path: Path) -> None:
    run = gate(tmp_path, "variant:phase3", FakeRunner(slow_in({1, 2})))
    m = metric(run, "p95_ms")
    assert m["verdict"] == "regressed" and "confirmed by a rerun" in m["reason"]
    assert run.report.exit_code == 1


def test_count_regressions_and_no_confirm_need_no_rerun(tmp_path: Path) -> None:
    more = FakeRunner(lambda *a: 1.0, new_conns=lambda side: 0.5 if side == "B" else 0.01)
    run = gate(tmp_path / "a", "variant:phase3", more)
    assert {c[1] for c in more.calls} == {1} and run.confirmation is None
    assert metric(run, "redis_new_connections_per_request")["verdict"] == "regressed"
    assert run.report.exit_code == 1

    once = FakeRunner(slow_in({1}))
    run = gate(tmp_path / "b", "variant:phase3", once, confirm=False)
    assert {c[1] for c in once.calls} == {1}
    assert metric(run, "p95_ms")["verdict"] == "regressed" and run.report.exit_code == 1
