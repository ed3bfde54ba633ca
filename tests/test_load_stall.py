"""Coordinated omission, documented by a test.

The server stops answering for 1 s out of every 2 s. The open model keeps sending on
schedule, so every request due during a stall waits for it and the stall dominates the
upper percentiles. The closed model's few users are stuck inside the stall too, so they
stop sending: the stall appears in only ~one request per user per stall, and p99 (and
mean) look healthy. Same server, same seconds: the closed model hides the stall.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from perfaudit.load import (
    ClosedModel,
    ConstantArrivalRate,
    LoadConfig,
    LoadResult,
    build_request,
    run_load,
)
from perfaudit.load.testserver import start_test_server

HOST = "127.0.0.1"


@pytest.fixture(scope="module")
def stalling_port() -> Iterator[int]:
    proc, port = start_test_server("--stall-period", "2", "--stall-for", "1")
    try:
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _run(port: int, model: object) -> LoadResult:
    req = build_request("GET", "/stall", f"{HOST}:{port}")
    return run_load(LoadConfig(host=HOST, port=port, model=model, request=req, timeout_s=5))  # type: ignore[arg-type]


def test_open_model_shows_the_stall_closed_model_hides_it(stalling_port: int) -> None:
    open_r = _run(stalling_port, ConstantArrivalRate(rate=100, duration_s=4, max_connections=200))
    closed_r = _run(stalling_port, ClosedModel(users=4, duration_s=4))
    o, c = open_r.latency.summary(), closed_r.latency.summary()

    # open: ~half the requests were due during a stall and waited for its end
    assert open_r.sent == pytest.approx(400, rel=0.05) and open_r.error_count == 0
    assert o["p99"] >= 500.0
    assert o["p90"] >= 300.0
    assert o["mean"] >= 100.0
    # the timeline shows which seconds stalled
    assert max(s.hist.percentile_us(99) for s in open_r.timeline) >= 500_000

    # closed: the same stalls touch only ~4 requests each, out of thousands
    assert closed_r.error_count == 0 and closed_r.sent > 400
    assert c["max"] >= 500.0  # the stall did happen to the closed users ...
    assert c["p99"] < o["p99"] / 10  # ... but its p99 does not show it
    assert c["p90"] < o["p90"] / 10
    assert c["mean"] < o["mean"] / 5
    # (the closed model's only trace of the stall is its throughput dip, in the timeline)
