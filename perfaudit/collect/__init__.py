"""Server-side metrics over a measurement window.

Each collector takes a baseline at ``start()`` and returns a JSON-ready dict at ``stop()``;
:class:`MetricsWindow` runs a set of them together and turns failures into ``{"error": ...}``.
:func:`per_request` divides the counters by the number of requests the load sent.
"""

from perfaudit.collect.base import Collector, Result
from perfaudit.collect.derive import per_request
from perfaudit.collect.loop_lag import LoopLagCollector
from perfaudit.collect.process import ProcessSampler
from perfaudit.collect.redis_info import RedisInfoDelta
from perfaudit.collect.standins import StandinDelta
from perfaudit.collect.window import MetricsWindow, collectors_for

__all__ = [
    "Collector",
    "LoopLagCollector",
    "MetricsWindow",
    "ProcessSampler",
    "RedisInfoDelta",
    "Result",
    "StandinDelta",
    "collectors_for",
    "per_request",
]
