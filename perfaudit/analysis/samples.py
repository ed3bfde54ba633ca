"""From a results entry to what the comparison needs per metric and repeat.

Per repeat (one target start, one measured window) a metric has:

- ``value``: the metric over the whole window (exact: the 3-digit HDR histogram);
- ``windows``: its value per sub-window of the per-second timeline (>= MIN_WINDOW_REQUESTS
  requests each), pooled across repeats for the rank test;
- ``draws``: within-run bootstrap replicates of ``value`` (resampled seconds: a block
  bootstrap, which keeps the correlation inside a second), for the bootstrap CI.

Metrics without a timeline (per-request costs, job and flow latencies) have the value
only; their CI and noise floor come from the spread between repeats.

Deterministic metrics (instructions per request) have no timeline value: their ``draws``
are bootstrap replicates of the mean of the run's per-sub-window values, and they have no
``windows`` (the rank test guards against bursts in time, which instruction counts do not
have); ``sub_windows`` says how many values the draws came from.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np

from perfaudit.analysis.metrics import Entry, Metric
from perfaudit.load.histogram import LatencyHistogram

MIN_WINDOW_REQUESTS = 20
MAX_WINDOW_SECONDS = 5
TRIM_MIN_WINDOWS = 4
DRAWS = 200

Sparse = dict[int, int]  # value (µs) -> count


@dataclass(frozen=True)
class Second:
    completed: int
    errors: int
    hist: Sparse


@dataclass(frozen=True)
class Repeat:
    value: float
    windows: tuple[float, ...] = ()
    draws: tuple[float, ...] = ()
    repeat: int | None = None  # the entry's 1-based repeat number, when it recorded one
    sub_windows: int = 0  # deterministic metrics: the per-sub-window values behind ``draws``

    def spread(self) -> tuple[float, ...]:
        return self.draws or (self.value,)


@dataclass
class Timeline:
    """The measured seconds of one entry, decoded once for every metric."""

    seconds: list[Second]
    windows: list[list[Second]] = field(default_factory=list)

    @classmethod
    def of(cls, entry: Entry) -> Timeline | None:
        load = entry.get("load") or {}
        warmup = math.ceil(float(load.get("warmup_s", 0.0)) - 1e-9)
        end = warmup + math.ceil(float(load.get("duration_s", 0.0)) - 1e-9)
        seconds = []
        for s in load.get("timeline") or []:
            if warmup <= s["t"] < end:
                seconds.append(Second(s["completed"], s["errors"], _sparse(s["hist"])))
        if not seconds:
            return None
        return cls(seconds, _group(seconds))


def _sparse(encoded: str) -> Sparse:
    h = LatencyHistogram.decode(encoded)
    if h.count == 0:
        return {}
    hdr = h._sync()
    # list() copies the counts at C speed; hdrh's recorded iterator walks every bucket in
    # Python and is 100x slower. Values are each bucket's highest equivalent value, as there.
    return {
        int(hdr.get_highest_equivalent_value(hdr.get_value_from_index(i))): int(c)
        for i, c in enumerate(list(hdr.counts))
        if c
    }


def _group(seconds: list[Second]) -> list[list[Second]]:
    """Consecutive seconds merged until each window has enough requests for a percentile."""
    out: list[list[Second]] = []
    cur: list[Second] = []
    for s in seconds:
        cur.append(s)
        if sum(x.completed for x in cur) >= MIN_WINDOW_REQUESTS or len(cur) >= MAX_WINDOW_SECONDS:
            out.append(cur)
            cur = []
    if cur and out:
        out[-1].extend(cur)
    elif cur:
        out.append(cur)
    return out


Merged = tuple[Sparse, int, int, int]  # histogram, completed, errors, seconds


def _merge(seconds: list[Second]) -> Merged:
    hist: Sparse = {}
    completed = errors = 0
    for s in seconds:
        completed += s.completed
        errors += s.errors
        for v, c in s.hist.items():
            hist[v] = hist.get(v, 0) + c
    return hist, completed, errors, len(seconds)


def _percentile(hist: Sparse, pct: float) -> float | None:
    total = sum(hist.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(pct / 100.0 * total))
    seen = 0
    for v in sorted(hist):
        seen += hist[v]
        if seen >= rank:
            return v / 1000.0
    return None


def _value(metric: Metric, merged: Merged) -> float | None:
    hist, completed, errors, n = merged
    w = metric.window
    if w is None:
        return None
    if w.startswith("p"):
        return _percentile(hist, float(w[1:]))
    if w == "error_rate":
        return errors / completed if completed else None
    if w == "rps":
        return completed / n if n else None
    raise ValueError(f"unknown window value {w!r}")


def _window_value(metric: Metric, seconds: list[Second]) -> float | None:
    return _value(metric, _merge(seconds))


def _trimmed(metric: Metric, timeline: Timeline) -> list[Second]:
    """The steady seconds without the worst windows (1 in 8, at least 1 of >= 4): on a
    shared machine a one-second stall of a neighbour would otherwise move a repeat's p95
    and decide a verdict. Latency only: errors and throughput count every second."""
    n = len(timeline.windows)
    if not (metric.window or "").startswith("p") or n < TRIM_MIN_WINDOWS:
        return timeline.seconds
    scored = sorted(timeline.windows, key=lambda w: _window_value(metric, w) or 0.0)
    keep = {id(x) for w in scored[: n - max(1, n // 8)] for x in w}
    return [s for s in timeline.seconds if id(s) in keep]


def _resamples(timeline: Timeline, seed: int) -> list[Merged]:
    """DRAWS block-bootstrap resamples of the seconds, merged (shared by every metric)."""
    rng = random.Random(seed)
    n = len(timeline.seconds)
    return [_merge([timeline.seconds[rng.randrange(n)] for _ in range(n)]) for _ in range(DRAWS)]


def _deterministic(metric: Metric, entry: Entry, value: float, seed: int) -> Repeat:
    """DRAWS bootstrap replicates of the mean of the entry's sub-window values (resampled
    with replacement), centred on the exact value like the timeline metrics' draws."""
    number = entry.get("repeat")
    windows = np.asarray(metric.window_values(entry), dtype=float)
    if len(windows) < 2:
        return Repeat(value, repeat=number, sub_windows=len(windows))
    rng = np.random.default_rng(seed)
    means = windows[rng.integers(0, len(windows), size=(DRAWS, len(windows)))].mean(axis=1)
    centre = float(windows.mean())
    if metric.scale == "log" and centre > 0:
        draws = value * means / centre
    else:
        draws = np.maximum(0.0, value + means - centre)
    return Repeat(value, (), tuple(float(x) for x in draws), number, len(windows))


