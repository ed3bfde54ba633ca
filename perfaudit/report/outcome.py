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
            1 for o in self.scenarios if o.comparison and verdict_of(o.comparison) == "regressed"
        )
        parts = []
        if "invalid" in s:
            parts.append(f"{s.count('invalid')} invalid")
        if failed:
            parts.append(f"{failed} failed thresholds")
        if regressed:
            parts.append(f"{regressed} regressed")
        compared = [o.comparison for o in self.scenarios if o.comparison is not None]
        versus = f"; vs baseline: {comparison_headline(compared)}" if compared else ""
        if not parts:
            return f"PASS: {len(s)} scenario(s){versus}"
        word = "INVALID" if "invalid" in s else "FAIL"
        return f"{word}: {', '.join(parts)} of {len(s)} scenario(s){versus}"

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


# -- the headline of a comparison: only what the comparison defends ---------------------
# A scenario counts as regressed or improved only where one of its metrics carries that
# verdict in the comparison itself. A verdict the comparison withheld (a baseline not
# trusted for that class of metric, a time regression a rerun did not confirm) is no
# verdict, and neither is one too noisy to give: those scenarios say so, never "regressed".
HEADLINE_ORDER = ("regressed", "improved", "unchanged", "withheld", "inconclusive", "missing")
HEADLINE_WORDS = {
    "regressed": "regressed", "improved": "improved", "unchanged": "unchanged",
    "withheld": "withheld (not trusted for a verdict: see the notes)",
    "inconclusive": "inconclusive at this resolution",
    "missing": "not compared (a side has no valid repeat)",
}  # fmt: skip
HEADLINE_METRIC = "p95_ms"  # whose smallest detectable change the headline quotes
_WITHHELD = ("would be ", "not confirmed by a rerun")  # analysis.compare, gate.confirmed


def is_withheld(m: MetricResult) -> bool:
    """Inconclusive because the comparison withheld the verdict its numbers would give."""
    return m.verdict == "inconclusive" and m.reason.startswith(_WITHHELD)


def verdict_of(sc: ScenarioComparison) -> str:
    """A scenario's verdict from its metric verdicts alone (never from a stored summary):
    regressed > improved > unchanged (every metric) > withheld (a metric's verdict was)
    > inconclusive; missing: nothing compared."""
    verdicts = {m.verdict for m in sc.metrics}
    for v in ("regressed", "improved"):
        if v in verdicts:
            return v
    if verdicts and verdicts <= {"unchanged"}:
        return "unchanged"
    if not verdicts:
        return "missing" if sc.verdict == "missing" else "inconclusive"
    return "withheld" if any(is_withheld(m) for m in sc.metrics) else "inconclusive"


def comparison_headline(scenarios: list[ScenarioComparison]) -> str:
    """What the comparison can defend, per scenario, e.g. "3 scenarios improved, 2 unchanged,
    1 inconclusive at this resolution (p95 latency: could have seen ±38 %)"."""
    by: dict[str, list[ScenarioComparison]] = {}
    for sc in scenarios:
        by.setdefault(verdict_of(sc), []).append(sc)
    parts = []
    for v in HEADLINE_ORDER:
        n = len(by.get(v, []))
        if not n:
            continue
        noun = "" if parts else ("scenario " if n == 1 else "scenarios ")
        seen = _resolution(by[v]) if v == "inconclusive" else ""
        parts.append(f"{n} {noun}{HEADLINE_WORDS[v]}{seen}")
    return ", ".join(parts) or "no scenario compared"


def _resolution(scenarios: list[ScenarioComparison]) -> str:
    """The smallest change the inconclusive scenarios' p95 could have seen (a range)."""
    seen = sorted(
        (m for sc in scenarios for m in sc.metrics
         if m.metric == HEADLINE_METRIC and m.verdict == "inconclusive" and m.detectable is not None),
        key=lambda m: m.detectable or 0.0,
    )  # fmt: skip
    if not seen:
        return ""
    lo, hi = detectable_text(seen[0]), detectable_text(seen[-1])
    span = lo if lo == hi else f"{lo} to {hi}"
    return f" ({seen[0].label}: could have seen {span})"


def scenario_headline(sc: ScenarioComparison, limit: int = 4) -> str:
    """One scenario's verdict and what it rests on: the metrics that carry it, or for one
    without a verdict the smallest change its open metrics could have seen."""
    v = verdict_of(sc)
    if v in ("regressed", "improved"):
        called = [m for m in sc.metrics if m.verdict == v]
        more = f" (+{len(called) - limit} more)" if len(called) > limit else ""
        return f"{v}: " + ", ".join(f"{m.label} {change_text(m)}" for m in called[:limit]) + more
    if v in ("inconclusive", "withheld"):
        open_ = [m for m in sc.metrics if m.verdict == "inconclusive" and m.detectable is not None]
        seen = [f"{m.label} {detectable_text(m)}" for m in open_]
        more = f" (+{len(seen) - limit} more)" if len(seen) > limit else ""
        return HEADLINE_WORDS[v] + (
            f"; could have seen {', '.join(seen[:limit])}{more}" if seen else ""
        )
    return HEADLINE_WORDS[v]


def open_text(m: MetricResult) -> str:
    """For an inconclusive metric: withheld or not, and the smallest change it could have
    seen ("" for any other verdict)."""
    if m.verdict != "inconclusive":
        return ""
    seen = f"could have seen {detectable_text(m)}" if m.detectable is not None else ""
    if is_withheld(m):
        return "withheld" + (f"; {seen}" if seen else "")
    return seen


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
