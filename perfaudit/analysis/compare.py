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
  the smallest change a one-sided t-test at ``floor_quantile`` could tell from noise.
  With >= 5 repeats, one repeat far outside the others (a neighbour's stall for a whole
  repeat) is left out of that spread, one degree of freedom fewer: see :func:`_outlier`.
  Deterministic metrics (instruction counts) with one repeat per side take the spread of
  their sub-windows instead, so one repeat per side can give a verdict;
- rank test: Mann-Whitney U over per-window values pooled across repeats (a change must
  show in most seconds, not in a burst).

Verdicts: **regressed**/**improved** when the CI excludes no change, the change clears
both the minimum effect and the noise floor, and the rank test agrees; **unchanged** when
the comparison could resolve a change of ``resolution`` and the CI stays inside it;
**inconclusive** otherwise (too noisy to say: the output names the smallest change the
comparison could have seen and about how many repeats per side would resolve
``resolution``). A metric's own ``min_effect``/``resolution`` replace the settings'
(relative for log metrics, in the metric's unit for abs metrics). Verdicts of a baseline
that cannot be trusted (for every metric, or per trust class: time, count, instructions)
become inconclusive.
"""

from __future__ import annotations

import math
import statistics
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from perfaudit.analysis.metrics import BY_NAME, Entry, Metric, compared_metrics, log_text
from perfaudit.analysis.samples import Repeat, repeats_by_metric
from perfaudit.analysis.stats import bootstrap_effect, mann_whitney, pooled_sd, t_quantile

VERDICTS = ("regressed", "improved", "unchanged", "inconclusive")
TRUST_CLASSES = ("time", "count", "instructions")  # Metric.trust
TINY = 1e-9
OUTLIER_MIN_REPEATS = 5  # both sides together; fewer cannot tell a wild repeat from noise
REPEATS_CAP = 50  # repeats_needed above this is reported as "more than REPEATS_CAP"

# Why a scenario's baseline cannot give a verdict: one reason for every metric, or a
# reason per trust class ({"time": "recorded on another machine"}).
Untrusted = str | dict[str, str]


@dataclass(frozen=True)
class GateSettings:
    min_effect: float = 0.05  # relative change below this is never a verdict
    resolution: float = 0.10  # "unchanged" means "not by more than this"
    confidence: float = 0.95  # of the bootstrap CI
    floor_quantile: float = 0.995  # one-sided t quantile of the noise floor
    rank_alpha: float = 0.01
    iterations: int = 2000
    seed: int = 1
    # Chance that an ordinary (Gaussian) spread loses a repeat to the outlier test: a
    # trimmed repeat narrows the noise floor, so a false trim is a step to a false alarm.
    outlier_alpha: float = 0.01  # 0: never leave a repeat out

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
    # The smallest change this comparison could have called, max(min effect, noise floor):
    # relative for log metrics (like ``change``), in the metric's unit for abs metrics.
    detectable: float | None = None
    # Inconclusive for noise: repeats per side that would bring the noise floor within the
    # resolution (REPEATS_CAP + 1: more than REPEATS_CAP).
    repeats_needed: int | None = None
    # The repeat left out of the noise estimate: side, repeat (1-based), value, score and
    # limit (externally studentized residual and its threshold).
    outlier: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetricResult:
        """Also reads comparisons stored before ``detectable``/``repeats_needed``/``outlier``."""
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
Scale = Callable[[Any], Any]  # the compared scale (log or identity), on floats or arrays


@dataclass(frozen=True)
class Noise:
    """The per-repeat spread on the compared scale, and its degrees of freedom."""

    sd: float
    df: int
    outlier: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Case:
    """What a verdict is decided on, on the compared scale, oriented worse-positive."""

    w: float  # the change
    lo: float  # its CI
    hi: float
    floor: float | None
    min_f: float
    resolution: float
    big: bool  # the change clears the metric's abs_min
    p_rank: float | None
    needed: int | None  # repeats_needed


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

    def f(x: Any) -> Any:
        return np.log(np.maximum(x, TINY)) if log else np.asarray(x, dtype=float)

    ma = statistics.median(r.value for r in a)
    mb = statistics.median(r.value for r in b)
    res.baseline, res.candidate, res.diff = ma, mb, mb - ma
    effect = float(f(mb) - f(ma))
    lo, hi = bootstrap_effect(
        [r.spread() for r in a], [r.spread() for r in b], lambda y, x: f(y) - f(x),
        iterations=settings.iterations, confidence=settings.confidence, seed=seed,
    )  # fmt: skip
    noise = _noise(metric, a, b, f, settings)
    scale = math.sqrt(1 / len(a) + 1 / len(b))
    floor = t_quantile(settings.floor_quantile, noise.df) * noise.sd * scale if noise.df else None
    wa = [w for r in a for w in r.windows]
    wb = [w for r in b for w in r.windows]
    p_rank = mann_whitney(wa, wb) if min(len(wa), len(wb)) >= 3 else None
    min_f, resolution = _bars(metric, settings, ma)
    if log:
        res.change, res.ci = math.expm1(effect), (math.expm1(lo), math.expm1(hi))
        res.diff_ci = (ma * math.expm1(lo), ma * math.expm1(hi))
        big = abs(mb - ma) >= metric.abs_min
    else:
        res.diff_ci = (lo, hi)
        if ma > 0:
            res.change, res.ci = (mb - ma) / ma, (lo / ma, hi / ma)
        big = True
    res.noise, res.floor, res.p_rank, res.outlier = noise.sd, floor, p_rank, noise.outlier
    if floor is not None:
        bar = max(min_f, floor)
        res.detectable = math.expm1(bar) if log else bar
        if floor > resolution:
            res.repeats_needed = _repeats_needed(
                noise.sd, resolution, settings, min(len(a), len(b))
            )
    # Orient so that positive means worse.
    w_lo, w_hi = (lo, hi) if metric.better == "lower" else (-hi, -lo)
    case = _Case(
        metric.worse(effect), w_lo, w_hi, floor, min_f, resolution, big, p_rank,
        res.repeats_needed,
    )  # fmt: skip
    res.verdict, res.reason = _verdict(case, settings, metric, log)
    if noise.outlier is not None:
        o = noise.outlier
        res.reason += (
            f"; {o['side']} repeat {o['repeat']} left out of the noise estimate as an outlier "
            f"({o['score']:.1f} sd from the others, limit {o['limit']:.1f})"
        )
    return res


def _bars(metric: Metric, settings: GateSettings, ma: float) -> tuple[float, float]:
    """Minimum effect and resolution on the compared scale. For abs metrics GateSettings'
    are relative to the baseline median, a metric's own in its unit; abs_min bounds both."""
    eff = settings.min_effect if metric.min_effect is None else metric.min_effect
    reso = settings.resolution if metric.resolution is None else metric.resolution
    if metric.scale == "log":
        return math.log1p(eff), math.log1p(reso)
    if metric.min_effect is None:
        eff *= abs(ma)
    if metric.resolution is None:
        reso *= abs(ma)
    return max(metric.abs_min, eff), max(2 * metric.abs_min, reso)


def _noise(
    metric: Metric, a: list[Repeat], b: list[Repeat], f: Scale, settings: GateSettings
) -> Noise:
    """Spread between repeats of the same side (an outlier repeat left out), never below
    the within-run sampling spread. A deterministic metric with one repeat per side falls
    back to the within-run spread of its sub-window mean, df = sub-windows - repeats."""
    sides = [[float(f(r.value)) for r in a], [float(f(r.value)) for r in b]]
    kept = [list(a), list(b)]
    found = _outlier(sides, settings.outlier_alpha)
    outlier = None
    if found is not None:
        si, i, score, limit = found
        r = kept[si].pop(i)
        del sides[si][i]
        number = r.repeat if r.repeat is not None else i + 1
        side = ("baseline", "candidate")[si]
        outlier = {"side": side, "repeat": number, "value": r.value, "score": score, "limit": limit}
    between, df = pooled_sd(sides)
    within = _within_sd([*kept[0], *kept[1]], f)
    if df == 0 and metric.deterministic:
        sampled = [r for r in (*a, *b) if r.draws]
        df_w = sum(r.sub_windows for r in sampled) - len(sampled)
        return Noise(within, df_w) if df_w > 0 else Noise(0.0, 0)
    return Noise(max(between, within), df, outlier)


def _outlier(sides: list[list[float]], alpha: float) -> tuple[int, int, float, float] | None:
    """(side, index, score, limit) of one repeat too far from the others to be restart
    noise, or None.

    The candidate is the repeat farthest from its side's median (on a side of >= 3: of
    two repeats neither is "the" outlier). Its score is the externally studentized
    residual |x - mean of the rest of its side| / (s * sqrt(1 + 1/m)), s the pooled sd
    of the other repeats: Student's t with their df under Gaussian restart noise. The
    limit is the Bonferroni t quantile over the candidates, so an ordinary spread loses a
    repeat with probability <= alpha. A fixed multiple cannot do this with so few repeats:
    simulated, 3 vs 3 Gaussian repeats exceed 3.5 pooled sd (3.5 MAD-sd) of the rest in
    38 % (71 %) of A/A sets; the limit here is 10.9 at 3 vs 3, 5.4 at 5 vs 5.
    """
    if alpha <= 0 or sum(len(s) for s in sides) < OUTLIER_MIN_REPEATS:
        return None
    cands = [
        (abs(v - statistics.median(s)), si, i)
        for si, s in enumerate(sides) if len(s) >= 3
        for i, v in enumerate(s)
    ]  # fmt: skip
    if not cands:
        return None
    _, si, i = max(cands)
    rest = [s[:i] + s[i + 1 :] if k == si else s for k, s in enumerate(sides)]
    sd, df = pooled_sd(rest)
    if df < 1 or sd <= 0:  # quantised values (counts): no spread to measure against
        return None
    m = len(rest[si])
    score = abs(sides[si][i] - statistics.fmean(rest[si])) / (sd * math.sqrt(1 + 1 / m))
    limit = t_quantile(1 - alpha / (2 * len(cands)), df)
    return (si, i, score, limit) if score > limit else None


def _within_sd(repeats: Sequence[Repeat], f: Scale) -> float:
    variances = [float(np.var(f(np.asarray(r.draws)))) for r in repeats if len(r.draws) > 1]
    return math.sqrt(statistics.fmean(variances)) if variances else 0.0


def _repeats_needed(sd: float, resolution: float, settings: GateSettings, now: int) -> int:
    """Repeats per side (more than now) whose noise floor would be within the resolution,
    for the same per-repeat spread; REPEATS_CAP + 1 when even REPEATS_CAP would not do."""
    for n in range(max(2, now + 1), REPEATS_CAP + 1):
        if t_quantile(settings.floor_quantile, 2 * n - 2) * sd * math.sqrt(2 / n) <= resolution:
            return n
    return REPEATS_CAP + 1


def _needed_text(n: int) -> str:
    return f"more than {REPEATS_CAP}" if n > REPEATS_CAP else f"about {n}"


def _verdict(c: _Case, settings: GateSettings, metric: Metric, log: bool) -> tuple[str, str]:
    def pct(x: float) -> str:
        return log_text(x) if log else metric.diff_text(x)

    def size(x: float) -> str:
        return log_text(x, signed=False) if log else metric.diff_text(x, signed=False)

    if c.floor is None:
        if metric.deterministic:
            return "inconclusive", "no noise estimate: one repeat per side and no sub-windows"
        return "inconclusive", "one repeat per side: the noise between restarts is unknown"
    bar = max(c.min_f, c.floor)
    rank_ok = c.p_rank is None or c.p_rank < settings.rank_alpha
    why = f"beyond the {size(c.min_f)} minimum effect and the {size(c.floor)} noise floor"
    seen = f"could have seen ±{size(bar)}"
    if c.lo > 0 and c.w > bar and c.big and rank_ok:
        return "regressed", f"worse by {pct(abs(c.w))[1:]} (CI {pct(c.lo)}..{pct(c.hi)}), {why}"
    if c.hi < 0 and -c.w > bar and c.big and rank_ok:
        return "improved", f"better by {pct(-c.w)[1:]} (CI {pct(-c.hi)}..{pct(-c.lo)}), {why}"
    if c.floor <= c.resolution and -c.resolution <= c.lo and c.hi <= c.resolution:
        return "unchanged", f"within ±{size(c.resolution)} (noise floor {size(c.floor)})"
    if c.floor > c.resolution:
        needed = _needed_text(c.needed or REPEATS_CAP + 1)
        return "inconclusive", (
            f"too noisy to say: {seen} (noise floor {size(c.floor)}); {needed} repeats per "
            f"side would resolve ±{size(c.resolution)}"
        )
    if not rank_ok:
        return "inconclusive", (
            f"the change is not seen in most seconds (rank test p={c.p_rank:.2g}); {seen}"
        )
    return "inconclusive", (
        f"CI {pct(c.lo)}..{pct(c.hi)} (worse-positive) reaches beyond ±{size(c.resolution)}; {seen}"
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
    untrusted: Untrusted | None = None,
    metrics: list[str] | None = None,
) -> ScenarioComparison:
    """All compared metrics of one scenario. ``untrusted`` is None when the baseline can
    be trusted for a verdict, else the reason it cannot (for every metric), or a reason per
    trust class: those metrics' regressed/improved verdicts become inconclusive."""
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
    withheld = withheld_classes(untrusted)
    chosen = [BY_NAME[m] for m in metrics] if metrics else compared_metrics(kind)
    chosen = [m for m in chosen if kind in m.kinds]
    ra = repeats_by_metric(chosen, a, seed=settings.seed)
    rb = repeats_by_metric(chosen, b, seed=settings.seed + 1)
    compared: set[str] = set()
    for m in chosen:
        if not ra[m.name] and not rb[m.name]:
            continue
        seed = settings.seed ^ zlib.crc32(f"{name}/{m.name}".encode())
        r = compare_metric(m, ra[m.name], rb[m.name], settings, seed)
        _quantised(m, r, a + b)
        why = withheld.get(m.trust)
        if why is not None and r.verdict in ("regressed", "improved"):
            r.reason = f"would be {r.verdict}, but {why}; {r.reason}"
            r.verdict = "inconclusive"
        out.metrics.append(r)
        compared.add(m.trust)
    out.notes += _trust_notes(withheld, compared)
    out.verdict = _scenario_verdict(out.metrics)
    return out


def _quantised(metric: Metric, r: MetricResult, entries: list[Entry]) -> None:
    """No verdict from a difference a quantised reading cannot resolve. CPU time comes in
    clock ticks: a reading of N ticks has counting noise of about sqrt(N) ticks (Poisson),
    which two or three repeats that happen to agree tick for tick cannot show."""
    steps = [q for q in (metric.step(e) for e in entries) if q]
    if not steps or r.diff is None or r.baseline is None or r.candidate is None:
        return
    q = max(steps)
    top = max(abs(r.baseline), abs(r.candidate))
    counting = (
        2 * math.sqrt(top * q) * math.sqrt(1 / max(r.n_baseline, 1) + 1 / max(r.n_candidate, 1))
    )
    need = max(2 * q, counting)
    if r.baseline and metric.scale == "log":
        r.detectable = max(r.detectable or 0.0, need / r.baseline)
    if abs(r.diff) < need and r.verdict in ("regressed", "improved"):
        r.reason = (
            f"would be {r.verdict}, but the difference ({r.diff:+.3g} {metric.unit}) is within "
            f"the counting noise of CPU clock ticks (±{need:.3g} {metric.unit}); {r.reason}"
        )
        r.verdict = "inconclusive"


def withheld_classes(*specs: Untrusted | None) -> dict[str, str]:
    """Trust class -> why its verdicts are withheld. A string covers every class; later
    specs override earlier ones class by class (a scenario's own over "*")."""
    out: dict[str, str] = {}
    for spec in specs:
        if isinstance(spec, str):
            out.update(dict.fromkeys(TRUST_CLASSES, spec) if spec else {})
        elif spec:
            unknown = sorted(set(spec) - set(TRUST_CLASSES))
            if unknown:
                raise ValueError(f"unknown trust class(es) {unknown}; known: {TRUST_CLASSES}")
            out.update({k: v for k, v in spec.items() if v})
    return out


def _trust_notes(withheld: dict[str, str], compared: set[str]) -> list[str]:
    """One note per reason, naming the classes it withholds (of those compared here)."""
    if set(withheld) == set(TRUST_CLASSES) and len(set(withheld.values())) == 1:
        return [f"not trusted for a verdict: {withheld['time']}"]
    by_reason: dict[str, list[str]] = {}
    for cls in TRUST_CLASSES:
        if cls in withheld and cls in compared:
            by_reason.setdefault(withheld[cls], []).append(cls)
    return [
        f"{' and '.join(classes)} metrics not trusted for a verdict: {reason}"
        for reason, classes in by_reason.items()
    ]


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
    untrusted: dict[str, Untrusted] | None = None,
    notes: list[str] | None = None,
) -> Comparison:
    """Compare every scenario the candidate ran (in its order) with the baseline's.
    ``untrusted``: scenario (or "*": every scenario) -> an :data:`Untrusted` reason."""
    a, b = group_by_scenario(baseline), group_by_scenario(candidate)
    scenarios = []
    for name, entries in b.items():
        spec = withheld_classes((untrusted or {}).get("*"), (untrusted or {}).get(name))
        scenarios.append(compare_scenario(name, a.get(name, []), entries, settings, spec))
    out_notes = list(notes or [])
    only_a = [n for n in a if n not in b]
    if only_a:
        out_notes.append(f"in the baseline only (not compared): {', '.join(only_a)}")
    return Comparison(baseline_label, candidate_label, mode, scenarios, out_notes, settings)