def repeat_of(
    metric: Metric,
    entry: Entry,
    timeline: Timeline | None,
    resamples: list[Merged] | None = None,
    seed: int = 0,
) -> Repeat | None:
    value = metric.value(entry)
    if value is None:
        return None
    if metric.deterministic:
        return _deterministic(metric, entry, value, seed)
    number = entry.get("repeat")
    if timeline is None or metric.window is None:
        return Repeat(value, repeat=number)
    windows = [_window_value(metric, w) for w in timeline.windows]
    whole = _window_value(metric, timeline.seconds)
    kept = _trimmed(metric, timeline)
    if kept is not timeline.seconds and whole:
        trimmed = _window_value(metric, kept)
        if trimmed is not None:
            value = value * trimmed / whole  # the exact value, scaled like the trimmed one
    draws: list[float] = []
    if whole is not None and len(timeline.seconds) > 1:
        for merged in resamples if resamples is not None else _resamples(timeline, 0):
            v = _value(metric, merged)
            if v is None:
                continue
            # Centre the replicates on the exact value: ratios for log metrics (the
            # timeline's 2-digit histograms are 1 % coarse), differences for rates.
            if metric.scale == "log" and whole > 0:
                draws.append(value * v / whole)
            else:
                draws.append(max(0.0, value + v - whole))
    return Repeat(value, tuple(x for x in windows if x is not None), tuple(draws), number)


def repeats_by_metric(
    metrics: list[Metric], entries: list[Entry], seed: int = 0
) -> dict[str, list[Repeat]]:
    """Per metric, one Repeat per entry that recorded it."""
    out: dict[str, list[Repeat]] = {m.name: [] for m in metrics}
    for i, e in enumerate(entries):
        timeline = Timeline.of(e) if any(m.window for m in metrics) else None
        resamples = _resamples(timeline, seed + 7919 * i) if timeline else None
        for m in metrics:
            r = repeat_of(m, e, timeline, resamples, seed + 7919 * i)
            if r is not None:
                out[m.name].append(r)
    return out
