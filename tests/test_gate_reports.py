"""CI outputs: JUnit XML parses and lists the failures; the Markdown summary; exit codes."""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from pathlib import Path

from test_compare_entries import FAST, repeats

from perfaudit.analysis.compare import compare_entries
from perfaudit.analysis.thresholds import evaluate
from perfaudit.report import junit, markdown_summary
from perfaudit.report.outcome import GateReport, build_report


@functools.cache  # reports are only read
def gated(with_invalid: bool = False) -> GateReport:
    slow = repeats("webhook-text", 2, scale=1.4)
    quiet = repeats("health", 5)
    for e in slow:  # a failed threshold on the regressed scenario
        e["checks"] = [c.to_dict() for c in evaluate({"p95_ms": 50.0}, e["summary"])]
    for e in quiet:
        e["checks"] = [c.to_dict() for c in evaluate({"error_rate": 0.01}, e["summary"])]
    noisy = repeats("agent-tools", 7, scale=1.3)  # slower, but the baseline is not trusted
    if with_invalid:
        noisy[0]["validity"] = {
            "valid": False,
            "reasons": ["generator process 0 used 95% of a core"],
        }
        noisy[0]["repeat"] = 1
    base = [*repeats("webhook-text", 1), *repeats("health", 4), *repeats("agent-tools", 6)]
    comparison = compare_entries(
        base, [*slow, *quiet, *noisy], baseline_label="baseline phase3", candidate_label="run x",
        mode="stored", settings=FAST, untrusted={"agent-tools": "recorded on another machine"},
    )  # fmt: skip
    return build_report(
        "perfaudit run x", [*slow, *quiet, *noisy], comparison, "reports/x/results.json"
    )


def test_junit_parses_and_lists_threshold_failures_and_regressions(tmp_path: Path) -> None:
    report = gated()
    assert report.exit_code == 1
    junit.write(report, tmp_path / "junit.xml")
    root = ET.parse(tmp_path / "junit.xml").getroot()
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases)  # type: ignore[arg-type]
    failed = {(c.get("classname"), c.get("name"), f.get("type"))
              for c in cases for f in c.findall("failure")}  # fmt: skip
    assert ("perfaudit.webhook-text", "threshold p95_ms", "threshold") in failed
    assert ("perfaudit.webhook-text", "compare p95_ms", "regression") in failed
    assert not any(cls == "perfaudit.health" for cls, _, _ in failed)
    assert int(suite.get("failures")) == len(failed)  # type: ignore[arg-type]
    skipped = {(c.get("classname"), c.get("name")): c.find("skipped") for c in cases}
    why = skipped[("perfaudit.agent-tools", "compare p95_ms")]
    assert why is not None and "would be regressed, but recorded on another machine" in why.get(
        "message", ""
    )
    names = {c.get("name") for c in cases if c.get("classname") == "perfaudit.health"}
    assert {"validity", "threshold error_rate", "compare p95_ms"} <= names


def test_invalid_repeats_are_errors_and_win_the_exit_code() -> None:
    report = gated(with_invalid=True)
    assert report.exit_code == 3 and report.headline.startswith("INVALID")
    root = ET.fromstring(junit.render(report))
    errors = [c for c in root.iter("testcase") if c.find("error") is not None]
    assert [(c.get("classname"), c.get("name")) for c in errors] == [
        ("perfaudit.agent-tools", "validity")
    ]
    assert "repeat 1: generator process 0 used 95% of a core" in errors[0].find("error").text  # type: ignore[union-attr, operator]


def test_markdown_summary_has_the_verdict_on_top_and_a_table_per_scenario() -> None:
    text = markdown_summary.render(gated())
    first = text.splitlines()[0]
    assert first.startswith("## ❌ perfaudit: FAIL") and "regressed" in first
    assert "exit code **1**" in text and "baseline: baseline phase3 (stored)" in text
    assert "| scenario | target | repeats | thresholds | vs baseline | status |" in text
    assert "❌ p95_ms" in text  # the failed threshold, in the scenario row
    assert "<details open><summary><b>webhook-text</b>: 🔴 regressed" in text
    assert "| metric | baseline | candidate | change | 95 % CI | noise floor | verdict |" in text
    assert "not trusted for a verdict: recorded on another machine" in text


def test_a_pass_reads_as_a_pass() -> None:
    quiet = repeats("health", 5)
    base = repeats("health", 4)
    c = compare_entries(base, quiet, baseline_label="b", candidate_label="c", mode="stored",
                        settings=FAST)  # fmt: skip
    report = build_report("t", quiet, c)
    assert report.exit_code == 0 and report.headline.startswith("PASS")
    assert markdown_summary.render(report).startswith("## ✅ perfaudit: PASS")
