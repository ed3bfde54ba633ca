"""What a profiler costs: the profiled run's figures as ratios to the unprofiled run of the
same scenario in the same run.

Under the open model (a fixed arrival rate) a slower service still serves the offered rate, so
throughput ratios stay near 1 and the cost shows in latency; a closed model (``users:``)
shows it in throughput.
"""

from __future__ import annotations

from typing import Any

RATIOS = {"rps": "rps_ratio", "p50_ms": "p50_ratio", "p99_ms": "p99_ratio"}
OPTIONAL = {"jobs_per_s": "jobs_per_s_ratio", "e2e_p95_ms": "e2e_p95_ratio"}


def _ratio(profiled: Any, base: Any) -> float | None:
    if not isinstance(profiled, int | float) or not isinstance(base, int | float) or not base:
        return None
    return round(profiled / base, 4)


def ratios(base: dict[str, Any], profiled: dict[str, Any]) -> dict[str, Any]:
    """``base`` and ``profiled`` are run summaries (``entry["summary"]``)."""
    out: dict[str, Any] = {}
    for key, name in RATIOS.items():
        out[name] = _ratio(profiled.get(key), base.get(key))
    for key, name in OPTIONAL.items():
        if key in base and key in profiled:
            out[name] = _ratio(profiled[key], base[key])
    out["unprofiled"] = {k: base.get(k) for k in (*RATIOS, *OPTIONAL) if k in base}
    out["profiled"] = {k: profiled.get(k) for k in (*RATIOS, *OPTIONAL) if k in profiled}
    return out
