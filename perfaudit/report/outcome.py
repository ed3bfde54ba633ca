"""What a gated run (or a comparison) concluded, per scenario: the one model every CI
output (terminal, JUnit XML, Markdown summary, JSON) is rendered from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perfaudit import exitcodes
from perfaudit.analysis.compare import Comparison, MetricResult, ScenarioComparison
from perfaudit.analysis.metrics import BY_NAME, Entry, log_text, rel_text
from perfaudit.analysis.thresholds import Check, over_repeats


@dataclass
class ScenarioOutcome:
    name: str
    target: str
    repeats: int
    checks: list[Check] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # why repeats were invalid
    comparison: ScenarioComparison | None = None
    elapsed_s: float = 0.0

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    @property
    def status(self) -> str:
        """invalid > fail (a threshold) > regressed > pass."""
        if self.invalid:
            return "invalid"
        if self.failed_checks:
            return "fail"
        if self.comparison is not None and self.comparison.verdict == "regressed":
            return "regressed"
        return "pass"


@dataclass
class GateReport:
    title: str
    scenarios: list[ScenarioOutcome]
    comparison: Comparison | None = None
    results: str | None = None  # the results file, for the reader
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        statuses = {s.status for s in self.scenarios}
        if "invalid" in statuses:
            return exitcodes.INVALID  # a threshold or verdict from an invalid run is not trusted
        if statuses & {"fail", "regressed"}:
            return exitcodes.FAILED
        return exitcodes.OK

    @property
    def headline(self) -> str:
        s = [o.status for o in self.scenarios]
        failed = sum(1 for o in self.scenarios if o.failed_checks)
        regressed = sum(
            1 for o in self.scenarios if o.comparison and o.comparison.verdict == "regressed"
        )
        parts = []
        if "invalid" in s:
            parts.append(f"{s.count('invalid')} invalid")
        if failed:
            parts.append(f"{failed} failed thresholds")
        if regressed:
            parts.append(f"{regressed} regressed")
        if not parts:
            verdict = self.comparison.verdict if self.comparison else None
            extra = f"; vs baseline: {verdict}" if verdict else ""
            return f"PASS: {len(s)} scenario(s){extra}"
        word = "INVALID" if "invalid" in s else "FAIL"
        return f"{word}: {', '.join(parts)} of {len(s)} scenario(s)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "exit_code": self.exit_code,
            "headline": self.headline,
            "results": self.results,
            "notes": list(self.notes),
            "comparison": None if self.comparison is None else self.comparison.to_dict(),
            "scenarios": [
                {
                    "name": o.name, "target": o.target, "repeats": o.repeats, "status": o.status,
                    "checks": [c.to_dict() for c in o.checks], "invalid": list(o.invalid),
                    "verdict": None if o.comparison is None else o.comparison.verdict,
                    "detectable": None if o.comparison is None else {
                        m.metric: detectable_text(m) for m in o.comparison.metrics
                    },
                }
                for o in self.scenarios
            ],
        }  # fmt: skip


def build_report(
    title: str,
    entries: list[Entry],
    comparison: Comparison | None = None,
    results: str | None = None,
    with_checks: bool = True,
    notes: list[str] | None = None,
) -> GateReport:
    """Scenarios in the order they first ran; thresholds over repeats (medians)."""
    by_name: dict[str, list[Entry]] = {}
    for e in entries:
        by_name.setdefault(e["name"], []).append(e)
    compared = {s.name: s for s in comparison.scenarios} if comparison else {}
    outcomes = []
    for name, es in by_name.items():
        invalid = []
        for e in es:
            for reason in (e.get("validity") or {}).get("reasons", []):
                tag = f"repeat {e['repeat']}: " if "repeat" in e and len(es) > 1 else ""
                invalid.append(tag + reason)
        outcomes.append(
            ScenarioOutcome(
                name=name,
                target=(es[0].get("target") or {}).get("label", ""),
                repeats=len(es),
                checks=over_repeats(es) if with_checks else [],
                invalid=invalid,
                comparison=compared.get(name),
                elapsed_s=sum(_elapsed(e) for e in es),
            )
        )
    return GateReport(title, outcomes, comparison, results, list(notes or []))


def _elapsed(e: Entry) -> float:
    load = e.get("load") or {}
    return float(load.get("warmup_s", 0.0)) + float(load.get("duration_s", 0.0))


# -- shared text for every renderer ----------------------------------------------------
def value_text(r: MetricResult, which: str) -> str:
    v = r.baseline if which == "baseline" else r.candidate
    return BY_NAME[r.metric].fmt(v) if r.metric in BY_NAME else f"{v}"


def change_text(r: MetricResult) -> str:
    m = BY_NAME.get(r.metric)
    if r.change is not None and (r.scale == "log" or m is None):
        return rel_text(r.change)
    if r.diff is not None and m is not None:
        return m.diff_text(r.diff)
    return "n/a"


def ci_text(r: MetricResult) -> str:
    m = BY_NAME.get(r.metric)
    if r.ci is not None and (r.scale == "log" or m is None):
        return f"{rel_text(r.ci[0])} .. {rel_text(r.ci[1])}"
    if r.diff_ci is not None and m is not None:
        return f"{m.diff_text(r.diff_ci[0])} .. {m.diff_text(r.diff_ci[1])}"
    return "n/a"


def _size_text(r: MetricResult, value: float | None, as_log: bool) -> str:
    """A size of change in the metric's scale: relative (from a log-scale or a relative
    value) for log metrics, a difference in the unit for abs metrics."""
    if value is None:
        return "unknown"
    m = BY_NAME.get(r.metric)
    if r.scale == "log" or m is None:
        return "±" + (log_text(value, signed=False) if as_log else rel_text(value, signed=False))
    return "±" + m.diff_text(value, signed=False)


def floor_text(r: MetricResult) -> str:
    """The smallest change this comparison could tell from noise."""
    return _size_text(r, r.floor, as_log=True)


def detectable_text(r: MetricResult) -> str:
    """The smallest change the comparison could have called (min effect or noise floor)."""
    return _size_text(r, r.detectable, as_log=False)


def check_text(c: Check) -> str:
    op = ">=" if c.name.startswith("min_") else "<="
    actual = "not measured" if c.actual is None else f"{c.actual:.4g}"
    return f"{c.metric} {actual} {op} {c.limit:g}"
