"""Planning a gated run: which side runs what, and what is trusted as stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfaudit import baseline as bl
from perfaudit.gate import GateError, GateOptions, parse_variant, plan
from perfaudit.results import RunRecord, environment
from perfaudit.run.kinds import with_overrides
from perfaudit.run.runner import RunOptions
from perfaudit.scenario import load_scenarios


def test_variant_labels_parse_like_target_labels() -> None:
    assert parse_variant("phase3") == ("phase3", (), ())
    assert parse_variant("phase3+redis-pool+http-keepalive") == (
        "phase3", ("redis-pool", "http-keepalive"), ()
    )  # fmt: skip
    assert parse_variant("optimized-redis-pool") == ("optimized", (), ("redis-pool",))
    with pytest.raises(GateError, match="unknown variant"):
        parse_variant("fast")
    with pytest.raises(GateError, match=r"expected \+switch or -switch"):
        parse_variant("optimized-turbo")


def _stored(tmp: Path, options: RunOptions, env: dict) -> Path:
    scenarios = [s for s in load_scenarios() if s.name in ("health", "webhook-text")]
    entries = []
    for s in scenarios:
        sc = with_overrides(s, options.duration_s, options.warmup_s)
        sc = sc.__class__(**{**sc.__dict__, "target": sc.target.__class__(variant="phase3")})
        entries.append({"name": s.name, "kind": s.kind, "scenario": sc.to_dict(),
                        "target": {"label": "reference/phase3"}})  # fmt: skip
    rec = RunRecord("r", "2026-01-01T00:00:00+00:00", ["x"], env, entries, "complete")
    bl.save(bl.from_records("p3", [rec]), tmp)
    return tmp


def test_a_comparable_stored_baseline_is_trusted_and_nothing_is_rerun(tmp_path: Path) -> None:
    options = RunOptions(duration_s=3, warmup_s=1)
    d = _stored(tmp_path, options, environment())
    scenarios = [s for s in load_scenarios() if s.name in ("health", "webhook-text", "agent-tools")]
    p = plan(scenarios, options, GateOptions(baseline="p3", repeat=2, baselines_dir=d))
    assert [s.key for s in p.sides] == ["candidate"] and p.mode == "stored"
    assert p.remeasured == [] and p.stored is not None
    assert any("has no agent-tools" in n for n in p.notes)
    # Same machine and calibration: time metrics still wait for a canary repeat each.
    assert p.canary == ["health", "webhook-text"]
    assert {n: s.target.variant for n, s in p.again.items()} == {
        "health": "phase3", "webhook-text": "phase3"
    }  # fmt: skip


def test_another_machine_or_other_settings_means_the_baseline_is_remeasured(
    tmp_path: Path,
) -> None:
    options = RunOptions(duration_s=3, warmup_s=1)
    d = _stored(tmp_path, options, {**environment(), "cpu_model": "Other CPU"})
    scenarios = [s for s in load_scenarios() if s.name in ("health", "webhook-text")]
    p = plan(scenarios, options, GateOptions(baseline="p3", repeat=2, baselines_dir=d))
    assert [s.key for s in p.sides] == ["baseline", "candidate"] and p.mode == "re-measured"
    base = p.sides[0]
    assert {s.target.variant for s in base.scenarios} == {"phase3"}
    assert base.options.variant is None  # the baseline side keeps its own targets
    assert any("another machine" in n and "re-measured side by side" in n for n in p.notes)

    d2 = _stored(tmp_path / "same", options, environment())
    longer = RunOptions(duration_s=5, warmup_s=1)
    p = plan(scenarios, longer, GateOptions(baseline="p3", repeat=2, baselines_dir=d2))
    assert p.remeasured == ["health", "webhook-text"]
    assert any("other load settings (duration_s 3 there, 5 here)" in n for n in p.notes)


def test_a_variant_baseline_runs_side_by_side() -> None:
    scenarios = [s for s in load_scenarios() if s.name == "webhook-text"]
    options = RunOptions(without=("redis-pool",))
    p = plan(scenarios, options, GateOptions(baseline="variant:optimized", repeat=3))
    base, cand = p.sides
    assert base.scenarios[0].target.label() == "reference/optimized"
    assert cand.options.without == ("redis-pool",) and base.options.without == ()
