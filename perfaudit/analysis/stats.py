"""Statistics for comparing repeated runs (pure functions, on scipy.stats and numpy).

- :func:`t_quantile`: Student's t quantiles (``scipy.stats.t.ppf``);
- :func:`mann_whitney`: the two-sided Mann-Whitney U test (``scipy.stats.mannwhitneyu``:
  exact for small samples, asymptotic with tie correction otherwise);
- :func:`bootstrap_effect`: a seeded two-level bootstrap of the change in medians;
- :func:`pooled_sd`: the pooled within-group standard deviation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy import stats

EXACT_MWU_MAX = 20_000  # exact U distribution up to this many arrangements of the ranks


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df degrees of freedom (df > 0)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    return float(stats.t.ppf(p, df))


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Two-sided p-value that x and y come from the same distribution (None if empty)."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return None
    small = math.comb(n1 + n2, n1) <= EXACT_MWU_MAX
    ties = len(set(x) | set(y)) < n1 + n2
    method: str | stats.PermutationMethod = "asymptotic"  # normal, tie- and continuity-corrected
    if small and not ties:
        method = "exact"
    elif small and min(n1, n2) >= 2:
        # scipy's "exact" ignores ties. A permutation test (scipy >= 1.13) allowed at least as
        # many resamples as there are arrangements enumerates them all, mid-ranks kept: exact.
        method = stats.PermutationMethod(n_resamples=EXACT_MWU_MAX)
    res = stats.mannwhitneyu(x, y, alternative="two-sided", method=method)
    return min(1.0, float(res.pvalue))


def bootstrap_effect(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    effect: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    iterations: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """CI of ``effect(median(b), median(a))`` by a two-level bootstrap.

    ``a`` and ``b`` hold, per repeat, draws of that repeat's value (its within-run
    bootstrap replicates, or just the value). Each iteration resamples the repeats of
    each side with replacement, then one draw of each chosen repeat: the CI reflects
    the spread between repeats (server restarts) and the sampling noise within them.
    ``effect`` is applied elementwise to arrays of medians. scipy.stats.bootstrap only
    resamples the observations of each sample (one level), not repeats and then a draw
    inside each chosen repeat, so the two levels are drawn here with numpy.
    """
    rng = np.random.default_rng(seed)
    ma = _medians(rng, a, iterations)
    mb = _medians(rng, b, iterations)
    out = np.sort(np.asarray(effect(mb, ma), dtype=float))
    tail = (1.0 - confidence) / 2.0
    lo = out[max(0, int(math.floor(tail * iterations)))]
    hi = out[min(iterations - 1, int(math.ceil((1.0 - tail) * iterations)) - 1)]
    return float(lo), float(hi)


def _medians(rng: np.random.Generator, side: Sequence[Sequence[float]], k: int) -> np.ndarray:
    """k bootstrap medians of one side: repeats with replacement, one draw of each."""
    n = len(side)
    lengths = np.array([len(d) for d in side])
    padded = np.zeros((n, int(lengths.max())))
    for i, d in enumerate(side):
        padded[i, : len(d)] = d
    rep = rng.integers(0, n, size=(k, n))
    draw = (rng.random((k, n)) * lengths[rep]).astype(int)  # uniform within each repeat
    return np.median(padded[rep, draw], axis=1)


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """Pooled within-group standard deviation and its degrees of freedom."""
    ss, df = 0.0, 0
    for g in groups:
        if len(g) > 1:
            arr = np.asarray(g, dtype=float)
            ss += float(((arr - arr.mean()) ** 2).sum())
            df += len(g) - 1
    return (math.sqrt(ss / df) if df else 0.0), df
