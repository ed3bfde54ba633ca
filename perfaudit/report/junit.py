"""JUnit XML: one test case per scenario and check, so CI systems show failures natively.

- ``threshold <key>``: a ``<failure type="threshold">`` when the limit is not met;
- ``compare <metric>``: a ``<failure type="regression">`` when regressed, ``<skipped>``
  when inconclusive (too noisy to say: its message names the smallest change the
  comparison could have detected), passed when unchanged or improved;
- ``validity``: an ``<error>`` when the run is invalid (generator saturated, a process
  exited): the other cases of that scenario are not to be trusted.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

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


def render(report: GateReport) -> str:
    suites = ET.Element("testsuites", name="perfaudit")
    suite = ET.SubElement(
        suites, "testsuite", name=report.title,
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
    )  # fmt: skip
    props = ET.SubElement(suite, "properties")
    ET.SubElement(props, "property", name="exit_code", value=str(report.exit_code))
    ET.SubElement(props, "property", name="headline", value=report.headline)
    if report.results:
        ET.SubElement(props, "property", name="results", value=report.results)
    if report.comparison is not None:
        ET.SubElement(props, "property", name="baseline", value=report.comparison.baseline)
        ET.SubElement(props, "property", name="comparison_mode", value=report.comparison.mode)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for o in report.scenarios:
        _scenario(suite, o, counts)
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


def write(report: GateReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report))
