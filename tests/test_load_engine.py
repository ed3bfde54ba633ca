"""The load engine against a real local server (perfaudit.load.testserver, a subprocess)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import replace

import pytest

from perfaudit.load import (
    ClosedModel,
    ConstantArrivalRate,
    LoadConfig,
    LoadResult,
    RampingArrivalRate,
    RequestTemplate,
    Stage,
    build_request,
    is_valid,
    merge_results,
    run_load,
)
from perfaudit.load.testserver import start_test_server

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    proc, port = start_test_server()
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _cfg(port: int, path: str, model: object, **kw: object) -> LoadConfig:
    return LoadConfig(
        host=HOST,
        port=port,
        model=model,
        request=build_request("GET", path, f"{HOST}:{port}"),
        **kw,
    )  # type: ignore[arg-type]


def test_open_model_holds_its_rate(port: int) -> None:
    r = run_load(_cfg(port, "/ok", ConstantArrivalRate(rate=200, duration_s=3), warmup_s=0.5))
    assert r.model == "open" and r.target_rps == pytest.approx(200)
    assert r.achieved_rps == pytest.approx(200, rel=0.05)
    assert r.sent == pytest.approx(600, rel=0.05)
    assert r.scheduled == pytest.approx(600, abs=1)
    assert r.ok == r.completed == r.latency.count == r.sent
    assert r.error_count == 0 and r.dropped == 0
    assert r.warmup_requests == pytest.approx(100, abs=2)
    assert r.warmup_latency.count == r.warmup_requests
    # latency from intended send >= service time from actual send
    assert r.latency.summary()["mean"] >= r.service.summary()["mean"]
    # timeline: per-second sends near the rate once past warm-up
    main = [s for s in r.timeline if 1 <= s.t < 3]
    assert main and all(abs(s.sent - 200) <= 20 for s in main)
    assert sum(s.completed for s in r.timeline) == r.sent + r.warmup_requests
    ok, reasons = is_valid(r)
    if r.cpu_pct_max <= 90:  # the shared machine could starve us; don't fail on that
        assert ok, reasons


def test_ramping_rate_sends_the_area_under_the_curve(port: int) -> None:
    model = RampingArrivalRate(stages=(Stage(1.0, 200), Stage(1.0, 0)), start_rps=0)
    r = run_load(_cfg(port, "/ok", model))
    assert r.target_rps == pytest.approx(100)  # 200 arrivals over 2 s
    assert r.sent == pytest.approx(200, abs=2)
    assert r.completed == r.sent


def test_result_round_trips_through_json(port: int) -> None:
    r = run_load(_cfg(port, "/ok", ConstantArrivalRate(rate=100, duration_s=1)))
    d = json.loads(json.dumps(r.to_dict()))
    back = LoadResult.from_dict(d)
    assert back.to_dict() == d
    assert back.latency.same_counts(r.latency)
    assert set(d["latency"]["summary"]) >= {
        "p50",
        "p90",
        "p95",
        "p99",
        "p99_9",
        "max",
        "mean",
        "count",
    }
    assert {"t", "sent", "completed", "errors", "p50_ms", "p99_ms", "hist"} <= set(d["timeline"][0])
    assert d["cpu"]["processes"][0]["cpu_pct"] >= 0


def test_closed_model_counts_and_think_time(port: int) -> None:
    r = run_load(
        _cfg(port, "/ok", ClosedModel(users=2, duration_s=1.0, think_time_s=(0.009, 0.011)))
    )
    assert r.model == "closed" and r.target_rps is None and r.concurrency == 2
    # each user: one request per ~10 ms think + ~0.2 ms round trip => ~190 in 1 s for 2 users
    assert 80 <= r.sent <= 210
    assert r.completed == r.ok == r.sent
    assert r.late == 0 and r.dropped == 0


def test_chunked_responses(port: int) -> None:
    r = run_load(_cfg(port, "/chunked", ConstantArrivalRate(rate=100, duration_s=1)))
    assert r.ok == r.sent == pytest.approx(100, abs=2)
    assert r.error_count == 0
    assert r.bytes_received >= r.ok * 100


def test_connection_close_server_reconnects(port: int) -> None:
    r = run_load(_cfg(port, "/close", ConstantArrivalRate(rate=100, duration_s=1, connections=2)))
    assert r.ok == r.sent == pytest.approx(100, abs=2)
    assert r.error_count == 0
    assert r.cpu[0].connections >= r.sent  # one connect per request


def test_eof_delimited_body(port: int) -> None:
    r = run_load(_cfg(port, "/eof", ConstantArrivalRate(rate=50, duration_s=1)))
    assert r.ok == r.sent and r.error_count == 0


def test_connection_close_in_closed_model(port: int) -> None:
    r = run_load(_cfg(port, "/close", ClosedModel(users=4, duration_s=0.5)))
    assert r.sent > 50 and r.error_count == 0 and r.ok == r.sent


def test_status_500_counted_by_status(port: int) -> None:
    r = run_load(_cfg(port, "/status/500", ConstantArrivalRate(rate=100, duration_s=1)))
    assert r.sent == pytest.approx(100, abs=2)
    assert r.errors["status"] == r.sent and r.ok == 0
    assert r.error_status == {500: r.sent} and r.status_codes == {500: r.sent}
    assert r.latency.count == r.sent  # responses with error codes still have a latency
    assert sum(s.errors for s in r.timeline) == r.sent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def test_connection_refused_counts_connect_errors() -> None:
    port = _free_port()  # nothing listens there
    r = run_load(_cfg(port, "/", ConstantArrivalRate(rate=100, duration_s=1)))
    assert r.sent == pytest.approx(100, abs=2)
    assert r.errors["connect"] == r.sent and r.completed == 0
    closed = run_load(_cfg(port, "/", ClosedModel(users=2, duration_s=0.5)))
    assert closed.errors["connect"] == closed.sent > 0
    assert closed.sent < 200  # 10 ms back-off per user, no busy loop
    ok, reasons = is_valid(r)
    assert ok  # the *generator* kept its schedule; errors are the server's business


def test_timeouts_and_mid_response_closes(port: int) -> None:
    r = run_load(_cfg(port, "/hang", ConstantArrivalRate(rate=20, duration_s=0.5), timeout_s=0.3))
    assert r.errors["timeout"] == r.sent == 10
    r = run_load(_cfg(port, "/drop", ConstantArrivalRate(rate=50, duration_s=0.5)))
    assert r.errors["closed"] == r.sent == 25
    r = run_load(_cfg(port, "/reset", ConstantArrivalRate(rate=50, duration_s=0.5)))
    assert r.errors["closed"] == r.sent == 25


def test_queue_bound_counts_dropped(port: int) -> None:
    # one connection, a 200 ms endpoint, 100 arrivals/s: most arrivals find it busy
    model = ConstantArrivalRate(rate=100, duration_s=1, max_connections=1, max_queue=5)
    r = run_load(_cfg(port, "/sleep/200", model))
    assert r.dropped > 50
    assert r.sent + r.dropped == r.scheduled
    assert r.late > 0  # queued arrivals go out late
    ok, reasons = is_valid(r)
    assert not ok and any("dropped" in x for x in reasons) and any("late" in x for x in reasons)


def test_templated_request_source(port: int) -> None:
    tpl = RequestTemplate("POST", "/ok", f"{HOST}:{port}", {"Content-Type": "application/json"})
    counter = iter(range(10**9))

    def source() -> bytes:
        return tpl.render(body=b'{"id":%d}' % next(counter))

    cfg = LoadConfig(
        host=HOST, port=port, model=ConstantArrivalRate(rate=100, duration_s=0.5), request=source
    )
    r = run_load(cfg)
    assert r.ok == r.sent == pytest.approx(50, abs=1)
    assert next(counter) == r.sent  # one body per request


def test_multi_process_sums_counts_and_merges_histograms(port: int) -> None:
    cfg = _cfg(port, "/ok", ConstantArrivalRate(rate=300, duration_s=2), processes=2, warmup_s=0.3)
    r = run_load(cfg)
    assert r.processes == 2 and len(r.cpu) == 2
    assert r.target_rps == pytest.approx(300)
    assert r.sent == pytest.approx(600, rel=0.05)
    assert r.achieved_rps == pytest.approx(300, rel=0.05)
    assert r.latency.count == r.completed == r.ok == r.sent
    assert sum(s.completed for s in r.timeline) == r.sent + r.warmup_requests
    assert sum(s.hist.count for s in r.timeline) == r.sent + r.warmup_requests
    closed = run_load(replace(cfg, model=ClosedModel(users=3, duration_s=0.5)))
    assert closed.processes == 2 and closed.concurrency == 3
    assert closed.latency.count == closed.sent > 0


def test_merge_results_is_exact(port: int) -> None:
    a = run_load(_cfg(port, "/ok", ConstantArrivalRate(rate=100, duration_s=0.5)))
    b = run_load(_cfg(port, "/status/503", ConstantArrivalRate(rate=100, duration_s=0.5)))
    m = merge_results([LoadResult.from_dict(a.to_dict()), LoadResult.from_dict(b.to_dict())])
    assert m.sent == a.sent + b.sent
    assert m.status_codes == {200: a.ok, 503: b.sent}
    both = a.latency.copy()
    both.add(b.latency)
    assert m.latency.same_counts(both)
    assert m.latency.summary() == both.summary()
    assert m.target_rps == pytest.approx(200)


def test_plain_asyncio_loop_and_coarse_timer(port: int) -> None:
    cfg = _cfg(
        port,
        "/ok",
        ConstantArrivalRate(rate=100, duration_s=1),
        use_uvloop=False,
        precise_timer=False,
    )
    r = run_load(cfg)
    assert r.cpu[0].loop == "asyncio"
    assert r.ok == r.sent == pytest.approx(100, abs=2)
    assert r.achieved_rps == pytest.approx(100, rel=0.05)


def test_is_valid_flags_rate_shortfall_and_a_saturated_generator(port: int) -> None:
    r = run_load(_cfg(port, "/ok", ConstantArrivalRate(rate=100, duration_s=0.5)))
    busy = replace(r, cpu=[replace(r.cpu[0], cpu_s=r.cpu[0].wall_s * 0.95)])
    ok, reasons = is_valid(busy)
    assert not ok and len(reasons) == 1 and "core" in reasons[0]
    assert r.target_rps is not None
    slow = replace(r, achieved_rps=r.target_rps * 0.9)
    ok, reasons = is_valid(slow)
    assert not ok and "achieved rate" in reasons[0]


def test_multi_process_with_spawn(port: int) -> None:
    # spawn (the macOS/Windows default) pickles the config: bytes requests are fine
    cfg = _cfg(
        port,
        "/ok",
        ConstantArrivalRate(rate=200, duration_s=0.5),
        processes=2,
        start_method="spawn",
    )
    r = run_load(cfg)
    assert r.processes == 2 and r.sent == pytest.approx(100, abs=2) and r.ok == r.sent
