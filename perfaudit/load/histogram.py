"""Latency histograms: HdrHistogram, 3 significant digits, 1 µs .. 1 h, values in µs.

The ``hdrhistogram`` package (module ``hdrh``) provides the counts array, exact merge
(``add``: a C loop over two counts arrays) and the V2 wire encoding (zlib + base64),
so histograms recorded in different processes merge exactly.

Its ``record_value`` costs about 1 µs (several Python method calls per value). The load
engine records 2-3 values per request, at tens of thousands of requests per second, so
:meth:`LatencyHistogram.record_us` computes the counts index inline (same arithmetic as
``HdrHistogram._counts_index_for``; a test checks the two agree for every bucket) and
keeps count/min/max in the wrapper, pushing them into the ``hdrh`` object before
anything reads it (``_sync``).
"""

from __future__ import annotations

import sys
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # 1 hour
SIGNIFICANT_DIGITS = 3

# Percentiles reported by summary(); keys are JSON/template friendly ("p99_9" = 99.9th).
PERCENTILES: dict[str, float] = {
    "p50": 50.0,
    "p90": 90.0,
    "p95": 95.0,
    "p99": 99.0,
    "p99_9": 99.9,
}


class LatencyHistogram:
    """A mergeable latency histogram recording integer microseconds."""

    __slots__ = (
        "_h",
        "_counts",
        "_n",
        "_min",
        "_max",
        "_mask",
        "_shift",
        "_unit",
        "_half_mag",
        "_half",
    )

    def __init__(
        self, digits: int = SIGNIFICANT_DIGITS, *, _hdr: HdrHistogram | None = None
    ) -> None:
        h = _hdr or HdrHistogram(LOWEST_US, HIGHEST_US, digits)
        self._h = h
        self._counts = h.counts
        # Index arithmetic constants, copied so the hot path reads slots, not hdrh attrs.
        self._mask: int = h.sub_bucket_mask
        self._unit: int = h.unit_magnitude
        self._half_mag: int = h.sub_bucket_half_count_magnitude
        self._half: int = h.sub_bucket_half_count
        self._shift: int = self._unit + self._half_mag + 1
        self._n: int = h.total_count
        self._min: int = h.min_value if h.total_count else sys.maxsize
        self._max: int = h.max_value

    # -- recording ---------------------------------------------------------------------

    def record_us(self, value: int) -> None:
        """Record one value in µs (clamped into [0, 1 h])."""
        if value < 0:
            value = 0
        elif value > HIGHEST_US:
            value = HIGHEST_US
        bucket = (value | self._mask).bit_length() - self._shift
        self._counts[
            ((bucket + 1) << self._half_mag) + (value >> (bucket + self._unit)) - self._half
        ] += 1
        self._n += 1
        if value > self._max:
            self._max = value
        if value < self._min:
            self._min = value

    def record_s(self, seconds: float) -> None:
        """Record one value given in seconds."""
        self.record_us(int(seconds * 1_000_000))

    def _sync(self) -> HdrHistogram:
        h = self._h
        h.total_count = self._n
        h.max_value = self._max
        h.min_value = self._min
        return h

    # -- merge / serialization ---------------------------------------------------------

    def add(self, other: LatencyHistogram) -> None:
        """Exact merge: counts are added bucket by bucket (same ``digits`` on both sides;
        otherwise hdrh re-records each bucket's value, still lossless at the coarser one)."""
        if other._n == 0:
            return
        self._sync().add(other._sync())
        # hdrh's add() mis-sets min when self was empty; keep our own min/max.
        self._n += other._n
        self._max = max(self._max, other._max)
        self._min = min(self._min, other._min)
        self._sync()

    def encode(self) -> str:
        """Compact, base64 V2 HdrHistogram encoding (interoperable with other HDR libs)."""
        return self._sync().encode().decode("ascii")

    @classmethod
    def decode(cls, encoded: str) -> LatencyHistogram:
        return cls(_hdr=HdrHistogram.decode(encoded))

    def copy(self) -> LatencyHistogram:
        return LatencyHistogram.decode(self.encode())

    def empty_like(self) -> LatencyHistogram:
        return LatencyHistogram(self.digits)

    # -- queries -----------------------------------------------------------------------

    @property
    def digits(self) -> int:
        return int(self._h.significant_figures)

    @property
    def count(self) -> int:
        return self._n

    def percentile_us(self, percentile: float) -> int:
        if self._n == 0:
            return 0
        return int(self._sync().get_value_at_percentile(percentile))

    def percentiles_us(self, percentiles: list[float]) -> dict[float, int]:
        """Several percentiles in one pass over the counts array."""
        if self._n == 0:
            return {p: 0 for p in percentiles}
        return {
            p: int(v) for p, v in self._sync().get_percentile_to_value_dict(percentiles).items()
        }

    def max_us(self) -> int:
        return int(self._sync().get_max_value()) if self._n else 0

    def min_us(self) -> int:
        return int(self._sync().get_min_value()) if self._n else 0

    def mean_us(self) -> float:
        return float(self._sync().get_mean_value()) if self._n else 0.0

    def summary(self) -> dict[str, float]:
        """count, min, mean, p50, p90, p95, p99, p99_9, max, stdev — times in milliseconds.

        Values are HdrHistogram-equivalent values (within 0.1 % of what was recorded);
        max is the highest value equivalent to the largest recording.
        """
        if self._n == 0:
            out: dict[str, float] = {"count": 0, "min": 0.0, "mean": 0.0}
            out.update({k: 0.0 for k in PERCENTILES})
            out.update({"max": 0.0, "stdev": 0.0})
            return out
        h = self._sync()
        pct = h.get_percentile_to_value_dict(list(PERCENTILES.values()))
        out = {
            "count": self._n,
            "min": h.get_min_value() / 1000.0,
            "mean": h.get_mean_value() / 1000.0,
        }
        for key, p in PERCENTILES.items():
            out[key] = pct[p] / 1000.0
        out["max"] = h.get_max_value() / 1000.0
        out["stdev"] = h.get_stddev() / 1000.0
        return out

    def same_counts(self, other: LatencyHistogram) -> bool:
        """True when both hold exactly the same bucket counts."""
        return self._n == other._n and bytes(self._counts) == bytes(other._counts)

    def to_dict(self) -> dict[str, Any]:
        return {"encoded": self.encode(), "summary": self.summary()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyHistogram:
        return cls.decode(data["encoded"])

    def __repr__(self) -> str:
        s = self.summary()
        return f"LatencyHistogram(count={self._n}, p50={s['p50']}ms, p99={s['p99']}ms, max={s['max']}ms)"


def merge(histograms: list[LatencyHistogram]) -> LatencyHistogram:
    out = histograms[0].empty_like() if histograms else LatencyHistogram()
    for h in histograms:
        out.add(h)
    return out
