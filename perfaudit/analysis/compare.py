"""Baseline vs candidate, per scenario and metric: a change, a CI and a verdict.

The unit of evidence is a *repeat*: one target start and one measured window. Between
restarts this machine moves sub-millisecond latencies by 20-40 % and webhook p95 by ~14 %
(measured, sd of log per-repeat values), so per-request statistics inside one run would
call most A/A comparisons "regressed". Per metric, with per-repeat values a_i (baseline)
and b_j (candidate):

- change: ratio of medians median(b) / median(a) (a difference for rates near zero);
- CI: a seeded two-level bootstrap (repeats, then seconds inside each repeat);
- noise floor, learned from the A/A repeats of this very comparison: the pooled spread of
  repeats of the same side (never below the within-run sampling spread), turned into
  the smallest change a one-sided t-test at ``floor_quantile`` could tell from noise;
- rank test: Mann-Whitney U over per-window values pooled across repeats (a change must
  show in most seconds, not in a burst).

Verdicts: **regressed**/**improved** when the CI excludes no change, the change clears
both the minimum effect and the noise floor, and the rank test agrees; **unchanged** when
the comparison could resolve a change of ``resolution`` and the CI stays inside it;
**inconclusive** otherwise (too noisy to say: the output names the noise floor).
"""

from __future__ import annotations

import math
import statistics
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any

from perfaudit.analysis.metrics import BY_NAME, Entry, Metric, compared_metrics, log_text
from perfaudit.analysis.samples import Repeat, repeats_by_metric
from perfaudit.analysis.stats import bootstrap_effect, mann_whitney, pooled_sd, t_quantile

VERDICTS = ("regressed", "improved", "unchanged", "inconclusive")
TINY = 1e-9


