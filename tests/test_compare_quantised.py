"""CPU time per request is read in clock ticks: repeats that agree tick for tick are no
evidence of a change of a few ticks (seen in the audit: 11, 11 vs 14, 14 ticks over 30
requests read as "+27 %, CI +27..+27 %")."""

from __future__ import annotations

from typing import Any

from perfaudit.analysis.compare import compare_scenario
from perfaudit.analysis.metrics import CPU_TICK_MS


def _entry(ticks: int, requests: int = 30) -> dict[str, Any]:
    return {
        "name": "s", "kind": "http", "validity": {"valid": True},
        "summary": {"requests": requests},
        "server": {"process": {"processes": {
            "service": {"cpu_seconds": ticks * CPU_TICK_MS / 1000}}}},
    }  # fmt: skip


def _cpu(a: list[int], b: list[int], requests: int = 30) -> Any:
    c = compare_scenario(
        "s", [_entry(t, requests) for t in a], [_entry(t, requests) for t in b],
        metrics=["service_cpu_ms_per_request"],
    )  # fmt: skip
    (m,) = c.metrics
    return m


def test_a_few_ticks_of_difference_is_inconclusive_even_with_no_spread() -> None:
    m = _cpu([11, 11], [14, 14])
    assert m.verdict == "inconclusive"
    assert "counting noise of CPU clock ticks" in m.reason
    assert m.detectable is not None and m.detectable > abs(m.change)


def test_a_difference_far_beyond_the_counting_noise_still_gives_a_verdict() -> None:
    m = _cpu([100, 102], [300, 304])
    assert m.verdict == "regressed"
    m = _cpu([300, 304], [100, 102])
    assert m.verdict == "improved"
