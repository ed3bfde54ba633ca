"""Arrival schedules and load-model parsing (no network)."""

from __future__ import annotations

import pytest

from perfaudit.load.models import (
    ClosedModel,
    ConstantArrivalRate,
    RampingArrivalRate,
    Stage,
    model_from_dict,
)
from perfaudit.load.schedulers import arrival_offsets, expected_arrivals, with_warmup


def test_constant_rate_is_evenly_spaced() -> None:
    times = list(arrival_offsets([(2.0, 100.0, 100.0)]))
    assert len(times) == 200
    assert times[0] == 0.0
    gaps = {round(b - a, 9) for a, b in zip(times, times[1:], strict=False)}
    assert gaps == {0.01}


def test_ramp_follows_the_rate_curve() -> None:
    segs = RampingArrivalRate(stages=(Stage(10, 100), Stage(10, 100), Stage(5, 0))).segments()
    assert segs == [(10, 0.0, 100), (10, 100, 100), (5, 100, 0)]
    times = list(arrival_offsets(segs))
    assert abs(len(times) - expected_arrivals(segs)) <= 1  # 500 + 1000 + 250
    assert times == sorted(times)
    first = [t for t in times if t < 10]
    # linear ramp 0 -> 100/s over 10 s: N(t) = 5 t^2, so half the ramp's arrivals by t = 7.07 s
    assert abs(sum(1 for t in first if t < 7.0711) - len(first) / 2) <= 2
    # in the flat stage the spacing is the target rate's
    mid = [t for t in times if 12 <= t < 18]
    assert abs(len(mid) - 600) <= 1


def test_phases_interleave_processes_into_one_stream() -> None:
    single = list(arrival_offsets([(1.0, 300.0, 300.0)]))
    parts = [list(arrival_offsets([(1.0, 100.0, 100.0)], phase=k / 3)) for k in range(3)]
    merged = sorted(t for p in parts for t in p)
    assert len(merged) == len(single)
    assert max(abs(a - b) for a, b in zip(merged, single, strict=True)) < 1e-9


def test_warmup_prefix() -> None:
    segs = with_warmup([(3.0, 50.0, 50.0)], 1.0, 50.0)
    times = list(arrival_offsets(segs))
    assert len(times) == 200
    assert sum(1 for t in times if t < 1.0) == 50


def test_model_from_dict() -> None:
    m = model_from_dict({"type": "open", "rate": 200, "duration_s": 3, "max_connections": 10})
    assert isinstance(m, ConstantArrivalRate) and m.rate == 200 and m.max_connections == 10
    r = model_from_dict(
        {"stages": [{"duration_s": 10, "target_rps": 100}, {"duration_s": 5, "target_rps": 20}]}
    )
    assert isinstance(r, RampingArrivalRate)
    assert r.total_duration_s == 15 and r.stages[1] == Stage(5, 20)
    c = model_from_dict(
        {"type": "closed", "users": 4, "duration_s": 2, "think_time_s": [0.01, 0.02]}
    )
    assert isinstance(c, ClosedModel) and c.think_time_s == (0.01, 0.02)
    with pytest.raises(ValueError):
        model_from_dict({"type": "bogus"})


def test_scaling_for_processes() -> None:
    m = ConstantArrivalRate(rate=1000, duration_s=1, max_connections=100)
    half = m.scaled(0.5)
    assert half.rate == 500 and half.max_connections == 50 and half.duration_s == 1
    c = ClosedModel(users=5, duration_s=1)
    assert [c.scaled_users(i, 2) for i in range(2)] == [3, 2]
