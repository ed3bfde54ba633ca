"""Loopback ports and readiness probes."""

from __future__ import annotations

import contextlib
import socket
import urllib.request

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A port that is free now; the child binds it a moment later (a tiny race, retried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    with contextlib.suppress(Exception), urllib.request.urlopen(url, timeout=timeout) as resp:
        return 200 <= resp.status < 300
    return False
