"""An unbounded queue or concurrency: waiting that grows through the window at a constant
offered rate, or a process's descriptors growing with the work in flight.

- job kind: the backlog left when the window ends. If the worker keeps up, the last job
  finishes about one run time after the last enqueue; what the drain takes beyond that is
  jobs that queued faster than they ran (arq, like Sidekiq, queues without bound).
- http/flow kinds: per-second median latency rising linearly through the steady window
  (scipy.stats.linregress; at least 5 steady seconds).
- any kind: a process's open file descriptors rising through the window (each job or call
  in flight holds sockets: concurrency without a cap).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from perfaudit.analysis.findings import _counters as c
from perfaudit.analysis.findings._base import Finding, Impact, NotChecked, Outcome, Rule

ID = "unbounded-queue"
# Backlog at the window's end, in seconds of drain beyond one run time: optimized drains in
# under 0 s (it keeps up at 8 jobs/s), phase3 overloaded 2.0 s. Half a second (and 15 % of
# the window) is well past arq's 20 ms poll and the drain loop's 0.1 s checks.
BACKLOG_MIN_S = 0.5
BACKLOG_MIN_SHARE = 0.15
QUEUE_WAIT_MIN_MS = 100.0
LATENCY_MIN_SECONDS = 5
LATENCY_RISE_MIN = 1.0  # the fitted rise at least doubles the first second's median
LATENCY_RISE_MIN_MS = 50.0
FDS_RISE_MIN = 20  # descriptors; a pool warming up opens a handful
FIX = (
    "bound the work in flight: cap the worker's concurrent jobs (arq max_jobs, a Sidekiq-"
    "style pool of 10) and each upstream's in-flight calls (httpx.Limits(max_connections="
    "...) or an asyncio.Semaphore), and shed or slow intake (429) when the queue is long"
)


def check(entry: Mapping[str, Any]) -> Outcome:
    kind = entry.get("kind")
    found: list[Finding] = []
    if kind == "job":
        job = _job_backlog(entry)
        if isinstance(job, NotChecked):
            return job
        found.extend(job)
    elif kind in ("http", "flow"):
        found.extend(_latency_rise(entry))
    found.extend(_fds_rise(entry))
    return found


def _job_backlog(entry: Mapping[str, Any]) -> list[Finding] | NotChecked:
    extras, summary = entry.get("extras") or {}, entry.get("summary") or {}
    done, per_s = int(extras.get("jobs_completed") or 0), float(extras.get("jobs_per_s") or 0)
    window = c.window_s(entry)
    if not done or per_s <= 0 or window <= 0:
        return NotChecked(ID, "the job window completed no jobs")
    run_s = float(summary.get("run_p50_ms") or 0) / 1000.0
    span = done / per_s  # first measured enqueue to last finish
    backlog = span - window - run_s
    wait = float(summary.get("queue_wait_p50_ms") or 0)
    wait95 = float(summary.get("queue_wait_p95_ms") or 0)
    if backlog < max(BACKLOG_MIN_S, BACKLOG_MIN_SHARE * window) or wait95 < QUEUE_WAIT_MIN_MS:
        return []
    offered = float(summary.get("target_rps") or summary.get("rps") or 0)
    return [Finding.make(
        rule=ID,
        title=f"jobs queue faster than they run: {backlog:.2g} s of backlog after a "
        f"{window:.3g} s window, queue wait p50 {wait:.3g} ms",
        impact=Impact(round(wait, 1), "ms/request"),
        evidence={
            "window": "job window: enqueue times and arq results (extras)",
            "offered_per_s": offered, "completed_per_s": round(per_s, 2),
            "backlog_s": round(backlog, 2), "queue_wait_p50_ms": wait,
            "queue_wait_p95_ms": wait95, "run_p50_ms": summary.get("run_p50_ms"),
        },
        where=(c.endpoint_location(entry, "worker"),),
        fix=FIX,
        confirm=c.confirm(entry, "queue_wait_p95_ms and jobs_per_s against the offered rate"),
    )]  # fmt: skip


def _latency_rise(entry: Mapping[str, Any]) -> list[Finding]:
    load = entry.get("load") or {}
    warm = float(load.get("warmup_s") or 0)
    steady = [s for s in load.get("timeline") or () if s.get("t", 0) >= warm and s.get("completed")]
    if len(steady) < LATENCY_MIN_SECONDS:
        return []
    t = [float(s["t"]) for s in steady]
    y = [float(s.get("p50_ms") or 0) for s in steady]
    tr = c.trend(t, y)
    if tr is None or tr.low <= 0:
        return []
    base = max(y[0], 1e-3)
    if tr.rise < max(LATENCY_RISE_MIN * base, LATENCY_RISE_MIN_MS):
        return []
    per_s = tr.slope
    return [Finding.make(
        rule=ID,
        title=f"{c.endpoint(entry)} latency rises {per_s:.3g} ms every second at a constant "
        "rate: requests queue without bound",
        impact=Impact(round(tr.rise / 2, 1), "ms/request"),  # the window's mean extra wait
        evidence={
            "window": "steady seconds of the load timeline (per-second p50)",
            "slope_ms_per_s": round(per_s, 2), "slope_ci95": [round(tr.low, 2), round(tr.high, 2)],
            "p": tr.p, "rise_ms": round(tr.rise, 1), "first_p50_ms": y[0], "last_p50_ms": y[-1],
        },
        where=(c.endpoint_location(entry),),
        fix=FIX,
        confirm=c.confirm(entry, "the per-second p50 (load.timeline) stays flat"),
    )]  # fmt: skip


def _fds_rise(entry: Mapping[str, Any]) -> list[Finding]:
    found = []
    n = c.requests(entry)
    for name, proc in sorted(c.processes(entry).items()):
        tl = [s for s in proc.get("timeline") or () if s.get("fds") is not None]
        if len(tl) < 8:
            continue
        tr = c.trend([float(s["t"]) for s in tl], [float(s["fds"]) for s in tl])
        if tr is None or tr.low <= 0 or tr.rise < FDS_RISE_MIN:
            continue
        found.append(Finding.make(
            rule=ID,
            title=f"{name} holds ever more descriptors: +{tr.rise:.0f} over the window",
            impact=Impact(round(tr.rise / n, 3) if n else 0.0, "connections/request"),
            evidence={
                "window": "server.process timeline (4 Hz)", "process": name,
                "fds_slope_per_s": round(tr.slope, 2), "p": tr.p, "rise": round(tr.rise, 1),
            },
            where=(c.endpoint_location(entry, name),),
            fix=FIX,
            confirm=c.confirm(entry, f"{name} fds in server.process stay flat"),
        ))  # fmt: skip
    return found


RULE = Rule(
    id=ID,
    title="an unbounded queue or concurrency: queue backlog or latency growing at a constant "
    "rate, descriptors growing with work in flight",
    check=check,
)
