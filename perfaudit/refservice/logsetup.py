"""One log format for the service and worker processes (stdout, captured by the stack)."""

from __future__ import annotations

import logging
import sys

from perfaudit.redact import redact


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request at INFO; that is our own log's job.
    logging.getLogger("httpx").setLevel(logging.WARNING)
