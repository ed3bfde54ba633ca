"""The noise estimate: one wild repeat left out, and the resolution each verdict states."""

from __future__ import annotations

import dataclasses
import io
import math
import random
import xml.etree.ElementTree as ET

import pytest
from rich.console import Console
from test_compare_entries import FAST as FAST_ENTRIES
from test_compare_entries import repeats as entries

from perfaudit.analysis.compare import (
    REPEATS_CAP,
    GateSettings,
    MetricResult,
    compare_entries,
    compare_metric,
)
from perfaudit.analysis.metrics import BY_NAME
from perfaudit.analysis.samples import Repeat
from perfaudit.analysis.stats import t_quantile
from perfaudit.report import junit, markdown_summary, terminal
from perfaudit.report.outcome import build_report

FAST = GateSettings(iterations=400)
P95 = BY_NAME["p95_ms"]


def values(rng: random.Random, n: int, sd: float, base: float = 80.0) -> list[float]:
    return [base * math.exp(rng.gauss(0, sd)) for _ in range(n)]


def reps(vs: list[float]) -> list[Repeat]:
    return [Repeat(v, repeat=i + 1) for i, v in enumerate(vs)]


def test_one_wild_repeat_leaves_the_noise_floor_nearly_as_it_was() -> None:
    for n, factor in ((5, 1.25), (3, 1.6)):  # 3 v 3 pays more for the lost df: t(3) vs t(4)
        rng = random.Random(n)
        a, b = values(rng, n, 0.03), values(rng, n, 0.03)
        clean = compare_metric(P95, reps(a), reps(b), FAST)
        wild = list(b)
        wild[1] = b[1] * 2.5  # a neighbour stalled the whole repeat
        kept = compare_metric(P95, reps(a), reps(wild), FAST)
        raw = compare_metric(
            P95, reps(a), reps(wild), GateSettings(iterations=400, outlier_alpha=0)
        )
        assert clean.outlier is None and raw.outlier is None
        assert kept.outlier is not None
        assert (kept.outlier["side"], kept.outlier["repeat"]) == ("candidate", 2)
        assert kept.outlier["score"] > kept.outlier["limit"]
        assert "candidate repeat 2 left out of the noise estimate" in kept.reason
        assert clean.floor is not None and kept.floor is not None and raw.floor is not None
        assert clean.floor / 1.05 < kept.floor < factor * clean.floor, (n, clean, kept)
        assert raw.floor > 4 * kept.floor  # what the wild repeat did to the floor before


def test_an_ordinary_spread_is_not_trimmed() -> None:
    trimmed = 0
    for seed in range(300):
        rng = random.Random(seed)
        n = (3, 5)[seed % 2]
        r = compare_metric(P95, reps(values(rng, n, 0.05)), reps(values(rng, n, 0.05)), FAST)
        trimmed += r.outlier is not None
    assert trimmed <= 6  # outlier_alpha = 1 %: about 3 expected in 300
    # Nor a side of two, nor fewer than five repeats in all.
    two = compare_metric(P95, reps([80.0, 200.0]), reps([80.0, 81.0, 79.0]), FAST)
    four = compare_metric(P95, reps([80.0, 81.0]), reps([80.0, 240.0]), FAST)
    assert two.outlier is None and four.outlier is None


def test_a_wild_repeat_of_counts_with_no_other_spread_is_kept() -> None:
    conns = BY_NAME["redis_new_connections_per_request"]
    r = compare_metric(conns, reps([0.0, 0.0, 0.0]), reps([0.0, 0.0, 1.0]), FAST)
    assert r.outlier is None  # a zero spread cannot scale an outlier test


def test_detectable_is_the_min_effect_or_the_floor_and_never_unknown_with_repeats() -> None:
    rng = random.Random(3)
    quiet = compare_metric(P95, reps(values(rng, 5, 0.002)), reps(values(rng, 5, 0.002)), FAST)
    assert quiet.verdict == "unchanged" and quiet.floor is not None
    assert quiet.floor < math.log1p(0.05)
    assert quiet.detectable == pytest.approx(0.05)  # the minimum effect, relative
    assert quiet.repeats_needed is None
    noisy = compare_metric(P95, reps(values(rng, 3, 0.2)), reps(values(rng, 3, 0.2)), FAST)
    assert noisy.floor is not None and noisy.detectable == pytest.approx(math.expm1(noisy.floor))
    err = BY_NAME["error_rate"]
    zeros = [Repeat(0.0)] * 3
    flat = compare_metric(err, zeros, zeros, FAST)
    assert flat.detectable == pytest.approx(err.abs_min)  # abs metrics: in the unit
    one = compare_metric(P95, reps([80.0]), reps([81.0]), FAST)
    assert one.detectable is None and one.repeats_needed is None


