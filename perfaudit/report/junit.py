"""JUnit XML: one test case per scenario and check, so CI systems show failures natively.

- ``threshold <key>``: a ``<failure type="threshold">`` when the limit is not met;
- ``compare <metric>``: a ``<failure type="regression">`` when regressed, ``<skipped>``
  when inconclusive (too noisy to say: its message names the smallest change the
  comparison could have detected), passed when unchanged or improved;
- ``validity``: an ``<error>`` when the run is invalid (generator saturated, a process
  exited): the other cases of that scenario are not to be trusted;
- ``findings.<scenario>`` / ``<rule>: <title>``: one case per finding, with its severity
  as a property and its evidence, location, fix and confirmation in ``<system-out>``. It
  passes (a warning that does not fail CI) unless ``--fail-on-findings SEVERITY`` is given
  and it is at or above that: then a ``<failure type="finding">``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from perfaudit.analysis.findings import at_least
from perfaudit.analysis.findings._gather import RunDiagnosis, exit_code
from perfaudit.report.findings_view import evidence_text, fix_text, view
from perfaudit.report.outcome import (
    GateReport,
    ScenarioOutcome,
    change_text,
    check_text,
    ci_text,
    detectable_text,
    floor_text,
    value_text,
)


def render(
    report: GateReport, diagnosis: RunDiagnosis | None = None, fail_on: str | None = None
) -> str:
    suites = ET.Element("testsuites", name="perfaudit")
    suite = ET.SubElement(
        suites, "testsuite", name=report.title,
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip
    props = ET.SubElement(suite, "properties")
    code = exit_code(report.exit_code, diagnosis, fail_on) if diagnosis else report.exit_code
    ET.SubElement(props, "property", name="exit_code", value=str(code))
    ET.SubElement(props, "property", name="headline", value=report.headline)
    if report.results:
        ET.SubElement(props, "property", name="results", value=report.results)
    if report.comparison is not None:
        ET.SubElement(props, "property", name="baseline", value=report.comparison.baseline)
        ET.SubElement(props, "property", name="comparison_mode", value=report.comparison.mode)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for o in report.scenarios:
        _scenario(suite, o, counts)
    if diagnosis is not None:
        ET.SubElement(props, "property", name="findings", value=diagnosis.counts_text())
        for f in diagnosis.findings:
            _finding(suite, f, fail_on, counts)
    for k, v in counts.items():
        suite.set(k, str(v))
        suites.set(k, str(v))
    ET.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
    )


def _case(
    suite: ET.Element, o: ScenarioOutcome, name: str, counts: dict[str, int], time: float = 0.0
) -> ET.Element:
    counts["tests"] += 1
    return ET.SubElement(
        suite, "testcase", classname=f"perfaudit.{o.name}", name=name, time=f"{time:.3f}"
    )


def _scenario(suite: ET.Element, o: ScenarioOutcome, counts: dict[str, int]) -> None:
    # The measuring time goes to the validity case: the others only read its results.
    case = _case(suite, o, "validity", counts, o.elapsed_s)
    if o.invalid:
        counts["errors"] += 1
        err = ET.SubElement(case, "error", type="invalid", message=o.invalid[0])
        err.text = "\n".join(o.invalid)
    for c in o.checks:
        case = _case(suite, o, f"threshold {c.name}", counts)
        if not c.passed:
            counts["failures"] += 1
            fail = ET.SubElement(case, "failure", type="threshold", message=check_text(c))
            fail.text = f"{check_text(c)}: FAIL" + (f" ({c.note})" if c.note else "")
        elif c.note:
            ET.SubElement(case, "system-out").text = c.note
    comp = o.comparison
    if comp is None:
        return
    for m in comp.metrics:
        case = _case(suite, o, f"compare {m.metric}", counts)
        detail = (
            f"{m.label}: baseline {value_text(m, 'baseline')} -> candidate "
            f"{value_text(m, 'candidate')} ({change_text(m)}, 95 % CI {ci_text(m)}, noise floor "
            f"{floor_text(m)}, detectable {detectable_text(m)}); {m.verdict}: {m.reason}"
        )
        if m.verdict == "regressed":
            counts["failures"] += 1
            fail = ET.SubElement(
                case, "failure", type="regression", message=f"{m.label} regressed {change_text(m)}"
            )
            fail.text = detail
        elif m.verdict == "inconclusive":
            counts["skipped"] += 1
            message = f"inconclusive (detectable {detectable_text(m)}): {m.reason}"
            ET.SubElement(case, "skipped", message=message).text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    if comp.notes:
        case = _case(suite, o, "compare notes", counts)
        ET.SubElement(case, "system-out").text = "\n".join(comp.notes)


def _finding(
    suite: ET.Element, f: dict[str, Any], fail_on: str | None, counts: dict[str, int]
) -> None:
    v = view(f)
    counts["tests"] += 1
    case = ET.SubElement(
        suite, "testcase", classname=f"findings.{v.scenario}", name=f"{v.rule}: {v.title}",
        time="0.000",
    )  # fmt: skip
    props = ET.SubElement(case, "properties")
    for name, value in (("severity", v.severity), ("impact", v.impact), ("rule", v.rule)):
        ET.SubElement(props, "property", name=name, value=value)
    detail = "\n".join([
        f"{v.severity}: {v.title} ({v.impact})",
        f"evidence: {evidence_text(f)}",
        *(f"where: {w}" for w in v.where),
        f"fix: {fix_text(f)}",
        f"confirm: {v.confirm}",
    ])  # fmt: skip
    if fail_on is not None and at_least([f], fail_on):
        counts["failures"] += 1
        message = f"{v.severity} finding (--fail-on-findings {fail_on}): {v.title}"
        ET.SubElement(case, "failure", type="finding", message=message).text = detail
    else:
        ET.SubElement(case, "system-out").text = detail


def write(
    report: GateReport,
    path: Path,
    diagnosis: RunDiagnosis | None = None,
    fail_on: str | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report, diagnosis, fail_on))
