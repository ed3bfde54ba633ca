"""Findings everywhere a user looks: the terminal table, report.md and index.html, the JUnit
cases and the CI summary, ``perfaudit diagnose`` and its exit codes, and the diagnosis a real
``perfaudit run`` stores in results.json."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from perfaudit import results
from perfaudit.analysis import findings
from perfaudit.analysis.findings import Finding, Impact, Location, NotChecked, Rule, diagnose
from perfaudit.analysis.findings._gather import RunDiagnosis, exit_code, gather
from perfaudit.cli import app
from perfaudit.commands.run import merge_profiles
from perfaudit.profile import parse_cli
from perfaudit.report import junit, markdown_summary
from perfaudit.report.findings_terminal import print_findings
from perfaudit.report.outcome import build_report
from perfaudit.report.render import render
from perfaudit.stack.net import free_port

SAMPLE = Path(__file__).parent / "data" / "sample-run" / "results.json"
SECRET = "s3cr3t-value-that-must-not-show"


def loop_finding(scenario: str = "e2e-flow") -> Finding:
    return Finding.make(
        rule="loop-blocked",
        title="POST /telegram/webhook blocks the event loop 21 ms per request",
        impact=Impact(21.0, "ms/request"),
        evidence={
            "lag_p99_ms": 21.3,
            "blocking_samples": 412,
            "window": "steady 2-10 s, py-spy:idle",
        },
        where=(
            Location("handle_update", "app/webhook.py", 88, "service"),
            Location("time.sleep", "<built-in>", None, "service"),
        ),
        fix="await asyncio.sleep, or move the call to a thread (asyncio.to_thread)",
        confirm=f"perfaudit run -s {scenario} and check loop_lag p99",
        scenario=scenario,
        switches=("callback-background",),
    )


def hostile_finding() -> Finding:
    """User-controlled text: markup, HTML and a secret in a URL."""
    return Finding.make(
        rule="upstream-dominates",
        title="GET /items/[id] <b>waits</b> on the upstream",
        impact=Impact(0.4, "ms/request"),
        evidence={"url": f"http://127.0.0.1:1/cb?secret={SECRET}", "share": 0.42},
        where=(Location("fetch", "app/client.py", 12),),
        fix="reuse one client",
        confirm="perfaudit run -s health",
        scenario="health",
    )


def stored(*found: Finding, not_checked: tuple[NotChecked, ...] = ()) -> dict[str, Any]:
    return {
        "findings": [f.to_dict() for f in found],
        "not_checked": [n.to_dict() for n in not_checked],
        "rules": ["loop-blocked", "upstream-dominates", "redis-round-trips"],
    }


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """The sample run with a diagnosis stored in each entry, as ``perfaudit run`` writes it."""
    data = json.loads(SAMPLE.read_text())
    by_name = {e["name"]: e for e in data["scenarios"]}
    by_name["e2e-flow"]["diagnosis"] = stored(loop_finding())
    by_name["health"]["diagnosis"] = stored(
        hostile_finding(),
        not_checked=(NotChecked("redis-round-trips", "no Redis metrics (set target.redis_url)"),),
    )
    by_name["telegram-job"]["diagnosis"] = stored()
    folder = tmp_path / data["run_id"]
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(data))
    return folder


def entries(run_dir: Path) -> list[dict[str, Any]]:
    return results.read(run_dir).scenarios


# -- terminal --------------------------------------------------------------------------
def terminal(diagnosis: RunDiagnosis, verbose: bool = False) -> str:
    console = Console(record=True, width=250, color_system=None)
    print_findings(diagnosis, console, "RUN-ID", verbose=verbose)
    return console.export_text()


def test_terminal_table_lists_findings_most_severe_first_with_where_fix_and_switch(
    run_dir: Path,
) -> None:
    out = terminal(gather(entries(run_dir)))
    assert "findings: 1 high, 1 low" in out
    first, second = out.index("blocks the event loop"), out.index("waits</b>")
    assert first < second  # high before low
    assert "app/webhook.py:88 handle_update" in out and "21 ms/request" in out
    assert "switch" in out.splitlines()[2] and "callback-background" in out
    assert "GET /items/[id]" in out  # brackets are text, not Rich markup
    assert SECRET not in out
    # Not verbose: one summary line for the rules that could not look.
    assert "1 rule(s) could not look in some scenario: redis-round-trips" in out
    assert "perfaudit diagnose RUN-ID" in out and "set target.redis_url" not in out
    assert "set target.redis_url" in terminal(gather(entries(run_dir)), verbose=True)


def test_terminal_without_findings_says_so_and_how_many_rules_ran(run_dir: Path) -> None:
    quiet = [e for e in entries(run_dir) if e["name"] == "telegram-job"]
    out = terminal(gather(quiet))
    assert "no findings: 3 rule(s) ran on 1 scenario(s)" in out
    assert "could not look" not in out


# -- report.md and index.html ----------------------------------------------------------
def test_reports_have_a_findings_section_with_evidence_location_fix_confirm_switches(
    run_dir: Path,
) -> None:
    written = render(run_dir)
    html, md = written.html.read_text(), written.markdown.read_text()
    for text in (html, md):
        assert "Findings" in text and "1 high, 1 low" in text
        assert "POST /telegram/webhook blocks the event loop 21 ms per request" in text
        assert "lag_p99_ms" in text and "21.3" in text and "steady 2-10 s, py-spy:idle" in text
        assert "app/webhook.py:88 handle_update [service]" in text
        assert "asyncio.to_thread" in text and "check loop_lag p99" in text
        assert "callback-background" in text
        assert "no Redis metrics (set target.redis_url)" in text  # the rule that could not look
        assert "No findings." in text  # telegram-job
        assert SECRET not in text and "secret=[REDACTED]" in text
    assert 'data-rule="loop-blocked" data-severity="high"' in html
    assert "<b>waits</b>" not in html and "&lt;b&gt;waits&lt;/b&gt;" in html
    assert "<b>waits</b>" not in md
    # The finding sits in its scenario's section, not another's.
    section = md.split("## e2e-flow", 1)[1].split("\n## ", 1)[0]
    assert "blocks the event loop" in section and "waits" not in section


def test_a_run_from_before_diagnosis_is_diagnosed_when_rendered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(findings, "rules", lambda: (p95_rule(),))
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "results.json").write_text(SAMPLE.read_text())  # no "diagnosis" anywhere
    md = render(folder).markdown.read_text()
    assert "e2e-flow p95 is" in md and "p95-budget" in md


# -- JUnit and the CI summary ----------------------------------------------------------
def finding_cases(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)
    return {
        f"{c.get('classname')}|{c.get('name')}": c
        for c in root.iter("testcase")
        if str(c.get("classname")).startswith("findings.")
    }


def test_junit_findings_pass_as_warnings_by_default(run_dir: Path) -> None:
    es = entries(run_dir)
    report = build_report("perfaudit run x", es)
    xml = junit.render(report, gather(es))
    cases = finding_cases(xml)
    case = cases[
        "findings.e2e-flow|loop-blocked: "
        "POST /telegram/webhook blocks the event loop 21 ms per request"
    ]
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["severity"] == "high" and props["impact"] == "21 ms/request"
    out = case.findtext("system-out") or ""
    assert "lag_p99_ms 21.3" in out and "where: app/webhook.py:88 handle_update" in out
    assert "confirm: perfaudit run -s e2e-flow" in out
    assert len(cases) == 2 and not any(c.find("failure") is not None for c in cases.values())
    root = ET.fromstring(xml)
    assert root.get("failures") == "0"
    assert SECRET not in xml


def test_junit_fail_on_findings_fails_only_those_at_or_above(run_dir: Path) -> None:
    es = entries(run_dir)
    report = build_report("perfaudit run x", es)
    xml = junit.render(report, gather(es), "medium")
    cases = finding_cases(xml)
    failed = {k: c.find("failure") for k, c in cases.items()}
    high = next(f for k, f in failed.items() if k.startswith("findings.e2e-flow|"))
    low = next(f for k, f in failed.items() if k.startswith("findings.health|"))
    assert high is not None and high.get("type") == "finding"
    assert "high finding (--fail-on-findings medium)" in str(high.get("message"))
    assert low is None
    root = ET.fromstring(xml)
    assert root.get("failures") == "1"
    props = {p.get("name"): p.get("value") for p in root.find("testsuite").iter("property")}  # type: ignore[union-attr]
    assert props["exit_code"] == "1" and props["findings"] == "1 high, 1 low"


def test_ci_summary_counts_findings_by_severity_and_lists_the_top_ones(run_dir: Path) -> None:
    es = entries(run_dir)
    report = build_report("perfaudit run x", es)
    text = markdown_summary.render(report, gather(es), "high")
    assert "### Findings: 1 high, 1 low" in text
    assert "findings at or above **high** fail this job" in text
    table = text.split("### Findings", 1)[1]
    assert table.index("blocks the event loop") < table.index("waits")
    assert "app/webhook.py:88 handle_update" in table
    assert "exit code **1**" in text and text.startswith("## ❌")
    assert "`redis-round-trips`" in table
    # Without --fail-on-findings the same findings leave the job green.
    assert "exit code **0**" in markdown_summary.render(report, gather(es))


def test_findings_raise_the_exit_code_only_from_ok(run_dir: Path) -> None:
    d = gather(entries(run_dir))
    assert exit_code(0, d, None) == 0
    assert exit_code(0, d, "low") == 1 and exit_code(0, d, "high") == 1
    assert exit_code(3, d, "low") == 3  # an invalid run keeps its code
    quiet = gather([e for e in entries(run_dir) if e["name"] == "telegram-job"])
    assert exit_code(0, quiet, "low") == 0


# -- diagnose(): one rule's failure is one rule's -----------------------------------------
def p95_rule() -> Rule:
    """A real rule on the stored figures: p95 over 1 ms is a finding, its impact the excess."""

    def check(entry: Mapping[str, Any]) -> list[Finding] | NotChecked:
        p95 = entry["summary"].get("p95_ms")
        if p95 is None:
            return NotChecked("p95-budget", "no latency measured")
        if p95 <= 1.0:
            return []
        return [
            Finding.make(
                rule="p95-budget", title=f"{entry['name']} p95 is {p95:.1f} ms",
                impact=Impact(p95 - 1.0, "ms/request"), evidence={"p95_ms": p95, "window": "steady"},
                where=(Location("handler", "app.py", 7),), fix="make it faster",
                confirm=f"perfaudit run -s {entry['name']}",
            )
        ]  # fmt: skip

    return Rule("p95-budget", "p95 over 1 ms", check)


def boom_rule() -> Rule:
    def check(entry: Mapping[str, Any]) -> list[Finding]:
        return [entry["summary"]["no such key"]]

    return Rule("boom", "a rule with a bug", check)


def needs_rule() -> Rule:
    return Rule(
        "needs-redis", "needs Redis", lambda e: NotChecked("needs-redis", "no Redis metrics")
    )


@pytest.fixture
def fake_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(findings, "rules", lambda: (boom_rule(), needs_rule(), p95_rule()))


@pytest.mark.usefixtures("fake_rules")
def test_a_rule_that_raises_is_not_checked_and_the_others_still_run() -> None:
    entry = json.loads(SAMPLE.read_text())["scenarios"][0]
    d = diagnose(entry)
    assert d["rules"] == ["boom", "needs-redis", "p95-budget"]
    boom = next(n for n in d["not_checked"] if n["rule"] == "boom")
    assert boom["reason"].startswith("the rule failed: KeyError")
    assert [f["rule"] for f in d["findings"]] == ["p95-budget"]
    # Reference target: the scenario is filled in; the finding is JSON-ready.
    assert d["findings"][0]["scenario"] == entry["name"]
    json.dumps(d)


# -- perfaudit diagnose ----------------------------------------------------------------
def cli(*args: str) -> Any:
    return CliRunner().invoke(app, ["diagnose", *args])


def sample_p95s() -> dict[str, float]:
    return {e["name"]: e["summary"]["p95_ms"] for e in json.loads(SAMPLE.read_text())["scenarios"]}


@pytest.mark.usefixtures("fake_rules")
def test_diagnose_json_reruns_the_rules_and_leaves_the_results_alone(run_dir: Path) -> None:
    before = (run_dir / "results.json").read_bytes()
    r = cli(str(run_dir), "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    # The stored findings (loop-blocked, ...) are replaced by what today's rules see.
    slow = {n for n, p95 in sample_p95s().items() if p95 > 1.0}
    assert {f["scenario"] for f in out["findings"]} == slow and slow
    assert {f["rule"] for f in out["findings"]} == {"p95-budget"}
    assert {(n["rule"], n["scenario"]) for n in out["not_checked"] if n["rule"] == "boom"} == {
        ("boom", name) for name in sample_p95s()
    }
    assert out["rules"] == ["boom", "needs-redis", "p95-budget"]
    assert sum(out["counts"].values()) == len(out["findings"])
    assert (run_dir / "results.json").read_bytes() == before


@pytest.mark.usefixtures("fake_rules")
def test_diagnose_filters_and_fail_on_findings_exit_codes(run_dir: Path) -> None:
    p95 = sample_p95s()
    worst = max(p95, key=lambda n: p95[n])
    r = cli(str(run_dir / "results.json"), "-s", worst, "--rule", "p95-budget", "--json")
    out = json.loads(r.stdout)
    assert r.exit_code == 0 and [f["scenario"] for f in out["findings"]] == [worst]
    assert out["rules"] == ["p95-budget"] and out["not_checked"] == []
    assert cli(str(run_dir), "--fail-on-findings", "low").exit_code == 1
    r = cli(str(run_dir), "--rule", "needs-redis", "--fail-on-findings", "low")
    assert r.exit_code == 0, r.output  # nothing found by that rule
    assert "no findings: 1 rule(s) ran on 3 scenario(s)" in r.output
    assert "no Redis metrics" in r.output  # diagnose lists every rule that could not look
    r = cli(str(run_dir), "-s", worst, "--fail-on-findings", "low")
    assert r.exit_code == 1 and "FAILED: 1 finding(s) at or above low" in r.output
    assert "make it faster" in r.output and "app.py:7 handler" in r.output


@pytest.mark.usefixtures("fake_rules")
def test_diagnose_usage_errors_exit_2_with_a_suggestion(run_dir: Path, tmp_path: Path) -> None:
    r = cli(str(run_dir), "--rule", "p95-budgt")
    assert r.exit_code == 2 and "unknown rule 'p95-budgt'" in r.output
    assert "did you mean 'p95-budget'?" in r.output
    r = cli(str(run_dir), "-s", "helth")
    assert r.exit_code == 2 and "did you mean 'health'?" in r.output
    r = cli(str(run_dir), "--fail-on-findings", "hihg")
    assert r.exit_code == 2 and "did you mean 'high'?" in r.output
    assert cli(str(tmp_path / "nowhere")).exit_code == 2
    assert cli().exit_code == 2


@pytest.mark.usefixtures("fake_rules")
def test_diagnose_rules_lists_ids_and_titles() -> None:
    r = cli("--rules")
    assert r.exit_code == 0
    assert "p95-budget" in r.output and "p95 over 1 ms" in r.output and "boom" in r.output


# -- perfaudit run ---------------------------------------------------------------------
def test_diagnose_flag_adds_the_profilers_the_rules_read_to_the_users() -> None:
    given = parse_cli(["py-spy:rate=250"])
    assert given is not None
    merged = {s.name: s for s in merge_profiles(given)}
    assert set(merged) == {"py-spy", "pyinstrument", "memray"}
    assert merged["py-spy"].get("rate") == 250 and merged["py-spy"].get("idle") is True
    assert merge_profiles(()) == merge_profiles(merge_profiles(()))  # idempotent


def test_a_real_run_stores_a_diagnosis_in_every_entry(tmp_path: Path) -> None:
    port = free_port()
    scenario = tmp_path / "ext-diag.yaml"
    scenario.write_text(
        f"""name: ext-diag
target:
  service: external
  url: http://127.0.0.1:{port}
  start: "{sys.executable} -m perfaudit.load.testserver --port {port} --asyncio"
  ready_path: /ok
request:
  path: /ok
load:
  rate: 50
warmup: 0.3s
duration: 1s
"""
    )
    cmd = [sys.executable, "-m", "perfaudit.cli", "run", str(scenario), "--out", str(tmp_path)]
    bad = subprocess.run([*cmd, "--fail-on-findings", "urgent"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown severity 'urgent'" in bad.stderr
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # After the results table: the findings table, or one line saying there are none.
    assert "findings:" in r.stdout or "no findings:" in r.stdout
    [path] = tmp_path.glob("*/results.json")
    record = results.read(path)
    assert record.scenarios
    for entry in record.scenarios:
        d = entry["diagnosis"]
        assert set(d) == {"findings", "not_checked", "rules"}
        assert d["rules"] == [r.id for r in findings.rules()]
