"""Which failures are worth another attempt."""

from __future__ import annotations

import httpx
import redis


class RetryLater(Exception):  # noqa: N818 - a signal to the queue, not an error to report
    """Raised by a job step to ask the queue for another attempt after a backoff."""


_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_TRANSIENT_TYPES = (
    httpx.TransportError,
    redis.ConnectionError,
    redis.TimeoutError,
    TimeoutError,
    ConnectionError,
)


def is_transient(exc: BaseException) -> bool:
    """Connection failures, timeouts and 5xx/429 answers; anything else is final."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _TRANSIENT_TYPES):
            return True
        status = getattr(current, "status_code", None)
        if isinstance(status, int) and status in _TRANSIENT_STATUS:
            return True
        if getattr(current, "transient", False):
            return True
        current = current.__cause__ or current.__context__
    return False
