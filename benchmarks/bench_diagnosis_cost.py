"""What sampling the event-loop thread's idle time costs: py-spy ``--idle`` against plain py-spy
at the same rate, against no py-spy, on one running service, in one run.

The target is tests/apps/blocking_app.py (uvloop), its thread pool warmed up (``/offload``)
so it has idle threads for ``--idle`` to walk, driven on ``/clean`` by perfaudit's load engine
with closed-model users (saturated: the cost shows in throughput and in the target's CPU per
request). Conditions are interleaved within each round so drift hits them all alike:

- ``none``: no profiler;
- ``plain``: ``py-spy record --threads`` at RATE Hz (what ``--profile py-spy`` runs);
- ``plain-nothreads``: without ``--threads`` (what it ran before loop summaries);
- ``idle``: ``--threads --idle`` at RATE Hz (``--profile py-spy:idle``).

Printed per condition as ratios to ``none`` of the same round (mean and range over rounds):
req/s, target CPU µs per request, and py-spy's own CPU (% of one core).

    .venv/bin/python benchmarks/bench_diagnosis_cost.py [--rounds 3] [--window 3] [--rate 100]

Measured on the project's 2-core VM, shared with other work (load average ~3), 5 rounds of
3 s windows, 100 Hz, 8 users; none: 9353 req/s, 85 µs CPU per request (mean, range):

    condition         req/s ratio         cpu/req ratio       py-spy cpu (% of a core)
    plain             0.87 (0.74–1.05)    1.10 (0.87–1.21)    10.7
    plain-nothreads   0.83 (0.64–1.08)    1.07 (0.97–1.16)    10.4
    idle              0.84 (0.66–1.07)    1.09 (1.00–1.19)    11.2
    idle / plain, same round: req/s 0.98 (0.74–1.16), py-spy cpu 1.05 (0.94–1.25)

So ``--idle`` (and ``--threads``) cost nothing measurable beyond py-spy itself here: the
differences are inside the round-to-round spread.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from perfaudit.load import ClosedModel, LoadConfig, build_request, run_load
from perfaudit.profile.preflight import py_spy_binary
from perfaudit.stack.net import free_port

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "tests" / "apps" / "blocking_app.py"
CONDITIONS: dict[str, list[str]] = {
    "none": [],
    "plain": ["--threads"],
    "plain-nothreads": [],
    "idle": ["--threads", "--idle"],
}
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """utime + stime of all the process's threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def start_app(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, str(APP), "--port", str(port)])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.terminate()
        raise SystemExit("blocking_app did not start")
    # Fill the default executor, so the process has idle pool threads (as sync endpoints do).
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: httpx.get(f"http://127.0.0.1:{port}/offload"), range(16)))
    return proc


def one(port: int, pid: int, condition: str, window_s: float, rate: int, users: int,
        out: Path) -> dict[str, float]:  # fmt: skip
    spy: subprocess.Popen[bytes] | None = None
    if condition != "none":
        binary = py_spy_binary()
        assert binary, "py-spy not found"
        argv = [binary, "record", "--pid", str(pid), "--format", "raw", "--full-filenames",
                "--rate", str(rate), "--output", str(out / f"{condition}.txt"),
                *CONDITIONS[condition]]  # fmt: skip
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached before the window
    request = build_request("GET", "/clean", f"127.0.0.1:{port}")
    config = LoadConfig(host="127.0.0.1", port=port, request=request, warmup_s=0.5,
                        model=ClosedModel(users=users, duration_s=window_s))  # fmt: skip
    c0 = cpu_s(pid)
    result = run_load(config)
    c1 = cpu_s(pid)
    spy_cpu = 0.0
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        _, _, usage = os.wait4(spy.pid, 0)
        spy.returncode = 0
        spy_cpu = usage.ru_utime + usage.ru_stime
    requests = max(1, result.ok)
    return {
        "rps": result.achieved_rps,
        # The load's warm-up is in the CPU delta too: per request over all requests served.
        "cpu_us_per_req": (c1 - c0) * 1e6 / (requests + result.warmup_requests),
        "spy_cpu_pct": 100 * spy_cpu / (window_s + 1.0),  # its life: lead + warm-up + window
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()
    port = free_port()
    app = start_app(port)
    rows: dict[str, list[dict[str, float]]] = {c: [] for c in CONDITIONS}
    try:
        with tempfile.TemporaryDirectory(prefix="bench_diag_") as tmp:
            for r in range(args.rounds):
                order = list(CONDITIONS)
                order = order[r % len(order) :] + order[: r % len(order)]  # rotate the order
                for c in order:
                    rows[c].append(one(port, app.pid, c, args.window, args.rate, args.users,
                                       Path(tmp)))  # fmt: skip
    finally:
        app.terminate()
        app.wait(10)
    report(rows, args)


def report(rows: dict[str, list[dict[str, float]]], args: Any) -> None:
    print(f"blocking_app /clean, {args.users} users closed, {args.window:g} s windows, "
          f"{args.rounds} rounds, py-spy at {args.rate} Hz")  # fmt: skip
    base = rows["none"]
    print(f"{'condition':16} {'req/s ratio':>18} {'cpu/req ratio':>18} {'py-spy cpu %':>13}"
          f"   (none: {statistics.mean(b['rps'] for b in base):.0f} req/s, "
          f"{statistics.mean(b['cpu_us_per_req'] for b in base):.0f} µs/req)")  # fmt: skip
    for c, runs in rows.items():
        rps = [run["rps"] / b["rps"] for run, b in zip(runs, base, strict=True)]
        cpu = [run["cpu_us_per_req"] / b["cpu_us_per_req"] for run, b in zip(runs, base,
                                                                              strict=True)]  # fmt: skip
        spy = statistics.mean(run["spy_cpu_pct"] for run in runs)
        print(f"{c:16} {fmt(rps):>18} {fmt(cpu):>18} {spy:13.1f}")
    idle, plain = rows["idle"], rows["plain"]
    print("idle / plain (same round): req/s "
          + fmt([i["rps"] / p["rps"] for i, p in zip(idle, plain, strict=True)])
          + ", py-spy cpu "
          + fmt([i["spy_cpu_pct"] / p["spy_cpu_pct"] for i, p in zip(idle, plain, strict=True)
                 if p["spy_cpu_pct"]]))  # fmt: skip


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.mean(values):.2f} ({min(values):.2f}–{max(values):.2f})"


if __name__ == "__main__":
    main()
