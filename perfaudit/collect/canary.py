"""Event-loop lag of a service that has no probe, from a low-rate canary request.

A request waits behind whatever the service's loop is doing; its latency above what the same
request takes on the idle service is that wait. The canary is its own process (the load
generator shares perfaudit's process and GIL, which would time the canary too) with its own
keep-alive connection: before the load it takes the idle baseline (the median of
``BASELINE_REQUESTS``), then during the window it sends one request every ``1/rate`` s.

Protocol with the child (stdlib only, run as a script): it prints one JSON line with the
baseline, waits for ``start`` on stdin, samples until ``stop`` (or EOF), then prints one JSON
line with the latencies and exits.
"""

from __future__ import annotations

import http.client
import json
import math
import select
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

BASELINE_REQUESTS = 20
BASELINE_SPACING_S = 0.02
REPLY_TIMEOUT_S = 15.0


def _nearest_rank(sorted_values: list[float], p: float) -> float:
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def summarize(path: str, rate_hz: float, baseline_ms: float, latencies_ms: list[float],
              errors: int) -> dict[str, Any]:  # fmt: skip
    """``lags = latency - baseline``, clamped at 0; the shape of ``server["loop_lag"]``."""
    lags = sorted(max(0.0, v - baseline_ms) for v in latencies_ms)
    out: dict[str, Any] = {
        "source": "canary",
        "path": path,
        "rate_hz": rate_hz,
        "samples": len(lags),
        "errors": errors,
        "baseline_ms": round(baseline_ms, 4),
    }
    if lags:
        out.update(
            p50_ms=round(_nearest_rank(lags, 50), 4),
            p99_ms=round(_nearest_rank(lags, 99), 4),
            max_ms=round(lags[-1], 4),
            mean_ms=round(sum(lags) / len(lags), 4),
        )
    else:
        out.update(p50_ms=None, p99_ms=None, max_ms=None, mean_ms=None)
    return out


class CanaryCollector:
    def __init__(self, service_url: str, path: str, rate_hz: float = 5.0) -> None:
        self.service_url = service_url
        self.path = path
        self.rate_hz = rate_hz
        self._proc: subprocess.Popen[str] | None = None
        self._baseline_ms: float | None = None
        self._failed: str | None = None

    def calibrate(self) -> None:
        """Start the canary and take the idle baseline: call before the load starts. A
        failure is raised again by :meth:`start` (so the window reports it)."""
        u = urlsplit(self.service_url)
        self._proc = subprocess.Popen(
            # -I: stdlib only, and this file's directory is not put on sys.path
            [sys.executable, "-I", __file__, u.hostname or "127.0.0.1", str(u.port or 80), self.path,
             str(self.rate_hz)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            reply = self._read()
        except (RuntimeError, ValueError) as exc:
            self._failed = str(exc)
            return
        if "error" in reply:
            self._failed = f"canary GET {self.path}: {reply['error']}"
            self._close()
        else:
            self._baseline_ms = float(reply["baseline_ms"])

    def start(self) -> None:
        if self._proc is None and self._failed is None:
            self.calibrate()
        if self._failed is not None:
            raise RuntimeError(self._failed)
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write("start\n")
        self._proc.stdin.flush()

    def stop(self) -> dict[str, Any]:
        if self._proc is None or self._proc.stdin is None or self._baseline_ms is None:
            raise RuntimeError("CanaryCollector.stop() before start()")
        try:
            self._proc.stdin.write("stop\n")
            self._proc.stdin.flush()
            reply = self._read()
        finally:
            self._close()
        return summarize(self.path, self.rate_hz, self._baseline_ms, reply["latencies_ms"],
                         int(reply["errors"]))  # fmt: skip

    def _read(self) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], REPLY_TIMEOUT_S)
        line = self._proc.stdout.readline() if ready else ""
        if not line:
            self._close()
            raise RuntimeError(f"the canary for GET {self.path} did not answer")
        return dict(json.loads(line))

    def _close(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
            self._proc.wait(5)
            for f in (self._proc.stdin, self._proc.stdout):
                if f is not None:
                    f.close()
            self._proc = None


# -- the child --------------------------------------------------------------------------


class _Client:
    """One keep-alive connection; reconnects (outside the timed part) if the server closed it."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.conn: http.client.HTTPConnection | None = None

    def timed_get(self) -> float:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
            self.conn.connect()
        t0 = time.perf_counter()
        try:
            self.conn.request("GET", self.path, headers={"User-Agent": "perfaudit-canary"})
            resp = self.conn.getresponse()
            resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        elapsed = (time.perf_counter() - t0) * 1000
        if resp.status >= 500:
            raise OSError(f"status {resp.status}")
        if resp.will_close:
            self.conn.close()
            self.conn = None
        return elapsed


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def _command(timeout: float) -> str | None:
    """A line from the parent within ``timeout`` s, ``""`` at EOF, None if none came."""
    ready, _, _ = select.select([sys.stdin], [], [], max(0.0, timeout))
    if not ready:
        return None
    return sys.stdin.readline().strip() or ""


def _child(host: str, port: int, path: str, rate_hz: float) -> None:
    client = _Client(host, port, path)
    base: list[float] = []
    try:
        for _ in range(BASELINE_REQUESTS):
            base.append(client.timed_get())
            time.sleep(BASELINE_SPACING_S)
    except (OSError, http.client.HTTPException) as exc:
        _emit({"error": f"{type(exc).__name__}: {exc}"})
        return
    _emit({"baseline_ms": sorted(base)[len(base) // 2]})
    if _command(3600) != "start":
        return
    interval = 1.0 / rate_hz
    latencies: list[float] = []
    errors = 0
    due = time.monotonic()
    while True:
        cmd = _command(due - time.monotonic())
        if cmd is not None:  # "stop" or EOF
            break
        try:
            latencies.append(client.timed_get())
        except (OSError, http.client.HTTPException):
            errors += 1
        # Fixed schedule; a request slower than the interval delays the next, never doubles up.
        due = max(due + interval, time.monotonic())
    _emit({"latencies_ms": latencies, "errors": errors})


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
