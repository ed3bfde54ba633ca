"""When the work a window's requests caused is over, and how often arq's worker polled.

A webhook of the reference service goes on after its response: a job in the worker, a
call to cursor-runner, a callback into the service seconds later, a reply job. A window
is closed only once all of that is done (nothing queued or running in arq, no callback
pending at the stand-in), so each window counts the whole cost of its requests.

The worker polls Redis (``ZRANGEBYSCORE`` on its queue) every 20 ms when idle and less
often when busy: its idle cost is charged per poll, not per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from perfaudit.stack.client import StackClient
from perfaudit.stack.stack import StackInfo

QUEUE = "arq:queue"
IN_PROGRESS = "arq:in-progress:*"
POLL_COMMAND = "cmdstat_zrangebyscore"


class QuietTimeout(RuntimeError):
    pass


class ReferenceQuiet:
    """Quiescence and poll counts of a reference stack."""

    def __init__(self, info: StackInfo) -> None:
        self.info = info
        self.redis = redis.Redis.from_url(info.redis_url)
        self.standins = StackClient(info)

    def close(self) -> None:
        self.redis.close()
        self.standins.close()

    def busy(self) -> str | None:
        """What is still going on (None: nothing)."""
        queued = int(self.redis.zcard(QUEUE))
        if queued:
            return f"{queued} queued jobs"
        running = sum(1 for _ in self.redis.scan_iter(IN_PROGRESS, count=1000))
        if running:
            return f"{running} running jobs"
        pending = ((self.standins.stats().get("callbacks")) or {}).get("pending", 0)
        if pending:
            return f"{pending} callbacks pending at the stand-in"
        return None

    def wait(self, timeout_s: float, settle_s: float = 0.3) -> None:
        """Until nothing is busy twice in a row, ``settle_s`` apart."""
        deadline = time.monotonic() + timeout_s
        quiet_since: float | None = None
        last = "?"
        while time.monotonic() < deadline:
            state = self.busy()
            if state is None:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle_s:
                    return
            else:
                quiet_since, last = None, state
            time.sleep(0.05)
        raise QuietTimeout(f"the target was still busy after {timeout_s:.0f} s ({last})")

    def polls(self) -> int:
        stats = self.redis.info("commandstats")
        return int((stats.get(POLL_COMMAND) or {}).get("calls", 0))


def settle_wait(settle_s: float) -> Callable[[float], None]:
    """An external target: quiet once ``settle_s`` has passed after the last response."""

    def wait(timeout_s: float) -> None:
        time.sleep(min(settle_s, timeout_s))

    return wait
