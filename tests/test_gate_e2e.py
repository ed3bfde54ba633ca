"""The gate end to end: real stacks, interleaved repeats, verdicts and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

PERFAUDIT = [sys.executable, "-m", "perfaudit.cli"]
SHORT = ["--duration", "2", "--warmup", "1"]


def cli(*args: str, timeout: float = 170) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PERFAUDIT, *args], capture_output=True, text=True, timeout=timeout)


def verdicts(report: dict[str, Any]) -> dict[str, str]:
    return {
        f"{s['name']}/{m['metric']}": m["verdict"]
        for s in report["comparison"]["scenarios"]
        for m in s["metrics"]
    }


def test_aa_on_health_is_no_regression_and_its_runs_can_be_kept_and_compared(
    tmp_path: Path,
) -> None:
    out = tmp_path / "reports"
    r = cli("run", "-s", "health", "--baseline", "variant:optimized", "--repeat", "2", *SHORT,
            "--out", str(out), "--json", "--junit", str(tmp_path / "junit.xml"))  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    found = verdicts(report)
    assert found and not {"regressed", "improved"} & set(found.values()), found
    [scenario] = report["scenarios"]
    assert scenario["repeats"] == 2 and scenario["status"] == "pass"
    # The layout: the candidate's repeats, the re-measured baseline's, the comparison.
    run_dir = Path(report["results"]).parent
    candidate = json.loads((run_dir / "results.json").read_text())["scenarios"]
    baseline = json.loads((run_dir / "baseline" / "results.json").read_text())["scenarios"]
    assert [e["repeat"] for e in candidate] == [1, 2] and len(baseline) == 2
    assert (run_dir / "comparison.json").exists()
    # the before/after report, as for a plain run, with the comparison in it
    assert report["report"] and "| baseline |" in (run_dir / "report.md").read_text()
    assert (run_dir / "index.html").exists()
    ET.parse(tmp_path / "junit.xml")

    # Keep the A side as a named baseline, then compare the run with it: same machine and
    # settings, so nothing is re-measured and no verdict is withheld.
    bdir = tmp_path / "baselines"
    r = cli("baseline", "save", "aa", "--from", str(run_dir / "baseline"), "--dir", str(bdir))
    assert r.returncode == 0, r.stderr
    assert "health ×2" in r.stdout
    r = cli("baseline", "list", "--dir", str(bdir))
    assert r.returncode == 0 and "aa" in r.stdout and "1 × 2" in r.stdout
    r = cli("baseline", "show", "aa", "--dir", str(bdir))
    assert r.returncode == 0 and "A/A spread" in r.stdout
    r = cli("compare", "aa", str(run_dir), "--dir", str(bdir), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    again = json.loads(r.stdout)
    assert not {"regressed", "improved"} & set(verdicts(again).values())
    assert not any("not trusted" in n for s in again["comparison"]["scenarios"] for n in s["notes"])
    r = cli("compare", "nope", str(run_dir), "--dir", str(bdir))
    assert r.returncode == 2 and "no baseline 'nope'" in r.stderr


def test_a_stored_baseline_from_this_machine_waits_for_a_canary(tmp_path: Path) -> None:
    """In one process both recordings carry the same calibration, so the canary decides:
    trusted as stored, or re-measured with the canary as baseline repeat 1."""
    from perfaudit import baseline as bl
    from perfaudit.gate import GateOptions, run_gate
    from perfaudit.run.display import QuietEvents
    from perfaudit.run.runner import RunOptions
    from perfaudit.scenario import load_scenarios

    health = [s for s in load_scenarios() if s.name == "health"]
    options = RunOptions(out_dir=tmp_path / "reports", duration_s=2, warmup_s=1)
    first = run_gate(health, options, GateOptions(baseline="variant:optimized", repeat=2),
                     QuietEvents(), ["test"])  # fmt: skip
    bl.save(bl.from_records("here", [first.records["baseline"]]), tmp_path / "bl")
    run = run_gate(health, options, GateOptions(baseline="here", repeat=2,
                   baselines_dir=tmp_path / "bl"), QuietEvents(), ["test"])  # fmt: skip
    comparison = run.report.comparison
    assert comparison is not None
    notes = " | ".join(comparison.notes)
    assert "canary repeat fell" in notes, notes
    trusted = "fell inside" in notes
    assert comparison.mode == ("stored" if trusted else "re-measured"), notes
    baseline = run.records["baseline"].scenarios
    assert baseline[0]["canary"] is True and len(baseline) == (1 if trusted else 2)
    assert (run.out_dir / run.run_id / "repeats" / "canary-1").is_dir()


def test_turning_an_optimization_off_is_a_regression_with_exit_code_1(tmp_path: Path) -> None:
    """webhook-text without the Redis pool against the optimized variant, side by side."""
    r = cli("run", "-s", "webhook-text", "--without", "redis-pool", "--baseline",
            "variant:optimized", "--repeat", "2", *SHORT, "--out", str(tmp_path),
            "--junit", str(tmp_path / "junit.xml"), "--summary", str(tmp_path / "summary.md"))  # fmt: skip
    assert r.returncode == 1, r.stdout + r.stderr
    assert "regressed" in r.stdout and "(exit code 1)" in r.stdout
    root = ET.parse(tmp_path / "junit.xml").getroot()
    failures = {
        c.get("name"): f.get("type") for c in root.iter("testcase") for f in c.findall("failure")
    }
    assert failures.get("compare redis_new_connections_per_request") == "regression", failures
    summary = (tmp_path / "summary.md").read_text()
    assert summary.startswith("## ❌ perfaudit: FAIL") and "regressed" in summary.splitlines()[0]


def test_optimized_against_the_committed_phase3_baseline_is_improved(tmp_path: Path) -> None:
    r = cli("run", "-s", "webhook-text", "--baseline", "phase3", "--repeat", "2",
            "--out", str(tmp_path), "--json")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    [scenario] = report["comparison"]["scenarios"]
    assert scenario["verdict"] == "improved", scenario
    improved = {m["metric"] for m in scenario["metrics"] if m["verdict"] == "improved"}
    assert "redis_new_connections_per_request" in improved
    # phase3.json has no machine calibration, so it is re-measured side by side: at 2 v 2
    # repeats on a busy machine the p95 noise floor can exceed even a ×20 change.
    p95 = next(m for m in scenario["metrics"] if m["metric"] == "p95_ms")
    assert p95["verdict"] in ("improved", "inconclusive") and p95["change"] < -0.5, p95
    assert report["comparison"]["mode"] == "re-measured"


def test_bad_baseline_specs_are_usage_errors(tmp_path: Path) -> None:
    r = cli("run", "-s", "health", "--baseline", "variant:phase4", "--out", str(tmp_path))
    assert r.returncode == 2 and "unknown variant" in r.stderr
    r = cli("run", "-s", "health", "--baseline", "nope", "--out", str(tmp_path))
    assert r.returncode == 2 and "no baseline 'nope'" in r.stderr
    r = cli("run", "-s", "health", "--repeat", "0", "--out", str(tmp_path))
    assert r.returncode == 2 and "--repeat must be >= 1" in r.stderr


def test_a_git_revision_baseline_runs_that_revisions_perfaudit(tmp_path: Path) -> None:
    r = cli("run", "-s", "health", "--baseline", "git:HEAD", "--repeat", "1", "--duration", "1",
            "--warmup", "0.5", "--out", str(tmp_path), "--json")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(r.stdout)
    assert report["comparison"]["baseline"].startswith("git HEAD (")
    assert any("git archive" in n for n in report["comparison"]["notes"])
    run_dir = Path(report["results"]).parent
    assert len(json.loads((run_dir / "baseline" / "results.json").read_text())["scenarios"]) == 1
    assert list(run_dir.glob("git-*/perfaudit/cli.py"))  # the exported tree it ran from
    r = cli("run", "-s", "health", "--baseline", "git:no-such-rev", "--out", str(tmp_path))
    assert r.returncode == 2 and "no-such-rev" in r.stderr
