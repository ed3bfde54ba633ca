"""The counter rules on recorded entries (phase3 must hit, optimized must stay silent) and on
small hand-made entries for the cases the reference does not show at short durations."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from perfaudit.analysis.findings import NotChecked, _counters, diagnose
from perfaudit.analysis.findings import connection_churn as churn
from perfaudit.analysis.findings import kept_objects as kept
from perfaudit.analysis.findings import memory_growth as memory
from perfaudit.analysis.findings import redis_round_trips as redis_rt
from perfaudit.analysis.findings import unbounded_queue as queue
from perfaudit.analysis.findings import upstream_dominates as upstream

DATA = Path(__file__).parent / "data" / "findings" / "counters"
RULES = (redis_rt, churn, memory, upstream, queue)
IDS = tuple(m.RULE.id for m in RULES)


def _entries(name: str) -> list[dict[str, Any]]:
    return json.loads((DATA / f"{name}.json").read_text())["entries"]


PHASE3 = {e["name"]: e for e in _entries("phase3")}
OPTIMIZED = _entries("optimized")
JOBS = {e["target"]["variant"]: e for e in _entries("jobs-overload")}


def _hits(module: Any, entry: dict[str, Any]) -> list[Any]:
    out = module.RULE.check(entry)
    assert not isinstance(out, NotChecked), out
    return out


# Labelled expectations: the phase3 scenarios each rule must flag, and the switch it names.
EXPECTED = {
    redis_rt: ({"webhook-text", "e2e-flow", "telegram-job", "callback-success"},
               {"redis-pipeline", "atomic-getdel"}),
    churn: (set(PHASE3), {"redis-pool", "http-keepalive"}),
    upstream: ({"callback-success", "admin-webhook-info"},
               {"callback-background", "response-cache"}),
}  # fmt: skip


@pytest.mark.parametrize("module", list(EXPECTED), ids=lambda m: m.RULE.id)
def test_phase3_hits_where_the_switches_are_off(module: Any) -> None:
    expected, switches = EXPECTED[module]
    hit = {
        name
        for name, e in PHASE3.items()
        if module.RULE.check(e) not in ([],) and not isinstance(module.RULE.check(e), NotChecked)
    }
    assert hit == expected
    named = {
        s for name in expected for f in diagnose(PHASE3[name], (module.RULE.id,))["findings"]
        for s in f["switches"]
    }  # fmt: skip
    assert switches <= named


def test_phase3_redis_findings_say_what() -> None:
    titles = [f.title for f in _hits(redis_rt, PHASE3["webhook-text"])]
    assert any("sequential Redis round trips" in t for t in titles)
    assert any("HSET then EXPIRE" in t for t in titles)
    callback = _hits(redis_rt, PHASE3["callback-success"])
    assert [f.evidence["pair"] for f in callback] == [["get", "del"]]
    assert "GETDEL" in callback[0].fix


def test_churn_names_redis_and_upstreams_from_the_exact_counter() -> None:
    titles = " ".join(f.title for f in _hits(churn, PHASE3["e2e-flow"]))
    assert "Redis (" in titles and "upstream telegram (" in titles
    assert all(f.severity == "high" for f in _hits(churn, PHASE3["e2e-flow"]))


@pytest.mark.parametrize("entry", OPTIMIZED, ids=lambda e: f"{e['name']}")
def test_optimized_gives_no_counter_findings(entry: dict[str, Any]) -> None:
    for module in RULES:
        out = module.RULE.check(entry)
        assert isinstance(out, NotChecked) or out == [], (module.RULE.id, out)


def test_job_backlog_hits_phase3_overloaded_and_not_optimized() -> None:
    found = _hits(queue, JOBS["phase3"])
    assert len(found) == 1 and found[0].evidence["backlog_s"] >= queue.BACKLOG_MIN_S
    assert "backpressure" in diagnose(JOBS["phase3"], (queue.ID,))["findings"][0]["switches"]
    assert _hits(queue, JOBS["optimized"]) == []


def test_memory_warmup_step_is_not_growth() -> None:
    # Recorded: phase3's service grows 9 MB in the first half of its first window, then stays.
    entry = PHASE3["admin-webhook-info"]
    rss = [s["rss_mb"] for s in entry["server"]["process"]["processes"]["service"]["timeline"]]
    assert rss[-1] - rss[0] > memory.NOISE_MB
    assert _hits(memory, entry) == []


def _with_rss(entry: dict[str, Any], mb_per_s: float, process: str = "service") -> dict[str, Any]:
    e = copy.deepcopy(entry)
    tl = e["server"]["process"]["processes"][process]["timeline"]
    for i, s in enumerate(tl):
        s["rss_mb"] = 60.0 + mb_per_s * s["t"] + (0.05 if i % 2 else -0.05)
    return e


def test_memory_linear_growth_is_found_per_1k_requests() -> None:
    e = _with_rss(PHASE3["admin-webhook-info"], 1.0)  # 1 MB/s at 8 req/s = 125 MB/1k
    (f,) = _hits(memory, e)
    assert f.impact.unit == "MB/1k requests"
    assert f.impact.value == pytest.approx(1000 / e["summary"]["rps"], rel=0.05)
    assert f.severity == "high"
    assert _hits(memory, _with_rss(PHASE3["admin-webhook-info"], 0.2)) == []  # < 2 MB noise


def test_kept_objects_a_logger_per_request_names_leak_fix() -> None:
    e = copy.deepcopy(OPTIMIZED[0])
    n = _counters.requests(e)
    e["server"]["memory"] = {"start": {}, "end": {}, "growth": {"gc_objects": 5 * n, "loggers": n}}
    (f,) = kept.check(e)
    assert "1 loggers" in f.title and "getLogger" in f.fix
    assert f.impact.value == pytest.approx(
        (kept.LOGGER_BYTES + 2 * kept.OBJECT_BYTES) * 1000 / 2**20, rel=0.01
    )
    # On a reference target with leak-fix off, the catalog names it.
    e["target"]["switches"] = sorted(set(e["target"]["switches"]) - {"leak-fix"})
    [stored] = [d for d in diagnose(e)["findings"] if d["rule"] == "kept-objects"]
    assert stored["switches"] == ["leak-fix"]
    e["server"]["memory"]["growth"] = {"gc_objects": 40, "loggers": 0}  # a cache filling
    assert kept.check(e) == []


def _redis_entry(commands: dict[str, int], round_trips: int | None, n: int = 10) -> dict:
    redis = {"commands": commands, "total_commands": sum(commands.values()),
             "connections_received": 0}  # fmt: skip
    if round_trips is not None:
        redis["round_trips"] = round_trips
    return {"name": "planted", "kind": "http", "summary": {"requests": n},
            "scenario": {"request": {"method": "GET", "path": "/n-plus-one"}},
            "server": {"redis": redis}, "derived": {"requests": n}}  # fmt: skip


def test_repeated_gets_suggest_mget_unless_pipelined() -> None:
    (f,) = _hits(redis_rt, _redis_entry({"get": 200}, 200))
    assert f.evidence["command"] == "get" and "MGET" in f.fix and f.severity == "high"
    assert _hits(redis_rt, _redis_entry({"get": 200}, 10)) == []  # one read per request


def test_pairs_without_round_trips_only_when_no_transaction_ran() -> None:
    assert len(_hits(redis_rt, _redis_entry({"get": 10, "del": 10}, None))) == 1
    assert (
        _hits(redis_rt, _redis_entry({"get": 10, "del": 10, "multi": 10, "exec": 10}, None)) == []
    )


def test_rules_that_cannot_look_say_why() -> None:
    bare = {"name": "x", "kind": "http", "summary": {"requests": 5}, "server": {},
            "derived": {"requests": 5}}  # fmt: skip
    for module in (redis_rt, churn, memory):
        out = module.RULE.check(bare)
        assert isinstance(out, NotChecked) and out.reason
    assert (
        "pyinstrument"
        in upstream.RULE.check({**bare, "summary": {"requests": 5, "p50_ms": 3}}).reason
    )


def test_trend_interval() -> None:
    t = [i * 0.25 for i in range(12)]
    assert _counters.trend(t, [5.0] * 12).excludes_zero() is False
    rising = _counters.trend(t, [1.0 + 2 * x + (0.01 if i % 2 else 0) for i, x in enumerate(t)])
    assert rising is not None and rising.low > 1.9 and rising.rise == pytest.approx(5.5, rel=0.01)


def _awaits_entry(into: str, share: float, p50_ms: float = 40.0) -> dict[str, Any]:
    """An external http entry whose pyinstrument awaits put ``share`` of the request time on
    one own line whose callee is in package ``into``."""
    site = {"function": "handler", "file": "/srv/app.py", "line": 12, "code": "await c.get(u)",
            "seconds": share * 2.0, "share": share,
            "into": [{"package": into, "seconds": share * 2.0}]}  # fmt: skip
    return {
        "name": "ext", "kind": "http", "target": {"label": "external http://127.0.0.1:9"},
        "scenario": {"request": {"method": "GET", "path": "/x"}},
        "summary": {"requests": 100, "p50_ms": p50_ms},
        "profiles": {"pyinstrument": {"status": "ok", "processes": {"service": {
            "awaits": {"requests": 50, "request_seconds": 2.0, "sites": [site]}}}}},
    }  # fmt: skip


def test_upstream_awaits_inside_an_http_client_dominate_at_the_calling_line() -> None:
    [f] = upstream.check(_awaits_entry("httpx", 0.7))
    assert f.where[0].function == "handler" and f.where[0].line == 12
    assert f.impact.unit == "ms/request" and f.impact.value == pytest.approx(28.0)
    # Awaiting Redis, or a small share of the request in the client, is not an upstream.
    assert upstream.check(_awaits_entry("redis", 0.7)) == []
    assert upstream.check(_awaits_entry("httpx", 0.1)) == []
