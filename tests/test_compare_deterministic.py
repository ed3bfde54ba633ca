"""Deterministic metrics (instructions per request): one repeat per side gives a verdict,
from the spread of the run's sub-windows."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any

import pytest

from perfaudit.analysis.compare import Comparison, GateSettings, compare_entries
from perfaudit.analysis.metrics import BY_NAME
from perfaudit.analysis.samples import DRAWS, repeat_of, repeats_by_metric
from perfaudit.analysis.stats import pooled_sd

FAST = GateSettings(iterations=400)
SERVICE = BY_NAME["service_instructions_per_request"]
IR = 1.14e6


def ir_entry(
    rng: random.Random, scale: float = 1.0, scatter: float = 0.0005, n: int = 12,
    repeat: int = 1,
) -> dict[str, Any]:  # fmt: skip
    """One repeat of scenario "s": latency summary only, instructions per sub-window."""
    service = [IR * scale * (1 + rng.gauss(0, scatter)) for _ in range(n)]
    worker = [3 * IR * (1 + rng.gauss(0, scatter)) for _ in range(n)]
    total = [s + w for s, w in zip(service, worker, strict=True)]

    def node(ws: list[float]) -> dict[str, Any]:
        return {"per_request": statistics.fmean(ws), "windows": ws}

    p95 = 80.0 * math.exp(rng.gauss(0, 0.1))
    return {
        "name": "s",
        "kind": "http",
        "repeat": repeat,
        "validity": {"valid": True},
        "summary": {"p50_ms": p95 / 2, "p95_ms": p95, "p99_ms": 1.2 * p95, "rps": 50.0,
                    "error_rate": 0.0, "requests": 400},
        "cost": {"instructions": {
            "status": "ok", **node(total),
            "processes": {"service": node(service), "worker": node(worker)},
        }},
    }  # fmt: skip


def compare(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> Comparison:
    return compare_entries(a, b, baseline_label="A", candidate_label="B", mode="t", settings=FAST)


def verdict(c: Comparison, metric: str = SERVICE.name) -> str:
    return next(m.verdict for m in c.scenarios[0].metrics if m.metric == metric)


def test_a_deterministic_repeat_draws_the_mean_of_its_sub_windows() -> None:
    e = ir_entry(random.Random(1))
    r = repeat_of(SERVICE, e, None, seed=3)
    assert (
        r is not None
        and r.value == e["cost"]["instructions"]["processes"]["service"]["per_request"]
    )
    assert r.windows == () and len(r.draws) == DRAWS and r.sub_windows == 12 and r.repeat == 1
    assert r == repeat_of(SERVICE, e, None, seed=3)  # seeded
    se = statistics.stdev(math.log(x) for x in r.draws)
    assert se == pytest.approx(0.0005 / math.sqrt(12), rel=0.3)  # the standard error
    assert statistics.fmean(r.draws) == pytest.approx(r.value, rel=1e-4)
    # repeats_by_metric goes the same way, one seed per entry.
    by = repeats_by_metric([SERVICE], [e, ir_entry(random.Random(2))])
    assert [x.sub_windows for x in by[SERVICE.name]] == [12, 12]


def test_one_repeat_per_side_resolves_a_one_percent_change() -> None:
    c = compare([ir_entry(random.Random(1))], [ir_entry(random.Random(2), scale=1.01)])
    r = next(m for m in c.scenarios[0].metrics if m.metric == SERVICE.name)
    assert r.verdict == "regressed", r
    assert r.p_rank is None  # no rank test: instruction counts have no bursts
    assert r.floor is not None and r.floor < 0.001
    assert r.detectable == pytest.approx(0.005)  # the metric's own minimum effect
    # The latency of the same one-repeat comparison has no noise estimate.
    p95 = next(m for m in c.scenarios[0].metrics if m.metric == "p95_ms")
    assert p95.verdict == "inconclusive" and "one repeat" in p95.reason
    assert verdict(c, "worker_instructions_per_request") == "unchanged"


def test_a_tenth_of_a_percent_is_unchanged_and_aa_never_regresses() -> None:
    c = compare([ir_entry(random.Random(1))], [ir_entry(random.Random(2), scale=1.001)])
    assert verdict(c) == "unchanged"
    seen = set()
    for seed in range(40):
        rng = random.Random(100 + seed)
        seen.add(verdict(compare([ir_entry(rng)], [ir_entry(rng)])))
    assert seen == {"unchanged"}


def test_more_repeats_take_the_larger_of_between_and_within() -> None:
    rng = random.Random(4)
    a = [ir_entry(rng, repeat=i) for i in (1, 2, 3)]
    b = [ir_entry(rng, scale=1.01, repeat=i) for i in (1, 2, 3)]
    r = next(m for m in compare(a, b).scenarios[0].metrics if m.metric == SERVICE.name)
    assert r.verdict == "regressed" and r.noise is not None

    def logs(es: list[dict[str, Any]]) -> list[float]:
        return [math.log(SERVICE.value(e) or 0.0) for e in es]

    between, df = pooled_sd([logs(a), logs(b)])
    assert df == 4 and r.noise >= between


def test_without_sub_windows_one_repeat_gives_no_verdict() -> None:
    a, b = ir_entry(random.Random(1)), ir_entry(random.Random(2), scale=1.05)
    for e in (a, b):
        e["cost"]["instructions"]["processes"]["service"]["windows"] = []
    r = next(m for m in compare([a], [b]).scenarios[0].metrics if m.metric == SERVICE.name)
    assert r.verdict == "inconclusive" and "no sub-windows" in r.reason
