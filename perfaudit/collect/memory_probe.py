"""What the service still holds after the window, from its opt-in probe: Python objects and
loggers left after a full collection, before and after the window.

RSS hides a small per-request leak behind the allocator's arenas for a long time; the count
of live objects after ``gc.collect()`` shows it at once (a Logger per request is ~3 objects).
The service must run with ``PERFAUDIT_INSTRUMENT=1`` (perfaudit's probe: ``GET
/__perfaudit/memory``); the collection it forces costs a few ms, at the window's edges only.
"""

from __future__ import annotations

from typing import Any

import httpx

from perfaudit.collect.base import Result
from perfaudit.collect.loop_lag import NotInstrumentedError

MEMORY_PATH = "/__perfaudit/memory"


class MemoryProbeDelta:
    def __init__(self, service_url: str, timeout: float = 10.0) -> None:
        self.service_url = service_url.rstrip("/")
        self.timeout = timeout
        self._start: dict[str, Any] | None = None

    def _read(self) -> dict[str, Any]:
        with httpx.Client(timeout=self.timeout) as http:
            resp = http.get(f"{self.service_url}{MEMORY_PATH}")
        if resp.status_code in (404, 405):
            raise NotInstrumentedError(
                f"{self.service_url} has no {MEMORY_PATH}: start the service with "
                "PERFAUDIT_INSTRUMENT=1 to count the objects it keeps"
            )
        return dict(resp.raise_for_status().json())

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> Result:
        assert self._start is not None, "stop() before start()"
        end = self._read()
        growth = {k: int(end[k]) - int(self._start[k]) for k in end if k in self._start}
        return {"start": self._start, "end": end, "growth": growth}
