"""The comparison's statistics on synthetic samples: no run, no I/O."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from perfaudit.analysis.compare import GateSettings, compare_metric
from perfaudit.analysis.metrics import BY_NAME
from perfaudit.analysis.samples import Repeat
from perfaudit.analysis.stats import bootstrap_effect, mann_whitney, pooled_sd, t_quantile

FAST = GateSettings(iterations=400)
P95 = BY_NAME["p95_ms"]


def side(
    rng: random.Random, n: int, restart_sd: float, shift: float = 0.0, base: float = 80.0
) -> list[Repeat]:
    """n repeats: a restart effect per repeat, 8 per-second windows, within-run draws."""
    out = []
    for _ in range(n):
        v = base * math.exp(rng.gauss(0, restart_sd)) * (1 + shift)
        windows = tuple(v * math.exp(rng.gauss(0, 0.05)) for _ in range(8))
        draws = tuple(v * math.exp(rng.gauss(0, 0.02)) for _ in range(50))
        out.append(Repeat(v, windows, draws))
    return out


def test_t_quantiles_match_tables() -> None:
    assert t_quantile(0.975, 4) == pytest.approx(2.776, abs=1e-3)
    assert t_quantile(0.995, 2) == pytest.approx(9.925, abs=1e-3)
    assert t_quantile(0.975, 30) == pytest.approx(2.042, abs=1e-3)
    assert t_quantile(0.025, 10) == pytest.approx(-2.228, abs=1e-3)


def test_mann_whitney_exact_and_approximate() -> None:
    # 3 vs 3 fully separated: the smallest two-sided p there is, 2/20.
    assert mann_whitney([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    assert mann_whitney([1, 2, 3], [1, 2, 3]) == pytest.approx(1.0)
    far = mann_whitney(list(range(30)), list(range(100, 130)))
    assert far is not None and far < 1e-6
    assert mann_whitney([], [1.0]) is None


def test_mann_whitney_with_ties_is_an_exact_permutation_test() -> None:
    """Small samples with ties: every arrangement of the mid-ranks, two-sided as twice the
    smaller tail (scipy's convention)."""
    x, y = [1.0, 1.0, 2.0, 3.0], [2.0, 3.0, 3.0, 4.0, 4.0]
    pooled = [*x, *y]
    ranks = {v: mid_rank(pooled, v) for v in set(pooled)}
    u = sum(ranks[v] for v in x) - len(x) * (len(x) + 1) / 2
    null = [
        sum(ranks[pooled[i]] for i in idx) - len(x) * (len(x) + 1) / 2
        for idx in itertools.combinations(range(len(pooled)), len(x))
    ]
    lo = sum(v <= u + 1e-9 for v in null) / len(null)
    hi = sum(v >= u - 1e-9 for v in null) / len(null)
    assert mann_whitney(x, y) == pytest.approx(min(1.0, 2 * min(lo, hi)))


def mid_rank(values: list[float], v: float) -> float:
    """The mid-rank of v among values."""
    below = sum(x < v for x in values)
    return below + (sum(x == v for x in values) + 1) / 2


def test_bootstrap_is_seeded_and_covers_the_shift() -> None:
    a = [[100.0, 101.0], [99.0, 100.0], [100.5]]
    b = [[120.0, 121.0], [119.0], [120.5, 119.5]]
    ratio = lambda y, x: y / x  # noqa: E731
    first = bootstrap_effect(a, b, ratio, iterations=500, seed=3)
    assert first == bootstrap_effect(a, b, ratio, iterations=500, seed=3)
    assert 1.15 < first[0] <= first[1] < 1.25


def test_pooled_sd_ignores_singletons() -> None:
    sd, df = pooled_sd([[1.0, 3.0], [5.0], [2.0, 4.0]])
    assert df == 2 and sd == pytest.approx(math.sqrt(2))


def test_aa_gives_no_verdict_over_many_seeded_trials() -> None:
    verdicts = []
    for seed in range(150):
        rng = random.Random(seed)
        r = compare_metric(P95, side(rng, 3, 0.03), side(rng, 3, 0.03), FAST, seed)
        verdicts.append(r.verdict)
    assert "regressed" not in verdicts and "improved" not in verdicts
    assert verdicts.count("unchanged") > 0  # a quiet metric is called unchanged, not just "?"


def test_a_20_percent_slowdown_is_regressed() -> None:
    for seed in range(20):
        rng = random.Random(1000 + seed)
        r = compare_metric(P95, side(rng, 3, 0.02), side(rng, 3, 0.02, shift=0.20), FAST, seed)
        assert r.verdict == "regressed", (seed, r)
        assert r.change is not None and 0.1 < r.change < 0.3
        assert r.ci is not None and r.ci[0] > 0
        assert "worse by" in r.reason


def test_a_speedup_is_improved_and_throughput_direction_is_respected() -> None:
    rng = random.Random(7)
    r = compare_metric(P95, side(rng, 3, 0.02), side(rng, 3, 0.02, shift=-0.3), FAST, 1)
    assert r.verdict == "improved"
    rps = BY_NAME["rps"]
    rng = random.Random(8)
    lower = compare_metric(rps, side(rng, 3, 0.01, base=200), side(rng, 3, 0.01, -0.3, 200), FAST)
    assert lower.verdict == "regressed"  # less throughput is worse


def test_noisy_samples_are_inconclusive_not_regressed() -> None:
    rng = random.Random(11)
    r = compare_metric(P95, side(rng, 3, 0.4), side(rng, 3, 0.4, shift=0.2), FAST, 2)
    assert r.verdict == "inconclusive"
    assert "too noisy" in r.reason and r.floor is not None


def test_one_repeat_per_side_never_gives_a_verdict() -> None:
    rng = random.Random(5)
    r = compare_metric(P95, side(rng, 1, 0.01), side(rng, 1, 0.01, shift=0.5), FAST)
    assert r.verdict == "inconclusive" and "one repeat" in r.reason


def test_rates_near_zero_compare_as_differences() -> None:
    err = BY_NAME["error_rate"]
    zeros = [Repeat(0.0), Repeat(0.0), Repeat(0.0)]
    assert compare_metric(err, zeros, zeros, FAST).verdict == "unchanged"
    tiny = [Repeat(0.001), Repeat(0.0), Repeat(0.002)]
    r = compare_metric(err, zeros, tiny, FAST)
    assert r.verdict in ("unchanged", "inconclusive")  # 0.1 % is below the 0.5 % minimum
    big = [Repeat(0.20), Repeat(0.21), Repeat(0.19)]
    assert compare_metric(err, zeros, big, FAST).verdict == "regressed"
