"""LatencyHistogram: exact merge, encode/decode round trip, fast record == hdrh's record."""

from __future__ import annotations

import json
import random

from hdrh.histogram import HdrHistogram

from perfaudit.load.histogram import HIGHEST_US, LatencyHistogram, merge


def _values(seed: int, n: int) -> list[int]:
    rnd = random.Random(seed)
    # log-uniform from 1 µs to ~100 s, plus edge values of every bucket boundary
    vals = [int(10 ** rnd.uniform(0, 8)) for _ in range(n)]
    vals += [0, 1, 2047, 2048, 2049, 4095, 4096, 1 << 20, HIGHEST_US]
    return vals


def test_fast_record_matches_hdrh_record_value() -> None:
    vals = _values(1, 50_000)
    ours = LatencyHistogram()
    ref = HdrHistogram(1, HIGHEST_US, 3)
    for v in vals:
        ours.record_us(v)
        ref.record_value(v)
    assert bytes(ours._counts) == bytes(ref.counts)
    assert ours.count == ref.get_total_count()
    for p in (50.0, 90.0, 99.0, 99.9, 100.0):
        assert ours.percentile_us(p) == ref.get_value_at_percentile(p)
    assert ours.max_us() == ref.get_max_value()


def test_clamps_out_of_range_values() -> None:
    h = LatencyHistogram()
    h.record_us(-5)
    h.record_us(HIGHEST_US * 10)
    assert h.count == 2
    assert h.min_us() == 0
    assert h.max_us() >= HIGHEST_US


def test_merge_is_exact() -> None:
    a_vals, b_vals = _values(2, 20_000), _values(3, 30_000)
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for v in a_vals:
        a.record_us(v)
        both.record_us(v)
    for v in b_vals:
        b.record_us(v)
        both.record_us(v)
    merged = merge([a, b])
    assert merged.same_counts(both)
    assert merged.summary() == both.summary()
    # merging into a non-empty histogram too, and min/max survive the merge
    a.add(b)
    assert a.same_counts(both)
    assert a.summary() == both.summary()
    assert a.min_us() == both.min_us() == 0


def test_encode_decode_round_trip_and_merge_via_encoded_form() -> None:
    a, b = LatencyHistogram(), LatencyHistogram()
    for v in _values(4, 10_000):
        a.record_us(v)
    for v in _values(5, 10_000):
        b.record_us(v)
    enc = a.encode()
    assert isinstance(enc, str) and len(enc) < 40_000
    back = LatencyHistogram.decode(enc)
    assert back.same_counts(a)
    assert back.summary() == a.summary()
    # "processes" ship encoded strings; the parent merges them exactly
    merged = LatencyHistogram.decode(a.encode())
    merged.add(LatencyHistogram.decode(b.encode()))
    direct = LatencyHistogram()
    direct.add(a)
    direct.add(b)
    assert merged.same_counts(direct)
    assert merged.summary() == direct.summary()
    # to_dict is JSON-able and restores the same histogram
    d = json.loads(json.dumps(a.to_dict()))
    assert LatencyHistogram.from_dict(d).same_counts(a)


def test_summary_shape_and_accuracy() -> None:
    h = LatencyHistogram()
    for us in range(1, 100_001):  # 1 µs .. 100 ms, uniform
        h.record_us(us)
    s = h.summary()
    assert set(s) == {"count", "min", "mean", "p50", "p90", "p95", "p99", "p99_9", "max", "stdev"}
    assert s["count"] == 100_000
    # 3 significant digits: within 0.1 % of the exact order statistic (values in ms)
    for key, exact in (
        ("p50", 50.0),
        ("p90", 90.0),
        ("p99", 99.0),
        ("p99_9", 99.9),
        ("max", 100.0),
    ):
        assert abs(s[key] - exact) / exact < 0.001, (key, s[key])
    assert abs(s["mean"] - 50.0) < 0.05


def test_empty_histogram_summary_is_zero() -> None:
    s = LatencyHistogram().summary()
    assert s["count"] == 0 and s["p99"] == 0.0
    assert LatencyHistogram.decode(LatencyHistogram().encode()).count == 0


def test_two_digit_histograms_merge_exactly_too() -> None:
    a, b, both = LatencyHistogram(2), LatencyHistogram(2), LatencyHistogram(2)
    for v in _values(6, 5_000):
        a.record_us(v)
        both.record_us(v)
    for v in _values(7, 5_000):
        b.record_us(v)
        both.record_us(v)
    a.add(LatencyHistogram.decode(b.encode()))
    assert a.same_counts(both)
