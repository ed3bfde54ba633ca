"""Generator cost benchmark: perfaudit's load engine vs wrk against one uvicorn server.

    python benchmarks/bench_generator.py [--duration 5] [--connections 32] [--rounds 2] [--rate 5000]

One uvicorn process (trivial Starlette ``GET /health``, ``--loop uvloop --http
httptools``) is pinned to CPU 0; each generator run is pinned to CPU 1 (when the machine
has >= 2 CPUs). Runs are interleaved (wrk, ours, wrk, ours, ...) because restarting the
server alone moves throughput by about +-4 % (shared/research/feasibility.md, B).

Generator CPU:
* wrk  - the rusage of the wrk process from wait4() (its whole life = the run).
* ours - the engine's own measurement over the measured window (thread rusage; the
         interpreter start-up and imports, about 0.3 s of CPU, are outside it, as they
         are outside Locust's hook-based figure in shared/research/locust-peer.md). The
         whole-process figure from wait4() is printed too.

Prints a table and the ratios ours/wrk; no assertions (the machine is shared and noisy).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SERVER_CPU = 0
GEN_CPU = 1


# -- the server ----------------------------------------------------------------------


def make_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def health(request: Any) -> JSONResponse:
        return JSONResponse({"status": "ok", "service": "demo"})

    return Starlette(routes=[Route("/health", health)])


def serve(port: int, cpu: int | None) -> None:
    import uvicorn

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    uvicorn.run(
        make_app(),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not start")


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a running process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick


# -- wrk -----------------------------------------------------------------------------


def ensure_wrk() -> str | None:
    path = shutil.which("wrk")
    if path:
        return path
    print("wrk not found; trying: apt-get install -y wrk", flush=True)
    for cmd in (
        ["apt-get", "install", "-y", "wrk"],
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "wrk"],
    ):
        try:
            subprocess.run(cmd, check=False, capture_output=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired):
            break
        if shutil.which("wrk"):
            return shutil.which("wrk")
    return None


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def pinned(cpu: int | None) -> Any:
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def run_wrk(wrk: str, url: str, conns: int, duration: float, cpu: int | None) -> dict[str, Any]:
    proc = subprocess.Popen(
        [wrk, "-t1", f"-c{conns}", f"-d{int(duration)}s", "--latency", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=pinned(cpu),
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    cpu_s = ru.ru_utime + ru.ru_stime
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": requests,
        "p50": _ms(re.search(r"^\s*50%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "p99": _ms(re.search(r"^\s*99%\s+(\S+)", out, re.M).group(1)),  # type: ignore[union-attr]
        "cpu_s": cpu_s,
        "cpu_pct": 100.0 * cpu_s / duration,
        "us_per_req": 1e6 * cpu_s / requests,
        "errors": len(re.findall(r"Socket errors|Non-2xx", out)),
    }


# -- ours (in a child process, so its CPU and pinning are its own) --------------------


def ours_child(spec: dict[str, Any]) -> None:
    from perfaudit.load import (
        ClosedModel,
        ConstantArrivalRate,
        LoadConfig,
        build_request,
        is_valid,
        run_load,
    )

    if spec.get("cpu") is not None:
        os.sched_setaffinity(0, {spec["cpu"]})
    port = spec["port"]
    model: Any
    if spec["mode"] == "closed":
        model = ClosedModel(users=spec["connections"], duration_s=spec["duration"])
    else:
        model = ConstantArrivalRate(
            rate=spec["rate"], duration_s=spec["duration"], max_connections=spec["connections"]
        )
    cfg = LoadConfig(
        host="127.0.0.1",
        port=port,
        model=model,
        request=build_request("GET", "/health", f"127.0.0.1:{port}"),
        warmup_s=spec["warmup"],
    )
    r = run_load(cfg)
    lat, svc = r.latency.summary(), r.service.summary()
    proc = r.cpu[0]
    ok, reasons = is_valid(r)
    print(
        "RESULT "
        + json.dumps(
            {
                "rps": r.achieved_rps,
                "requests": r.sent,
                "p50": lat["p50"],
                "p99": lat["p99"],
                "svc_p50": svc["p50"],
                "svc_p99": svc["p99"],
                "cpu_s": proc.cpu_s,
                "cpu_pct": proc.cpu_pct,
                "wall_s": proc.wall_s,
                "us_per_req": r.cpu_us_per_request,
                "errors": r.error_count,
                "late": r.late,
                "dropped": r.dropped,
                "lag_mean": r.send_lag_mean_ms,
                "lag_max": r.send_lag_max_ms,
                "target": r.target_rps,
                "valid": ok,
                "reasons": reasons,
                "loop": proc.loop,
            }
        ),
        flush=True,
    )


def run_ours(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
    )
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    line = next((x for x in out.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"engine run failed (exit {proc.returncode}):\n{out}")
    res: dict[str, Any] = json.loads(line[7:])
    res["process_cpu_s"] = ru.ru_utime + ru.ru_stime
    return res


# -- main ----------------------------------------------------------------------------


def fmt_row(name: str, r: dict[str, Any], server_pct: float) -> str:
    return (
        f"| {name:<28} | {r['rps']:>9,.0f} | {r['p50']:>7.2f} | {r['p99']:>7.2f} | "
        f"{r['cpu_pct']:>6.1f} | {r['us_per_req']:>7.1f} | {server_pct:>6.1f} |"
    )


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--rate", type=float, default=5000.0, help="open-model run rate (req/s)")
    ap.add_argument(
        "--warmup", type=float, default=0.5, help="engine warm-up, kept out of its figures"
    )
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--cpu", type=int, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve is not None:
        serve(a.serve, a.cpu)
        return
    if a.child is not None:
        ours_child(json.loads(a.child))
        return

    two_cpus = hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2
    srv_cpu, gen_cpu = (SERVER_CPU, GEN_CPU) if two_cpus else (None, None)
    port = free_port()
    server_cmd = [sys.executable, __file__, "--serve", str(port)] + (
        ["--cpu", str(srv_cpu)] if two_cpus else []
    )
    server = subprocess.Popen(server_cmd, cwd=str(ROOT))
    try:
        wait_ready(port)
        url = f"http://127.0.0.1:{port}/health"
        wrk = ensure_wrk()
        if wrk is None:
            print(
                "wrk could not be installed (apt-get install -y wrk failed): skipping the wrk runs",
                flush=True,
            )
        print(
            f"server: uvicorn+uvloop+httptools pid {server.pid} on CPU {srv_cpu}; generators on CPU {gen_cpu}; "
            f"{a.connections} connections, {a.duration:g} s per run, {a.rounds} rounds",
            flush=True,
        )
        closed = {
            "mode": "closed",
            "port": port,
            "connections": a.connections,
            "duration": a.duration,
            "warmup": a.warmup,
            "cpu": gen_cpu,
        }
        # warm the server (and page caches) once with each tool; not reported
        if wrk:
            run_wrk(wrk, url, a.connections, 2, gen_cpu)
        run_ours({**closed, "duration": 2.0})

        rows: list[str] = []
        wrk_runs: list[dict[str, Any]] = []
        our_runs: list[dict[str, Any]] = []
        for rnd in range(1, a.rounds + 1):
            if wrk:
                c0 = proc_cpu_s(server.pid)
                t0 = time.monotonic()
                r = run_wrk(wrk, url, a.connections, a.duration, gen_cpu)
                spct = 100.0 * (proc_cpu_s(server.pid) - c0) / (time.monotonic() - t0)
                wrk_runs.append(r)
                rows.append(fmt_row(f"wrk -t1 -c{a.connections} (round {rnd})", r, spct))
            c0 = proc_cpu_s(server.pid)
            r = run_ours(closed)
            # the server idles while the child starts, so its CPU over the child's life is
            # its CPU over warm-up + measured window
            spct = 100.0 * (proc_cpu_s(server.pid) - c0) / (a.warmup + r["wall_s"])
            our_runs.append(r)
            rows.append(fmt_row(f"perfaudit closed {a.connections} (round {rnd})", r, spct))

        opened = {**closed, "mode": "open", "rate": a.rate, "connections": max(a.connections, 256)}
        c0 = proc_cpu_s(server.pid)
        op = run_ours(opened)
        spct_open = 100.0 * (proc_cpu_s(server.pid) - c0) / (a.warmup + op["wall_s"])

        print()
        print(
            "| run                          |     req/s |  p50 ms |  p99 ms | gen CPU% | CPU µs/req | server CPU% |"
        )
        print("|---|---|---|---|---|---|---|")
        for row in rows:
            print(row)
        print(fmt_row(f"perfaudit open {a.rate:g}/s", op, spct_open))
        print()
        for i, r in enumerate(our_runs, 1):
            print(
                f"perfaudit closed round {i}: loop={r['loop']} service p50/p99 {r['svc_p50']:.2f}/{r['svc_p99']:.2f} ms, "
                f"errors {r['errors']}, window CPU {r['cpu_s']:.2f} s, whole-process CPU {r['process_cpu_s']:.2f} s "
                f"({1e6 * r['process_cpu_s'] / max(1, r['requests']):.1f} µs/req incl. start-up)"
            )
        print(
            f"perfaudit open {a.rate:g}/s: achieved {op['rps']:.0f} req/s (target {op['target']:.0f}), "
            f"latency p50/p99 {op['p50']:.2f}/{op['p99']:.2f} ms (from intended send), "
            f"service p50/p99 {op['svc_p50']:.2f}/{op['svc_p99']:.2f} ms, send lag mean/max "
            f"{op['lag_mean']:.2f}/{op['lag_max']:.2f} ms, late {op['late']}, dropped {op['dropped']}, "
            f"valid={op['valid']} {op['reasons'] or ''}"
        )
        if wrk_runs:
            cpu_ratio = mean([r["us_per_req"] for r in our_runs]) / mean(
                [r["us_per_req"] for r in wrk_runs]
            )
            rps_ratio = mean([r["rps"] for r in our_runs]) / mean([r["rps"] for r in wrk_runs])
            p50_ratio = mean([r["p50"] for r in our_runs]) / mean([r["p50"] for r in wrk_runs])
            print()
            print(f"generator CPU per request, ours / wrk: {cpu_ratio:.2f}x   (target <= 2x)")
            print(f"max throughput, ours / wrk:            {rps_ratio:.2f}x")
            print(
                f"p50 at {a.connections} connections, ours / wrk:    {p50_ratio:.2f}x   (target within 10 %)"
            )
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
