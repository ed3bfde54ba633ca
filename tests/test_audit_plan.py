"""The audit's plan is what the catalog says: add-one and drop-one per switch, on the
scenarios it touches, against references that run every one of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from perfaudit.audit.analyze import headline, interactions, switch_verdict
from perfaudit.audit.plan import (
    ADD_ONE,
    DROP_ONE,
    OPTIMIZED,
    PHASE3,
    PRESETS,
    AuditPlan,
    AuditPlanError,
    build_plan,
)
from perfaudit.refservice import switches as sw
from perfaudit.scenario import load_scenarios

AVAILABLE = {s.name: s.kind for s in load_scenarios(None) if s.target.is_reference}


def test_every_switch_gets_add_one_and_drop_one_on_the_scenarios_it_touches() -> None:
    plan = build_plan(AVAILABLE, PRESETS["full"])
    assert set(plan.switches) == {s.name for s in sw.CATALOG if set(s.touches) & set(AVAILABLE)}
    for name in plan.switches:
        configs = plan.ablation_of(name)
        assert sorted(c.role for c in configs) == [ADD_ONE, DROP_ONE]
        touched = [t for t in sw.BY_NAME[name].touches if t in AVAILABLE][:3]
        for c in configs:
            assert c.scenarios == tuple(touched)
            assert set(c.scenarios) <= set(plan.config(c.reference).scenarios)
        add = next(c for c in configs if c.role == ADD_ONE)
        drop = next(c for c in configs if c.role == DROP_ONE)
        assert (add.variant, add.with_, add.without) == (PHASE3, (name,), ())
        assert (drop.variant, drop.with_, drop.without) == (OPTIMIZED, (), (name,))
    # The references also run what the targets table needs (health: no switch touches it).
    assert "health" in plan.config(PHASE3).scenarios
    assert plan.config(PHASE3).scenarios == plan.config(OPTIMIZED).scenarios


def test_all_touched_and_quick_bound_the_scenarios_per_switch() -> None:
    from dataclasses import replace

    every = build_plan(AVAILABLE, replace(PRESETS["full"], max_touched=None))
    quick = build_plan(AVAILABLE, PRESETS["quick"])
    for name in every.switches:
        touched = tuple(t for t in sw.BY_NAME[name].touches if t in AVAILABLE)
        assert every.ablation_of(name)[0].scenarios == touched
        assert quick.ablation_of(name)[0].scenarios == touched[:1]
    assert quick.settings.repeats >= 2  # one repeat gives no noise floor: no verdict
    assert {c.role for c in quick.configs} == {PHASE3, OPTIMIZED, ADD_ONE}  # add-one only
    assert not quick.instructions and not quick.profile_scenarios


def test_a_chosen_switch_and_scenario_make_a_small_plan_that_round_trips() -> None:
    plan = build_plan(AVAILABLE, PRESETS["full"], ["atomic-getdel"], ["callback-unknown"])
    assert [c.key for c in plan.configs] == [
        "phase3", "optimized", "add-atomic-getdel", "drop-atomic-getdel"
    ]  # fmt: skip
    assert all(c.scenarios == ("callback-unknown",) for c in plan.configs)
    assert plan.runs_per_repeat() == 4
    assert AuditPlan.from_dict(plan.to_dict()) == plan


@pytest.mark.parametrize(
    ("switches", "scenarios", "message"),
    [
        (["no-such-switch"], None, "unknown switch 'no-such-switch'"),
        (None, ["no-such-scenario"], "unknown scenario 'no-such-scenario'"),
        (["stream-audio"], ["health"], "no switch touches the chosen scenarios"),
    ],
)
def test_bad_choices_are_one_line_errors(
    switches: list[str] | None, scenarios: list[str] | None, message: str
) -> None:
    with pytest.raises(AuditPlanError, match=message):
        build_plan(AVAILABLE, PRESETS["full"], switches, scenarios)


def _m(metric: str, verdict: str, change: float | None = None) -> dict[str, object]:
    return {"metric": metric, "label": metric, "verdict": verdict, "change": change}


def test_a_switch_verdict_counts_only_what_the_gate_decided() -> None:
    assert (
        switch_verdict([{"metrics": [_m("p95_ms", "improved"), _m("p99_ms", "inconclusive")]}])
        == "improved"
    )
    assert switch_verdict([{"metrics": [_m("p95_ms", "inconclusive")]}]) == "inconclusive"
    assert (
        switch_verdict([{"metrics": [_m("a", "unchanged"), _m("b", "unchanged")]}]) == "unchanged"
    )
    assert switch_verdict([{"metrics": [_m("a", "improved"), _m("b", "regressed")]}]) == "mixed"
    assert switch_verdict([{"verdict": "missing", "metrics": []}]) == "inconclusive"
    text = headline(
        [{"verdict": v} for v in ("improved",) * 7 + ("unchanged",) * 2 + ("inconclusive",)]
    )
    assert text == "7 switches improved, 2 unchanged, 1 inconclusive at this resolution"


def test_add_one_and_drop_one_disagreeing_is_an_interaction() -> None:
    add = {"s": {"metrics": [_m("p95_ms", "improved", -0.3), _m("p99_ms", "inconclusive")]}}
    drop = {"s": {"metrics": [_m("p95_ms", "unchanged", 0.0), _m("p99_ms", "improved")]}}
    found = interactions(add, drop)
    assert [(f["metric"], f["add_one"], f["drop_one"]) for f in found] == [
        ("p95_ms", "improved", "unchanged")
    ]


def test_resuming_keeps_the_complete_parts_and_runs_only_the_rest(tmp_path: Path) -> None:
    from perfaudit.audit.runner import read_record, run_audit
    from perfaudit.run.display import QuietEvents

    plan = build_plan(AVAILABLE, PRESETS["quick"], ["atomic-getdel"], ["callback-unknown"])
    done = {"status": "complete", "wall_s": 12.0, "runs": 4}
    stored = {"audit_id": "audit-x", "created_at": "2026-12-02T00:00:00+00:00",
              "environment": {"cpu": "kept"}, "command": ["perfaudit", "audit"],
              "parts": {"ablation": done, "instructions": {"status": "interrupted"}}}  # fmt: skip
    ran: list[str] = []
    folder = run_audit(plan, {}, tmp_path, QuietEvents(), ["resume"], resume=stored,
                       on_part=lambda part, info: ran.append(part))  # fmt: skip
    record = read_record(folder)
    assert folder.name == "audit-x" and ran == []  # quick: no instructions, nothing left
    assert record["parts"] == {"ablation": done} and record["status"] == "complete"
    assert record["environment"] == {"cpu": "kept"}
    assert record["command"] == ["perfaudit", "audit", "&&", "resume"]
