"""From results entries to verdicts: per-second windows, trimming, trust, notes."""

from __future__ import annotations

import random
from typing import Any

from perfaudit.analysis.compare import Comparison, GateSettings, compare_entries
from perfaudit.analysis.metrics import BY_NAME
from perfaudit.analysis.samples import Timeline, repeat_of
from perfaudit.load.histogram import LatencyHistogram
from perfaudit.load.result import SecondStats

FAST = GateSettings(iterations=300)


def entry(
    name: str, rng: random.Random, scale: float = 1.0, stall_second: int | None = None,
    valid: bool = True, new_conns: float = 0.01,
) -> dict[str, Any]:  # fmt: skip
    """A results entry like the runner's: 1 s warm-up + 8 steady seconds at 50 req/s."""
    whole = LatencyHistogram()
    timeline = []
    for t in range(9):
        sec = SecondStats(t)
        for _ in range(50):
            ms = rng.uniform(40, 80) * scale
            if t == stall_second:
                ms += 300
            sec.hist.record_us(int(ms * 1000))
            if t >= 1:
                whole.record_us(int(ms * 1000))
        sec.sent = sec.completed = 50
        timeline.append(sec.to_dict())
    pct = whole.percentiles_us([50.0, 95.0, 99.0])  # summary() walks every bucket: slow
    s = {k: pct[p] / 1000 for k, p in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0))}
    return {
        "name": name,
        "kind": "http",
        "target": {"label": "reference/optimized"},
        "scenario": {
            "kind": "http",
            "load": {"model": "open", "rate": 50.0},
            "warmup_s": 1.0,
            "duration_s": 8.0,
            "standins": {},
        },  # fmt: skip
        "summary": {
            **{f"{k}_ms": s[k] for k in ("p50", "p95", "p99")},
            "rps": 50.0,
            "error_rate": 0.0,
            "requests": 400,
        },  # fmt: skip
        "derived": {"redis": {"new_connections": new_conns}, "upstreams": None},
        "load": {"warmup_s": 1.0, "duration_s": 8.0, "timeline": timeline},
        "validity": {"valid": valid, "reasons": [] if valid else ["generator fell behind"]},
        "checks": [],
    }


def repeats(name: str, seed: int, n: int = 3, **kw: Any) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [entry(name, rng, **kw) for _ in range(n)]


def verdicts(c: Comparison) -> dict[str, str]:
    return {m.metric: m.verdict for s in c.scenarios for m in s.metrics}


def test_timeline_windows_exclude_warmup_and_trimming_drops_a_stall() -> None:
    rng = random.Random(1)
    e = entry("x", rng, stall_second=4)
    tl = Timeline.of(e)
    assert tl is not None and len(tl.seconds) == 8 and len(tl.windows) == 8
    r = repeat_of(BY_NAME["p95_ms"], e, tl)
    assert r is not None and len(r.windows) == 8 and len(r.draws) > 100
    # The exact p95 includes the stalled second (> 300 ms); the compared value does not.
    assert e["summary"]["p95_ms"] > 300 and r.value < 100
    err = repeat_of(BY_NAME["error_rate"], e, tl)
    assert err is not None and err.value == 0.0


def test_a_stall_in_one_repeat_does_not_make_an_aa_regression() -> None:
    a = repeats("x", 1)
    b = repeats("x", 2)
    b[1] = entry("x", random.Random(9), stall_second=6)
    c = compare_entries(a, b, baseline_label="A", candidate_label="B", mode="t", settings=FAST)
    assert "regressed" not in verdicts(c).values()
    assert c.verdict in ("unchanged", "inconclusive")


def test_a_real_slowdown_and_a_cost_regression_are_found() -> None:
    a = repeats("x", 1)
    b = repeats("x", 2, scale=1.25, new_conns=1.0)
    c = compare_entries(a, b, baseline_label="A", candidate_label="B", mode="t", settings=FAST)
    v = verdicts(c)
    assert v["p95_ms"] == "regressed" and v["p50_ms"] == "regressed"
    assert v["redis_new_connections_per_request"] == "regressed"
    assert c.verdict == "regressed" and c.regressed
    assert Comparison.from_dict(c.to_dict()).to_dict() == c.to_dict()


def test_untrusted_baseline_turns_verdicts_inconclusive_and_says_why() -> None:
    a = repeats("x", 1)
    b = repeats("x", 2, scale=1.5)
    c = compare_entries(
        a, b, baseline_label="A", candidate_label="B", mode="t", settings=FAST,
        untrusted={"x": "recorded on another machine"},
    )  # fmt: skip
    assert "regressed" not in verdicts(c).values()
    p95 = next(m for m in c.scenarios[0].metrics if m.metric == "p95_ms")
    assert p95.reason.startswith("would be regressed, but recorded on another machine")
    assert any("not trusted" in n for n in c.scenarios[0].notes)


def test_invalid_repeats_are_left_out_and_missing_scenarios_noted() -> None:
    a = [*repeats("x", 1), *repeats("gone", 3)]
    b = [*repeats("x", 2, n=2), entry("x", random.Random(4), valid=False), *repeats("new", 5)]
    c = compare_entries(a, b, baseline_label="A", candidate_label="B", mode="t", settings=FAST)
    by = {s.name: s for s in c.scenarios}
    assert any("1 invalid candidate repeat" in n for n in by["x"].notes)
    assert by["x"].metrics[0].n_candidate == 2
    assert by["new"].verdict == "missing"
    assert any("gone" in n for n in c.notes)
