"""Load generation: a hand-written HTTP/1.1 keep-alive client, open/closed load models,
HdrHistogram latencies with coordinated-omission correction, multi-process runs.

    from perfaudit.load import ConstantArrivalRate, LoadConfig, build_request, run_load, is_valid

    req = build_request("GET", "/health", "127.0.0.1:8000")
    result = run_load(LoadConfig(host="127.0.0.1", port=8000, request=req, warmup_s=2,
                                 model=ConstantArrivalRate(rate=500, duration_s=10)))
    ok, reasons = is_valid(result)
    result.latency.summary()   # {"count", "min", "mean", "p50", ..., "max"} in ms
"""

from perfaudit.load.client import (
    ERROR_KINDS,
    Connection,
    ConnectionPool,
    RequestTemplate,
    build_request,
)
from perfaudit.load.engine import Engine, run_load, run_load_async
from perfaudit.load.histogram import LatencyHistogram, merge
from perfaudit.load.loop import install, new_event_loop, uvloop_available
from perfaudit.load.models import (
    ClosedModel,
    ConstantArrivalRate,
    LoadConfig,
    LoadModel,
    RampingArrivalRate,
    Stage,
    model_from_dict,
)
from perfaudit.load.result import LoadResult, ProcessStats, SecondStats, is_valid, merge_results

__all__ = [
    "ERROR_KINDS",
    "ClosedModel",
    "Connection",
    "ConnectionPool",
    "ConstantArrivalRate",
    "Engine",
    "LatencyHistogram",
    "LoadConfig",
    "LoadModel",
    "LoadResult",
    "ProcessStats",
    "RampingArrivalRate",
    "RequestTemplate",
    "SecondStats",
    "Stage",
    "build_request",
    "install",
    "is_valid",
    "merge",
    "merge_results",
    "model_from_dict",
    "new_event_loop",
    "run_load",
    "run_load_async",
    "uvloop_available",
]
