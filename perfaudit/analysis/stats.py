"""Small, dependency-free statistics for comparing repeated runs (pure functions).

- :func:`t_quantile`: Student's t quantiles (regularized incomplete beta + bisection);
- :func:`mann_whitney`: the two-sided Mann-Whitney U test (exact for small samples,
  normal approximation with tie correction otherwise);
- :func:`bootstrap_effect`: a seeded two-level bootstrap of the change in medians.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Callable, Sequence

EXACT_MWU_MAX = 20_000  # enumerate the U distribution up to this many arrangements


# -- Student's t ------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta function (Numerical Recipes 6.4)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c if abs(1.0 + aa / c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-12:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbeta = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    front = math.exp(lbeta + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, x)
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The p-quantile of Student's t with df degrees of freedom (df > 0)."""
    if not 0.0 < p < 1.0:
        raise ValueError("p must be in (0, 1)")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10 * max(1.0, hi):
            break
    return (lo + hi) / 2.0


# -- Mann-Whitney U -----------------------------------------------------------------------
def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def mann_whitney(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Two-sided p-value that x and y come from the same distribution (None if empty)."""
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return None
    pooled = [*x, *y]
    ranks = _ranks(pooled)
    r1 = sum(ranks[:n1])
    u1 = r1 - n1 * (n1 + 1) / 2.0
    mean_u = n1 * n2 / 2.0
    if math.comb(n1 + n2, n1) <= EXACT_MWU_MAX:
        # Exact: every way to pick which pooled ranks belong to x (ties keep mid-ranks).
        dev = abs(u1 - mean_u)
        total = extreme = 0
        for idx in itertools.combinations(range(n1 + n2), n1):
            u = sum(ranks[i] for i in idx) - n1 * (n1 + 1) / 2.0
            total += 1
            extreme += abs(u - mean_u) >= dev - 1e-9
        return extreme / total
    n = n1 + n2
    ties = {}
    for v in pooled:
        ties[v] = ties.get(v, 0) + 1
    tie_term = sum(t**3 - t for t in ties.values()) / (n * (n - 1))
    var = n1 * n2 / 12.0 * ((n + 1) - tie_term)
    if var <= 0:
        return 1.0
    z = (abs(u1 - mean_u) - 0.5) / math.sqrt(var)
    return min(1.0, 2.0 * (1.0 - statistics.NormalDist().cdf(max(0.0, z))))


# -- bootstrap -----------------------------------------------------------------------------
def bootstrap_effect(
    a: Sequence[Sequence[float]],
    b: Sequence[Sequence[float]],
    effect: Callable[[float, float], float],
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
    """
    rng = random.Random(seed)
    out = []
    for _ in range(iterations):
        ma = statistics.median(_draw(rng, a))
        mb = statistics.median(_draw(rng, b))
        out.append(effect(mb, ma))
    out.sort()
    tail = (1.0 - confidence) / 2.0
    lo = out[max(0, int(math.floor(tail * iterations)))]
    hi = out[min(iterations - 1, int(math.ceil((1.0 - tail) * iterations)) - 1)]
    return lo, hi


def _draw(rng: random.Random, side: Sequence[Sequence[float]]) -> list[float]:
    n = len(side)
    out = []
    for _ in range(n):
        draws = side[rng.randrange(n)]
        out.append(draws[rng.randrange(len(draws))])
    return out


def pooled_sd(groups: Sequence[Sequence[float]]) -> tuple[float, int]:
    """Pooled within-group standard deviation and its degrees of freedom."""
    ss, df = 0.0, 0
    for g in groups:
        if len(g) > 1:
            m = statistics.fmean(g)
            ss += sum((v - m) ** 2 for v in g)
            df += len(g) - 1
    return (math.sqrt(ss / df) if df else 0.0), df
