"""``perfaudit audit`` on a tiny plan, end to end: real stacks, results, summary, report.

One switch, one scenario, two interleaved repeats of 1.5 s windows, and a capacity search
bounded to 100 req/s: about a minute on two cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from perfaudit.audit.plan import AuditPlan
from perfaudit.results import read

CLI = [sys.executable, "-m", "perfaudit.cli"]
MARK = "PERFAUDIT_TEST_AUDIT_MARK"
pytestmark = pytest.mark.timeout(480)


def _perfaudit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=600,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def _marked(mark: str) -> list[list[str]]:
    """Processes still running with ``mark`` in their environment: what the audit started
    (every target process inherits it), whatever else runs on the machine."""
    left = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.environ().get(MARK) == mark:
                left.append(p.info["cmdline"])
        except (psutil.Error, OSError):
            continue
    return left


@pytest.fixture(scope="module")
def audit_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit")
    mark = uuid.uuid4().hex
    proc = _perfaudit(
        "audit", "--switch", "text-fastpath", "-s", "webhook-text", "--repeat", "2",
        "--duration", "1.5", "--warmup", "0.5", "--capacity-max-rate", "100",
        "--no-instructions", "--no-profiles", "--out", str(out),
        "--publish", str(out / "published"), "--docs", str(out / "docs" / "performance.md"),
        env={MARK: mark},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stray = _marked(mark)
    assert not stray, f"processes left running: {stray}"
    (folder,) = [p for p in out.iterdir() if p.name.startswith("audit-")]
    (folder / "stdout.txt").write_text(proc.stdout)
    return folder


def test_the_audit_writes_every_configuration_and_repeat(audit_folder: Path) -> None:
    record = json.loads((audit_folder / "audit.json").read_text())
    assert record["status"] == "complete"
    plan = AuditPlan.from_dict(record["plan"])
    assert [c.key for c in plan.configs] == [
        "phase3", "optimized", "add-text-fastpath", "drop-text-fastpath"
    ]  # fmt: skip
    for c in plan.configs:
        entries = read(audit_folder / "ablation" / c.key).scenarios
        assert sorted((e["name"], e["repeat"]) for e in entries) == [
            ("webhook-text", 1), ("webhook-text", 2)
        ]  # fmt: skip
        switches = set(entries[0]["target"]["switches"])
        if c.role == "add-one":
            assert switches == {"text-fastpath"}
        if c.role == "drop-one":
            assert "text-fastpath" not in switches and switches
    # What each part cost is recorded and printed.
    assert set(record["parts"]) == {"ablation", "capacity"}
    assert all(p["wall_s"] > 0 for p in record["parts"].values())
    out = (audit_folder / "stdout.txt").read_text()
    assert "ablation: 8 runs in" in out and "capacity:" in out


def test_the_summary_has_each_switch_its_capacity_and_targets(audit_folder: Path) -> None:
    summary = json.loads((audit_folder / "summary.json").read_text())
    (switch,) = summary["switches"]
    assert switch["name"] == "text-fastpath" and switch["code"]
    for role in ("add_one", "drop_one"):
        result = switch[role]["webhook-text"]
        metrics = {m["metric"]: m for m in result["metrics"]}
        assert {"p50_ms", "p95_ms", "p99_ms", "redis_commands_per_request"} <= set(metrics)
        assert all(m["verdict"] in ("improved", "regressed", "unchanged", "inconclusive")
                   for m in metrics.values())  # fmt: skip
    assert switch["verdict"] in summary["headline"]
    (cap,) = summary["capacity"]
    for variant in ("phase3", "optimized"):
        steps = cap[variant]["steps"]
        assert steps and steps[0]["rate"] == 50
        # The search stops at the first failing or invalid step.
        stops = [i for i, s in enumerate(steps) if s["verdict"] != "pass"]
        assert not stops or all(s["rate"] < steps[stops[0]]["rate"] for s in steps[: stops[0]])
    (target,) = [t for t in summary["targets"] if t["scenario"] == "webhook-text"]
    assert target["limit_ms"] == 200 and target["phase3"]["p95_ms"] > 0


def test_reports_render_every_section_and_render_again_the_same(audit_folder: Path) -> None:
    md = (audit_folder / "report.md").read_text()
    html = (audit_folder / "index.html").read_text()
    summary = json.loads((audit_folder / "summary.json").read_text())
    assert md.splitlines()[0].startswith("#") and summary["headline"] in md
    for section in ("Capacity", "Targets", "text-fastpath", "Remaining opportunities"):
        assert section in md and section in html
    before = {p.name: p.read_bytes() for p in audit_folder.iterdir() if p.is_file()}
    proc = _perfaudit("audit", "--render", str(audit_folder))
    assert proc.returncode == 0, proc.stderr
    for name in ("report.md", "index.html", "summary.json"):
        assert (audit_folder / name).read_bytes() == before[name], name
    # The published copy re-renders from its summary.json alone (as the committed one does).
    published = audit_folder.parent / "published"
    kept = (published / "report.md").read_bytes()
    (published / "report.md").unlink()
    proc = _perfaudit("audit", "--render", str(published))
    assert proc.returncode == 0, proc.stderr
    assert (published / "report.md").read_bytes() == kept
    docs = (audit_folder.parent / "docs" / "performance.md").read_text()
    assert "text-fastpath" in docs


def test_bad_audit_input_is_a_one_line_usage_error(tmp_path: Path) -> None:
    proc = _perfaudit("audit", "--switch", "nope", "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "unknown switch 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    proc = _perfaudit("audit", "--render", str(tmp_path))
    assert proc.returncode == 2 and "not an audit folder" in proc.stderr
    assert list(tmp_path.iterdir()) == []
