"""A Markdown summary for a CI job summary (``$GITHUB_STEP_SUMMARY``): the verdict at the
top, one line per scenario, then a table per compared scenario, then the findings: counts
by severity and the most severe ones."""

from __future__ import annotations

from pathlib import Path

from perfaudit.analysis.findings._gather import RunDiagnosis, exit_code
from perfaudit.report.findings_markdown import summary_lines
from perfaudit.report.outcome import (
    GateReport,
    ScenarioOutcome,
    change_text,
    check_text,
    ci_text,
    detectable_text,
    floor_text,
    value_text,
    verdict_of,
)

ICON = {"pass": "✅", "fail": "❌", "regressed": "❌", "invalid": "⚠️"}
VERDICT_ICON = {
    "regressed": "🔴 regressed", "improved": "🟢 improved", "unchanged": "⚪ unchanged",
    "withheld": "❔ withheld", "inconclusive": "❔ inconclusive", "missing": "— missing",
}  # fmt: skip


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(
    report: GateReport, diagnosis: RunDiagnosis | None = None, fail_on: str | None = None
) -> str:
    code = exit_code(report.exit_code, diagnosis, fail_on) if diagnosis else report.exit_code
    icon = "⚠️" if code == 3 else ("❌" if code else "✅")
    lines = [f"## {icon} perfaudit: {report.headline}", ""]
    meta = [f"exit code **{code}**"]
    comp = report.comparison
    if comp is not None:
        meta.append(f"baseline: {comp.baseline} ({comp.mode})")
    if report.results:
        meta.append(f"results: `{report.results}`")
    lines += [" · ".join(meta), ""]
    for note in [*report.notes, *(comp.notes if comp else [])]:
        lines.append(f"> {note}")
    if report.notes or (comp and comp.notes):
        lines.append("")
    lines += [
        "| scenario | target | repeats | thresholds | vs baseline | status |",
        "|---|---|---:|---|---|---|",
    ]
    for o in report.scenarios:
        lines.append(
            f"| {_cell(o.name)} | {_cell(o.target)} | {o.repeats} | {_thresholds(o)} | "
            f"{_versus(o)} | {ICON[o.status]} {o.status} |"
        )
    lines.append("")
    for o in report.scenarios:
        lines += _details(o)
    if diagnosis is not None:
        lines += summary_lines(diagnosis, fail_on)
    return "\n".join(lines).rstrip() + "\n"


def _thresholds(o: ScenarioOutcome) -> str:
    if not o.checks:
        return "—"
    failed = o.failed_checks
    if not failed:
        return f"{len(o.checks)}/{len(o.checks)} pass"
    return "<br>".join(f"❌ {_cell(check_text(c))}" for c in failed)


def _versus(o: ScenarioOutcome) -> str:
    comp = o.comparison
    if comp is None:
        return "—"
    flagged = [m for m in comp.metrics if m.verdict in ("regressed", "improved")]
    verdict = verdict_of(comp)
    text = VERDICT_ICON.get(verdict, verdict)
    if flagged:
        text += ": " + ", ".join(f"{m.metric} {change_text(m)}" for m in flagged[:3])
    return _cell(text)


def _details(o: ScenarioOutcome) -> list[str]:
    out = []
    if o.invalid:
        out += [f"**{o.name}** is invalid:", ""] + [f"- {_cell(r)}" for r in o.invalid] + [""]
    failed = o.failed_checks
    if failed:
        out += [f"**{o.name}** thresholds failed:", ""]
        out += [f"- {_cell(check_text(c))}" + (f" ({c.note})" if c.note else "") for c in failed]
        out.append("")
    comp = o.comparison
    if comp is None or not comp.metrics:
        return out
    verdict = verdict_of(comp)
    out += [
        f"<details{' open' if verdict == 'regressed' else ''}><summary><b>{o.name}</b>: "
        f"{VERDICT_ICON.get(verdict, verdict)}</summary>",
        "",
        # detectable last: the smallest change the verdict could have seen, read after it
        "| metric | baseline | candidate | change | 95 % CI | noise floor | verdict | detectable |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for m in comp.metrics:
        out.append(
            f"| {_cell(m.label)} | {value_text(m, 'baseline')} | {value_text(m, 'candidate')} | "
            f"{change_text(m)} | {ci_text(m)} | {floor_text(m)} | "
            f"{VERDICT_ICON.get(m.verdict, m.verdict)} | {detectable_text(m)} |"
        )
    out.append("")
    for note in comp.notes:
        out.append(f"- {_cell(note)}")
    for m in comp.metrics:
        if m.verdict in ("regressed", "improved"):
            out.append(f"- {m.label}: {_cell(m.reason)}")
    out += ["", "</details>", ""]
    return out


def write(
    report: GateReport,
    path: Path,
    diagnosis: RunDiagnosis | None = None,
    fail_on: str | None = None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(report, diagnosis, fail_on))
