"""Named baselines: save/load round trip, slimming, listing, comparability."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from test_compare_entries import entry

from perfaudit import baseline as bl
from perfaudit.results import RunRecord, write_atomic

CALIBRATION = {"workload": "web-json-v1", "median_s": 0.09, "spread": 0.01, "times_s": [0.09]}
ENV = {"cpu_model": "AMD EPYC", "cpu_count": 2, "python": "3.11.7", "git_commit": "abc",
       "calibration": CALIBRATION}  # fmt: skip


def record(run_id: str, n: int = 2, env: dict | None = None) -> RunRecord:
    rng = random.Random(run_id)
    entries = []
    for i in range(n):
        e = entry("webhook-text", rng)
        e["repeat"] = i + 1
        e["target"] = {"label": "reference/phase3", "pids": {"service": 1}, "logs": {"x": "/p"},
                       "run_dir": "/tmp/x", "base_url": "http://127.0.0.1:1"}  # fmt: skip
        e["scenario"]["target"] = {"service": "reference", "variant": "phase3", "with": [],
                                   "without": []}  # fmt: skip
        e["server"] = {"process": {"processes": {"service": {"pid": 1, "cpu_seconds": 1.0,
                                                             "timeline": [1, 2]}}}}  # fmt: skip
        entries.append(e)
    return RunRecord(run_id, "2026-01-01T00:00:00+00:00", ["perfaudit", "run"], env or ENV,
                     entries, "complete")  # fmt: skip


def test_save_load_round_trip_keeps_histograms_and_drops_machine_details(tmp_path: Path) -> None:
    b = bl.from_records("phase3", [record("r1")], "the Phase 3 variant")
    path = bl.save(b, tmp_path)
    assert path == tmp_path / "phase3.json" and path.stat().st_mode & 0o777 == 0o644
    loaded = bl.load("phase3", tmp_path)
    assert loaded.to_dict() == json.loads(path.read_text())
    assert loaded.name == "phase3" and loaded.description == "the Phase 3 variant"
    assert loaded.source["runs"] == ["r1"] and loaded.environment == ENV
    [(name, entries)] = loaded.by_scenario().items()
    assert name == "webhook-text" and len(entries) == 2
    e = entries[0]
    assert e["load"]["timeline"][0]["hist"]  # encoded per-second histograms kept
    assert "pids" not in e["target"] and "logs" not in e["target"]
    assert "timeline" not in e["server"]["process"]["processes"]["service"]
    assert loaded.targets()["webhook-text"]["variant"] == "phase3"
    assert loaded.label() == "baseline phase3 (phase3)"
    # by path as well as by name
    assert bl.load(str(path)).name == "phase3"


def test_listing_and_errors(tmp_path: Path) -> None:
    bl.save(bl.from_records("a", [record("r1")]), tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    listed = dict((p.stem, b) for p, b in bl.list_baselines(tmp_path))
    assert isinstance(listed["a"], bl.Baseline) and "not a readable baseline" in str(
        listed["broken"]
    )
    with pytest.raises(bl.BaselineError, match="no baseline 'nope'.*known: a, broken"):
        bl.load("nope", tmp_path)
    with pytest.raises(bl.BaselineError, match="not a baseline name"):
        bl.path_for("../x")
    (tmp_path / "old.json").write_text(json.dumps({"baseline_version": 99}))
    with pytest.raises(bl.BaselineError, match="baseline_version 99"):
        bl.load("old", tmp_path)


def test_read_entries_takes_runs_and_baselines(tmp_path: Path) -> None:
    rec = record("r2")
    write_atomic(tmp_path / "r2" / "results.json", rec)
    label, env, entries = bl.read_entries(str(tmp_path / "r2"))
    assert label == "run r2" and env == ENV and len(entries) == 2
    bl.save(bl.from_records("b", [rec]), tmp_path / "bl")
    label, _, entries = bl.read_entries("b", tmp_path / "bl")
    assert label.startswith("baseline b") and len(entries) == 2


def test_comparability_names_machine_and_settings_differences() -> None:
    b = bl.from_records("p", [record("r1")])
    same = {"webhook-text": {"scenario": b.entries[0]["scenario"]}}
    ok = bl.comparability(b, ENV, same)
    assert ok.untrusted("webhook-text") is None and not ok.needs_remeasure(["webhook-text"])

    other = bl.comparability(b, {**ENV, "cpu_model": "Intel Xeon", "cpu_count": 8}, same)
    why = other.untrusted("webhook-text")
    assert why is not None and "another machine" in why and "Intel Xeon" in why
    assert other.needs_remeasure(["webhook-text"]) == ["webhook-text"]

    longer = {"webhook-text": {"scenario": {**b.entries[0]["scenario"], "duration_s": 30.0}}}
    c = bl.comparability(b, ENV, longer)
    assert "other load settings (duration_s 8.0 there, 30.0 here)" in (
        c.untrusted("webhook-text") or ""
    )

    new = bl.comparability(b, ENV, {"health": {"scenario": {}}})
    assert new.missing == ["health"] and new.needs_remeasure(["health"]) == []
