"""Findings in Markdown: a section per scenario for report.md, and the counts and most
severe findings for the CI job summary."""

from __future__ import annotations

from perfaudit.analysis.findings._gather import RunDiagnosis
from perfaudit.report.findings_view import FindingView, first_where, fix_text, impact_text, view
from perfaudit.report.markdown_text import esc

ICON = {"high": "🔴", "medium": "🟠", "low": "⚪"}
TOP = 5  # findings the CI summary lists; the rest are one `perfaudit diagnose` away


def scenario_lines(findings: list[FindingView], not_checked: list[tuple[str, str]]) -> list[str]:
    """report.md, under a scenario: each finding with its evidence, location, fix, confirm."""
    lines = ["", "### Findings", ""]
    if not findings:
        lines.append("No findings.")
    for f in findings:
        lines += [f"#### {ICON.get(f.severity, '')} {f.severity}: {esc(f.title)}", ""]
        lines.append(f"- impact: {esc(f.impact)} (rule `{esc(f.rule)}`)")
        if f.evidence:
            lines.append("- evidence: " + "; ".join(f"{esc(k)} {esc(v)}" for k, v in f.evidence))
        lines += [f"- where: `{esc(w)}`" for w in f.where]
        lines.append(f"- fix: {esc(f.fix)}")
        if f.switches:
            lines.append("- switches: " + ", ".join(f"`{esc(s)}`" for s in f.switches))
        lines += [f"- confirm: {esc(f.confirm)}", ""]
    if not_checked:
        lines += ["", "Not checked:", ""]
        lines += [f"- `{esc(rule)}`: {esc(reason)}" for rule, reason in not_checked]
    return lines


def summary_lines(diagnosis: RunDiagnosis, fail_on: str | None = None) -> list[str]:
    """The CI summary: counts by severity, the most severe findings, what was not checked."""
    n_rules, n_scen = len(diagnosis.rules), len(diagnosis.scenarios)
    lines = [
        "",
        f"### Findings: {diagnosis.counts_text()}",
        "",
        f"{n_rules} rule(s) on {n_scen} scenario(s)"
        + (f"; findings at or above **{fail_on}** fail this job" if fail_on else "")
        + ".",
        "",
    ]
    if diagnosis.findings:
        lines += [
            "| severity | scenario | finding | impact | where | fix |",
            "|---|---|---|---:|---|---|",
        ]
        for f in diagnosis.findings[:TOP]:
            v = view(f)
            lines.append(
                f"| {ICON.get(v.severity, '')} {v.severity} | {esc(v.scenario)} | {esc(v.title)} | "
                f"{esc(impact_text(f))} | {esc(first_where(f))} | {esc(fix_text(f))} |"
            )
        more = len(diagnosis.findings) - TOP
        if more > 0:
            lines += ["", f"… and {more} more (`perfaudit diagnose` on the results file)."]
    rules = list(dict.fromkeys(n["rule"] for n in diagnosis.not_checked))
    if rules:
        lines += ["", f"{len(rules)} rule(s) could not look in some scenario: "
                  + ", ".join(f"`{esc(r)}`" for r in rules) + " (`perfaudit diagnose` says why)."]  # fmt: skip
    return lines + [""]
