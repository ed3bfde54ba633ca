"""Event-loop lag of the service over the window, read from its opt-in probe.

The service must run with ``PERFAUDIT_INSTRUMENT=1`` (see ``perfaudit.refservice.instrument``);
otherwise the probe's routes do not exist and this collector reports why.
"""

from __future__ import annotations

import httpx

from perfaudit.collect.base import Result

LOOP_PATH = "/__perfaudit/loop"


class NotInstrumentedError(RuntimeError):
    pass


class LoopLagCollector:
    def __init__(self, service_url: str, timeout: float = 5.0) -> None:
        self.service_url = service_url.rstrip("/")
        self.timeout = timeout

    def _request(self, method: str, path: str) -> Result:
        with httpx.Client(timeout=self.timeout) as http:
            resp = http.request(method, f"{self.service_url}{path}")
        if resp.status_code in (404, 405):
            raise NotInstrumentedError(
                f"{self.service_url} has no {LOOP_PATH}: start the service with "
                "PERFAUDIT_INSTRUMENT=1 to measure event-loop lag"
            )
        return resp.raise_for_status().json()

    def start(self) -> None:
        self._request("POST", f"{LOOP_PATH}/reset")  # the probe's figures now cover the window

    def stop(self) -> Result:
        return {"source": "probe", **self._request("GET", LOOP_PATH)}  # vs "canary"