@dataclass(frozen=True)
class GateSettings:
    min_effect: float = 0.05  # relative change below this is never a verdict
    resolution: float = 0.10  # "unchanged" means "not by more than this"
    confidence: float = 0.95  # of the bootstrap CI
    floor_quantile: float = 0.995  # one-sided t quantile of the noise floor
    rank_alpha: float = 0.01
    iterations: int = 2000
    seed: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MetricResult:
    metric: str
    label: str
    scale: str  # log: changes are ratios; abs: differences
    n_baseline: int
    n_candidate: int
    baseline: float | None  # median over repeats
    candidate: float | None
    change: float | None = None  # relative: candidate / baseline - 1
    ci: tuple[float, float] | None = None  # relative change CI
    diff: float | None = None  # candidate - baseline, in the metric's unit
    diff_ci: tuple[float, float] | None = None
    noise: float | None = None  # sd between repeats (relative for log, unit for abs)
    floor: float | None = None  # smallest change distinguishable from noise (same scale)
    p_rank: float | None = None
    verdict: str = "inconclusive"
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetricResult:
        d = dict(d)
        for k in ("ci", "diff_ci"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class ScenarioComparison:
    name: str
    kind: str
    verdict: str  # a VERDICT, or "missing" (a side has no valid repeat)
    metrics: list[MetricResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def worst(self) -> list[MetricResult]:
        return [m for m in self.metrics if m.verdict == self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "verdict": self.verdict,
            "notes": list(self.notes),
            "metrics": [m.to_dict() for m in self.metrics],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScenarioComparison:
        return cls(
            d["name"], d["kind"], d["verdict"],
            [MetricResult.from_dict(m) for m in d["metrics"]], list(d.get("notes", [])),
        )  # fmt: skip


@dataclass
class Comparison:
    baseline: str  # labels, for humans
    candidate: str
    mode: str  # stored | remeasured | runs
    scenarios: list[ScenarioComparison]
    notes: list[str] = field(default_factory=list)
    settings: GateSettings = field(default_factory=GateSettings)

    @property
    def verdict(self) -> str:
        verdicts = {s.verdict for s in self.scenarios}
        for v in ("regressed", "improved"):
            if v in verdicts:
                return v
        if verdicts and verdicts <= {"unchanged"}:
            return "unchanged"
        return "inconclusive"

    @property
    def regressed(self) -> bool:
        return any(s.verdict == "regressed" for s in self.scenarios)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "candidate": self.candidate,
            "mode": self.mode,
            "verdict": self.verdict,
            "notes": list(self.notes),
            "settings": self.settings.to_dict(),
            "scenarios": [s.to_dict() for s in self.scenarios],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Comparison:
        return cls(
            d["baseline"], d["candidate"], d["mode"],
            [ScenarioComparison.from_dict(s) for s in d["scenarios"]],
            list(d.get("notes", [])), GateSettings(**d.get("settings", {})),
        )  # fmt: skip


# -- one metric ------------------------------------------------------------------------
def compare_metric(
    metric: Metric,
    a: list[Repeat],
    b: list[Repeat],
    settings: GateSettings = GateSettings(),
    seed: int = 0,
) -> MetricResult:
    """The verdict on one metric from per-repeat samples of both sides."""
    res = MetricResult(metric.name, metric.label, metric.scale, len(a), len(b), None, None)
    if not a or not b:
        res.verdict, res.reason = "inconclusive", "not recorded on both sides"
        return res
    log = metric.scale == "log"

    def f(x: float) -> float:
        return math.log(max(x, TINY)) if log else x

    ma = statistics.median(r.value for r in a)
    mb = statistics.median(r.value for r in b)
    res.baseline, res.candidate, res.diff = ma, mb, mb - ma
    effect = f(mb) - f(ma)
    lo, hi = bootstrap_effect(
        [r.spread() for r in a], [r.spread() for r in b], lambda y, x: f(y) - f(x),
        iterations=settings.iterations, confidence=settings.confidence, seed=seed,
    )  # fmt: skip
    between, df = pooled_sd([[f(r.value) for r in a], [f(r.value) for r in b]])
    within = _within_sd([*a, *b], f)
    noise = max(between, within)
    floor = (
        t_quantile(settings.floor_quantile, df) * noise * math.sqrt(1 / len(a) + 1 / len(b))
        if df > 0
        else None
    )
    wa = [w for r in a for w in r.windows]
    wb = [w for r in b for w in r.windows]
    p_rank = mann_whitney(wa, wb) if min(len(wa), len(wb)) >= 3 else None
    if log:
        res.change, res.ci = math.expm1(effect), (math.expm1(lo), math.expm1(hi))
        res.diff_ci = (ma * math.expm1(lo), ma * math.expm1(hi))
        min_f, resolution = math.log1p(settings.min_effect), math.log1p(settings.resolution)
        big = abs(mb - ma) >= metric.abs_min
    else:
        res.diff_ci = (lo, hi)
        if ma > 0:
            res.change, res.ci = (mb - ma) / ma, (lo / ma, hi / ma)
        min_f = max(metric.abs_min, settings.min_effect * abs(ma))
        resolution = max(2 * metric.abs_min, settings.resolution * abs(ma))
        big = True
    res.noise, res.floor, res.p_rank = noise, floor, p_rank
    # Orient so that positive means worse.
    w = metric.worse(effect)
    w_lo, w_hi = (lo, hi) if metric.better == "lower" else (-hi, -lo)
    res.verdict, res.reason = _verdict(
        w, w_lo, w_hi, floor, min_f, resolution, big, p_rank, settings, metric, log
    )
    return res


def _within_sd(repeats: list[Repeat], f: Any) -> float:
    variances = []
    for r in repeats:
        if len(r.draws) > 1:
            variances.append(statistics.pvariance([f(x) for x in r.draws]))
    return math.sqrt(statistics.fmean(variances)) if variances else 0.0


def _verdict(
    w: float,
    w_lo: float,
    w_hi: float,
    floor: float | None,
    min_f: float,
    resolution: float,
    big: bool,
    p_rank: float | None,
    settings: GateSettings,
    metric: Metric,
    log: bool,
) -> tuple[str, str]:
    def pct(x: float) -> str:
        return log_text(x) if log else metric.diff_text(x)

    def size(x: float) -> str:
        return log_text(x, signed=False) if log else metric.diff_text(x, signed=False)

    if floor is None:
        return "inconclusive", "one repeat per side: the noise between restarts is unknown"
    bar = max(min_f, floor)
    rank_ok = p_rank is None or p_rank < settings.rank_alpha
    why = f"beyond the {size(min_f)} minimum effect and the {size(floor)} noise floor"
    if w_lo > 0 and w > bar and big and rank_ok:
        return "regressed", f"worse by {pct(abs(w))[1:]} (CI {pct(w_lo)}..{pct(w_hi)}), {why}"
    if w_hi < 0 and -w > bar and big and rank_ok:
        return "improved", f"better by {pct(-w)[1:]} (CI {pct(-w_hi)}..{pct(-w_lo)}), {why}"
    if floor <= resolution and -resolution <= w_lo and w_hi <= resolution:
        return "unchanged", f"within ±{size(resolution)} (noise floor {size(floor)})"
    if floor > resolution:
        return "inconclusive", (
            f"too noisy to say: noise floor {size(floor)} is above the ±{size(resolution)} "
            "resolution; add repeats or lengthen the run"
        )
    if not rank_ok:
        return "inconclusive", f"the change is not seen in most seconds (rank test p={p_rank:.2g})"
    return (
        "inconclusive",
        f"CI {pct(w_lo)}..{pct(w_hi)} (worse-positive) reaches beyond ±{size(resolution)}",
    )


# -- scenarios -------------------------------------------------------------------------
def group_by_scenario(entries: list[Entry]) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for e in entries:
        out.setdefault(e["name"], []).append(e)
    return out


def _valid(entries: list[Entry]) -> list[Entry]:
    """Valid, unprofiled repeats (a profiler's run measures the profiler too)."""
    return [
        e for e in entries
        if (e.get("validity") or {}).get("valid", True) and not e.get("profiled")
    ]  # fmt: skip


def compare_scenario(
    name: str,
    baseline: list[Entry],
    candidate: list[Entry],
    settings: GateSettings = GateSettings(),
    trusted: str | None = None,
    metrics: list[str] | None = None,
) -> ScenarioComparison:
    """All compared metrics of one scenario. ``trusted`` is None when the baseline can be
    trusted for a verdict, else the reason it cannot (its verdicts become inconclusive)."""
    kind = (candidate or baseline)[0].get("kind", "http")
    out = ScenarioComparison(name, kind, "inconclusive")
    a, b = _valid(baseline), _valid(candidate)
    for side, all_, ok in (("baseline", baseline, a), ("candidate", candidate, b)):
        if len(ok) < len(all_):
            out.notes.append(f"{len(all_) - len(ok)} invalid {side} repeat(s) left out")
    if not a or not b:
        out.verdict = "missing"
        missing = "baseline" if not a else "candidate"
        out.notes.append(f"no valid {missing} repeat of this scenario")
        return out
    chosen = [BY_NAME[m] for m in metrics] if metrics else compared_metrics(kind)
    chosen = [m for m in chosen if kind in m.kinds]
    ra = repeats_by_metric(chosen, a, seed=settings.seed)
    rb = repeats_by_metric(chosen, b, seed=settings.seed + 1)
    for m in chosen:
        if not ra[m.name] and not rb[m.name]:
            continue
        seed = settings.seed ^ zlib.crc32(f"{name}/{m.name}".encode())
        r = compare_metric(m, ra[m.name], rb[m.name], settings, seed)
        if trusted is not None and r.verdict in ("regressed", "improved"):
            r.reason = f"would be {r.verdict}, but {trusted}; {r.reason}"
            r.verdict = "inconclusive"
        out.metrics.append(r)
    if trusted is not None:
        out.notes.append(f"not trusted for a verdict: {trusted}")
    out.verdict = _scenario_verdict(out.metrics)
    return out


def _scenario_verdict(results: list[MetricResult]) -> str:
    verdicts = {r.verdict for r in results}
    for v in ("regressed", "improved"):
        if v in verdicts:
            return v
    if verdicts and verdicts <= {"unchanged"}:
        return "unchanged"
    return "inconclusive" if verdicts else "missing"


def compare_entries(
    baseline: list[Entry],
    candidate: list[Entry],
    *,
    baseline_label: str,
    candidate_label: str,
    mode: str,
    settings: GateSettings = GateSettings(),
    untrusted: dict[str, str] | None = None,
    notes: list[str] | None = None,
) -> Comparison:
    """Compare every scenario the candidate ran (in its order) with the baseline's."""
    a, b = group_by_scenario(baseline), group_by_scenario(candidate)
    scenarios = []
    for name, entries in b.items():
        reason = (untrusted or {}).get(name) or (untrusted or {}).get("*")
        scenarios.append(compare_scenario(name, a.get(name, []), entries, settings, reason))
    out_notes = list(notes or [])
    only_a = [n for n in a if n not in b]
    if only_a:
        out_notes.append(f"in the baseline only (not compared): {', '.join(only_a)}")
    return Comparison(baseline_label, candidate_label, mode, scenarios, out_notes, settings)
