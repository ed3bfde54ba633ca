"""An untrusted baseline withholds verdicts for every metric or per trust class."""

from __future__ import annotations

import random
from typing import Any

import pytest
from test_compare_entries import FAST, entry

from perfaudit.analysis.compare import Comparison, Untrusted, compare_entries, withheld_classes


def runs(seed: int, scale: float = 1.0, conns: float = 0.01, ir: float = 1.14e6) -> list[Any]:
    """Three repeats of "x": latency scaled, new Redis connections, service instructions."""
    rng = random.Random(seed)
    out = []
    for _ in range(3):
        e = entry("x", rng, scale=scale, new_conns=conns)
        ws = [ir * (1 + rng.gauss(0, 0.0005)) for _ in range(10)]
        node = {"per_request": sum(ws) / len(ws), "windows": ws}
        e["cost"] = {"instructions": {"status": "ok", **node, "processes": {"service": node}}}
        out.append(e)
    return out


def worse(untrusted: dict[str, Untrusted] | None) -> Comparison:
    """Slower, more connections and more instructions: every class regressed."""
    return compare_entries(
        runs(1), runs(2, scale=1.5, conns=1.0, ir=1.2e6), baseline_label="A",
        candidate_label="B", mode="t", settings=FAST, untrusted=untrusted,
    )  # fmt: skip


def by_metric(c: Comparison) -> dict[str, tuple[str, str]]:
    return {m.metric: (m.verdict, m.reason) for m in c.scenarios[0].metrics}


TIME, COUNT, IR = "p95_ms", "redis_new_connections_per_request", "service_instructions_per_request"


def test_every_class_regresses_when_trusted() -> None:
    v = by_metric(worse(None))
    assert {v[m][0] for m in (TIME, COUNT, IR)} == {"regressed"}


def test_only_the_untrusted_class_is_withheld() -> None:
    c = worse({"x": {"time": "recorded on another machine"}})
    v = by_metric(c)
    assert v[TIME][0] == "inconclusive"
    assert v[TIME][1].startswith("would be regressed, but recorded on another machine; ")
    assert v["rps"][0] != "regressed"  # throughput is time too
    assert v[COUNT][0] == "regressed" and v[IR][0] == "regressed"
    assert c.scenarios[0].verdict == "regressed"
    assert c.scenarios[0].notes == [
        "time metrics not trusted for a verdict: recorded on another machine"
    ]


def test_classes_merge_over_the_wildcard_and_notes_group_them() -> None:
    c = worse({"*": {"instructions": "valgrind 3.22 vs 3.19"}, "x": {"time": "other CPU"}})
    v = by_metric(c)
    assert v[TIME][0] == "inconclusive" and v[IR][0] == "inconclusive"
    assert v[COUNT][0] == "regressed"
    assert "valgrind 3.22 vs 3.19" in v[IR][1]
    assert c.scenarios[0].notes == [
        "time metrics not trusted for a verdict: other CPU",
        "instructions metrics not trusted for a verdict: valgrind 3.22 vs 3.19",
    ]
    same = worse(
        {"x": {"time": "not shown to run as fast", "instructions": "not shown to run as fast"}}
    )
    assert same.scenarios[0].notes == [
        "time and instructions metrics not trusted for a verdict: not shown to run as fast"
    ]


def test_a_plain_string_still_withholds_every_class() -> None:
    for untrusted in ({"x": "recorded on another machine"}, {"*": "recorded on another machine"}):
        c = worse(untrusted)
        assert "regressed" not in {m.verdict for m in c.scenarios[0].metrics}
        assert c.scenarios[0].notes == ["not trusted for a verdict: recorded on another machine"]


def test_withheld_classes() -> None:
    assert withheld_classes(None, "") == {}
    assert withheld_classes("why") == {"time": "why", "count": "why", "instructions": "why"}
    assert withheld_classes("all", {"count": "own"})["count"] == "own"
    assert withheld_classes({"count": "old"}, "new") == dict.fromkeys(
        ("time", "count", "instructions"), "new"
    )
    with pytest.raises(ValueError, match="unknown trust class"):
        withheld_classes({"latency": "typo"})
