"""Arrival schedules for the open model: intended send times from a piecewise-linear rate.

Segment ``(duration_s, r0, r1)`` ramps the rate linearly from r0 to r1. The k-th arrival
is the time at which the expected cumulative count N(t) = integral of the rate reaches
``k + phase``. Within a segment N(tau) = r0*tau + a*tau^2 with a = (r1 - r0)/(2*duration),
so tau has a closed form; no per-request randomness (a constant rate gives exactly
evenly spaced sends, like wrk2 and k6's arrival-rate executors).

``phase`` in [0, 1) shifts the schedule so that N generator processes each running 1/N
of the rate with phases 0, 1/N, 2/N, ... interleave into one evenly spaced stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

Segment = tuple[float, float, float]  # (duration_s, start_rps, end_rps)


def arrival_offsets(segments: Sequence[Segment], phase: float = 0.0) -> Iterator[float]:
    """Yield intended send times (seconds from the schedule start), ascending."""
    if not 0.0 <= phase < 1.0:
        raise ValueError("phase must be in [0, 1)")
    t_base = 0.0
    carry = 0.0  # expected arrivals before the current segment
    n = phase  # cumulative count of the next arrival
    for duration, r0, r1 in segments:
        if duration <= 0:
            continue
        if r0 < 0 or r1 < 0:
            raise ValueError("rates must be >= 0")
        end = carry + (r0 + r1) * duration / 2.0
        a = (r1 - r0) / (2.0 * duration)
        while n < end:
            x = n - carry
            if x <= 0.0:
                tau = 0.0
            elif a == 0.0:
                tau = x / r0
            else:
                # Stable root of a*tau^2 + r0*tau - x = 0 (no cancellation when a ~ 0).
                tau = 2.0 * x / (r0 + math.sqrt(max(0.0, r0 * r0 + 4.0 * a * x)))
            yield t_base + min(tau, duration)
            n += 1.0
        carry = end
        t_base += duration


def expected_arrivals(segments: Sequence[Segment]) -> float:
    """Expected number of arrivals (area under the rate curve)."""
    return sum((r0 + r1) * d / 2.0 for d, r0, r1 in segments if d > 0)


def with_warmup(segments: Sequence[Segment], warmup_s: float, warmup_rps: float) -> list[Segment]:
    """Prefix a constant-rate warm-up segment."""
    out: list[Segment] = []
    if warmup_s > 0:
        out.append((warmup_s, warmup_rps, warmup_rps))
    out.extend(segments)
    return out