def test_an_inconclusive_verdict_names_what_it_could_see_and_the_repeats_it_needs() -> None:
    rng = random.Random(11)
    r = compare_metric(P95, reps(values(rng, 3, 0.15)), reps(values(rng, 3, 0.15)), FAST)
    assert r.verdict == "inconclusive" and r.noise is not None and r.floor is not None
    n = r.repeats_needed
    assert n is not None and 3 < n <= REPEATS_CAP

    def floor_at(k: int) -> float:
        return t_quantile(FAST.floor_quantile, 2 * k - 2) * r.noise * math.sqrt(2 / k)  # type: ignore[operator]

    assert floor_at(n) <= math.log1p(0.10) < floor_at(n - 1)
    seen = f"could have seen ±{100 * (r.detectable or 0):.1f} %"
    assert seen in r.reason and f"about {n} repeats per side would resolve ±10.0 %" in r.reason
    hopeless = compare_metric(P95, reps(values(rng, 3, 2.0)), reps(values(rng, 3, 2.0)), FAST)
    assert hopeless.repeats_needed == REPEATS_CAP + 1
    assert f"more than {REPEATS_CAP} repeats per side would resolve" in hopeless.reason


def test_a_metrics_own_min_effect_and_resolution_replace_the_settings() -> None:
    tight = dataclasses.replace(P95, min_effect=0.01, resolution=0.02)
    rng = random.Random(5)
    a = values(rng, 5, 0.001)
    b = [v * 1.03 for v in values(rng, 5, 0.001)]
    assert compare_metric(P95, reps(a), reps(b), FAST).verdict == "unchanged"  # < 5 %
    r = compare_metric(tight, reps(a), reps(b), FAST)
    assert r.verdict == "regressed" and "1.0 % minimum effect" in r.reason
    same = compare_metric(tight, reps(a), reps(values(rng, 5, 0.001)), FAST)
    assert same.verdict == "unchanged" and "within ±2.0 %" in same.reason


def test_stored_comparisons_without_the_new_fields_still_load() -> None:
    old = {
        "metric": "p95_ms", "label": "p95 latency", "scale": "log", "n_baseline": 3,
        "n_candidate": 3, "baseline": 80.0, "candidate": 81.0, "change": 0.0125,
        "ci": [-0.02, 0.04], "diff": 1.0, "diff_ci": [-1.6, 3.2], "noise": 0.02,
        "floor": 0.09, "p_rank": 0.5, "verdict": "unchanged", "reason": "within ±10.0 %",
    }  # fmt: skip
    r = MetricResult.from_dict(old)
    assert r.detectable is None and r.repeats_needed is None and r.outlier is None
    assert MetricResult.from_dict(r.to_dict()) == r


def test_every_output_shows_the_detectable_change() -> None:
    base = entries("x", 1)
    cand = entries("x", 2)
    c = compare_entries(
        base, cand, baseline_label="A", candidate_label="B", mode="t", settings=FAST_ENTRIES
    )
    report = build_report("t", cand, c)
    p95 = next(m for m in c.scenarios[0].metrics if m.metric == "p95_ms")
    assert p95.detectable is not None
    text = f"±{100 * p95.detectable:.1f} %"
    out = io.StringIO()
    terminal.print_report(report, Console(file=out, width=200))
    assert "detectable" in out.getvalue() and text in out.getvalue()
    md = markdown_summary.render(report)
    assert "| noise floor | verdict | detectable |" in md and text in md
    assert report.to_dict()["scenarios"][0]["detectable"]["p95_ms"] == text
    assert c.to_dict()["scenarios"][0]["metrics"][0]["detectable"] is not None
    root = ET.fromstring(junit.render(report))
    messages = [s.get("message", "") for s in root.iter("skipped")]
    details = [s.text or "" for s in root.iter("system-out")] + [
        s.text or "" for s in root.iter("skipped")
    ]
    assert all(m.startswith("inconclusive (detectable ") for m in messages)
    assert any(f"detectable {text}" in d for d in details)
