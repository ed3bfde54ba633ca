"""A short CPU calibration, recorded in every run's environment: how fast this machine ran
a fixed piece of pure-Python web-service work (JSON, dicts, strings) when the run started.

The same CPU model, core count and Python can run twice as slowly (measured here: a
shared VM whose neighbours got busy), and a stored baseline trusted on the model name alone
then calls unchanged endpoints "regressed". Two recordings whose calibration medians differ
by more than :data:`TOLERANCE` were not made on a machine running at the same speed, so
their time-based numbers are not compared directly.

The work is fixed (not a fixed duration), so the time is comparable across machines;
:data:`WORKLOAD` names it, and calibrations of different workloads are never compared.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import statistics
import time
from typing import Any

WORKLOAD = "web-json-v1"
ITERATIONS = 8000  # ~0.09 s per round on the 2-vCPU reference VM
ROUNDS = 6  # 6 rounds + a short warm-up: ~0.6 s there
# Medians of two calibrations on one idle machine agree within ~9 % (8 processes here);
# beyond 10 % the machine is not running at the speed it ran at when the baseline was made.
TOLERANCE = 0.10


def _work(iterations: int) -> int:
    """What a webhook handler does per request, minus the I/O: parse, look up, format."""
    acc = 0
    for i in range(iterations):
        update = {
            "update_id": 100000 + i,
            "message": {
                "message_id": i, "date": 1700000000 + i,
                "chat": {"id": -1000 - i % 97, "type": "private", "first_name": "Ada"},
                "from": {"id": 42 + i % 13, "is_bot": False, "language_code": "en"},
                "text": f"/start hello world {i} " + "lorem ipsum dolor sit amet " * 3,
            },
        }  # fmt: skip
        raw = json.dumps(update, separators=(",", ":"))
        msg = json.loads(raw)["message"]
        words = msg["text"].lower().split()
        reply = {"chat_id": msg["chat"]["id"], "text": " ".join(sorted(set(words)))[:64],
                 "parse_mode": "HTML", "reply_to": msg["message_id"]}  # fmt: skip
        headers = {
            k.title(): str(v)
            for k, v in (("content-type", "application/json"), ("x-request-id", f"{i:08x}"),
                         ("content-length", len(raw)))
        }  # fmt: skip
        acc += len(json.dumps(reply)) + len(headers) + len(words[0])
    return acc


def measure(rounds: int = ROUNDS, iterations: int = ITERATIONS) -> dict[str, Any]:
    """Time ``rounds`` rounds of the fixed work; the median is the machine's speed now."""
    _work(iterations // 10)  # warm caches and the allocator
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()  # wall clock: latency is wall clock, steal time included
        _work(iterations)
        times.append(time.perf_counter() - t0)
    logs = [math.log(t) for t in times]
    return {
        "workload": WORKLOAD,
        "iterations": iterations,
        "rounds": rounds,
        "median_s": statistics.median(times),
        "spread": statistics.stdev(logs) if len(logs) > 1 else 0.0,  # sd of log times
        "times_s": [round(t, 6) for t in times],
    }


@functools.cache
def _once() -> dict[str, Any]:
    return measure()


def this_machine() -> dict[str, Any]:
    """Calibrated once per process: every record of one invocation carries the same one,
    so both sides of a side-by-side run show the same machine."""
    return copy.deepcopy(_once())


def difference(
    recorded: dict[str, Any] | None,
    here: dict[str, Any] | None,
    names: tuple[str, str] = ("the baseline", "this run"),
) -> str | None:
    """Why two calibrations do not show the same machine speed (None: they do)."""
    for cal, name in ((recorded, names[0]), (here, names[1])):
        if not isinstance(cal, dict) or not cal.get("median_s"):
            return f"{name} was recorded without a machine calibration"
    assert recorded is not None and here is not None
    if recorded.get("workload") != here.get("workload"):
        return (
            f"{names[0]} and {names[1]} were calibrated with different workloads "
            f"({recorded.get('workload')}, {here.get('workload')})"
        )
    a, b = float(recorded["median_s"]), float(here["median_s"])
    if abs(math.log(b / a)) <= math.log1p(TOLERANCE):
        return None
    speed = f"{b / a:.2f}× slower" if b > a else f"{a / b:.2f}× faster"
    return (
        f"{names[1]} ran the machine calibration {speed} than {names[0]} (median "
        f"{1000 * b:.1f} ms vs {1000 * a:.1f} ms; they must agree within ±{100 * TOLERANCE:.0f} %)"
    )
