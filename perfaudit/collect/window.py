"""Start and stop a set of collectors together; a failing one yields ``{"error": ...}``.

A run must not die because one source is missing (external targets have no Redis or
stand-ins, a service may not be instrumented): the error is reported in its place.
"""

from __future__ import annotations

from pathlib import Path

from perfaudit.collect.base import Collector, Result
from perfaudit.collect.canary import CanaryCollector
from perfaudit.collect.connections import ConnectionCounter
from perfaudit.collect.loop_lag import LoopLagCollector
from perfaudit.collect.process import ProcessSampler
from perfaudit.collect.redis_info import RedisInfoDelta
from perfaudit.collect.standins import StandinDelta


def _error(exc: BaseException) -> Result:
    return {"error": f"{type(exc).__name__}: {exc}"}


class MetricsWindow:
    def __init__(self, collectors: dict[str, Collector]) -> None:
        self.collectors = dict(collectors)
        self._failed: dict[str, Result] = {}
        self._open = False

    def start(self) -> None:
        self._failed = {}
        self._open = True
        for name, collector in self.collectors.items():
            try:
                collector.start()
            except Exception as exc:  # noqa: BLE001 - reported in the result instead
                self._failed[name] = _error(exc)

    def stop(self) -> dict[str, Result]:
        """Results keyed like ``collectors``; stopped in reverse order of starting."""
        self._open = False
        out: dict[str, Result] = {}
        for name in reversed(self.collectors):
            if name in self._failed:
                out[name] = self._failed[name]
                continue
            try:
                out[name] = self.collectors[name].stop()
            except Exception as exc:  # noqa: BLE001
                out[name] = _error(exc)
        return {name: out[name] for name in self.collectors}

    def __enter__(self) -> MetricsWindow:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Results come from stop(); leaving the block early (an error) still ends the sampling.
        if self._open:
            self.stop()


def collectors_for(
    *,
    pids: dict[str, int] | None = None,
    redis_url: str | None = None,
    standin_control_url: str | None = None,
    service_url: str | None = None,
    instrumented: bool = True,
    interval: float = 0.25,
    canary: tuple[str, float] | None = None,
    connect_log: Path | None = None,
) -> dict[str, Collector]:
    """The standard set for what is known about a target; unknown sources are left out.

    For a perfaudit stack: ``collectors_for(pids=info.pids, redis_url=info.redis_url,
    standin_control_url=info.standin_control_url, service_url=info.service_url)``.
    ``canary``: ``(path, rate_hz)`` measures loop lag when the service has no probe
    (``instrumented`` false); its idle baseline is taken here, so call this before the load.
    ``connect_log``: the connect() shim's log of a target started with it.
    """
    out: dict[str, Collector] = {}
    if pids:
        out["process"] = ProcessSampler(pids, interval=interval)
    if redis_url:
        out["redis"] = RedisInfoDelta(redis_url)
    if standin_control_url:
        out["standins"] = StandinDelta(standin_control_url)
    if service_url and instrumented:
        out["loop_lag"] = LoopLagCollector(service_url)
    elif service_url and canary:
        probe = CanaryCollector(service_url, *canary)
        probe.calibrate()
        out["loop_lag"] = probe
    if connect_log is not None:
        out["connections"] = ConnectionCounter(connect_log, pids)
    return out
