"""What each profiler costs on the reference service's webhook-text scenario, in one run.

Per round, through perfaudit's own runner (``RunOptions(profile=...)``), the scenario runs
unprofiled and then once per profiler — py-spy on the same target right after the unprofiled
run, pyinstrument (asyncio loop + in-process hook) and memray (attach via lldb when installed,
else ``memray run``) each on a fresh target — and every profiled run is expressed as ratios to
the unprofiled run of the same round:

- ``open``: the scenario as written (50 req/s, open model): throughput is fixed by the
  schedule, so the cost shows in latency (p50, p99 ratios);
- ``closed``: the same requests from 16 users without think time, the service saturated:
  the cost shows in throughput (req/s ratio), like wrk-style figures.

    .venv/bin/python benchmarks/bench_profilers.py [--rounds 2] [--duration 8] [--warmup 2]

Measured on the project's 2-core VM (3 rounds, 8 s windows; profiled / unprofiled, mean):

    profiler       closed: req/s  p50    p99   | open: p50   p99
    py-spy         0.82           1.23   1.30  |       1.01  1.00
    pyinstrument   0.24           4.42   3.11  |       2.09  2.55
    memray attach  0.65           1.64   1.29  |       1.27  1.38
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from perfaudit.profile import check, parse_cli
from perfaudit.run.display import QuietEvents
from perfaudit.run.runner import RunOptions, run_scenarios
from perfaudit.scenario import LoadSpec, Scenario, load_scenario

ROOT = Path(__file__).resolve().parents[1]
PROFILERS = ("py-spy", "pyinstrument", "memray")
RATIOS = ("rps_ratio", "p50_ratio", "p99_ratio")


def scenarios(users: int) -> list[Scenario]:
    base = load_scenario(ROOT / "scenarios" / "webhook-text.yaml")
    base = replace(base, thresholds=replace(base.thresholds, p95_ms=None))
    closed = replace(
        base,
        name="webhook-text-closed",
        load=LoadSpec(model="closed", users=users, max_connections=users),
    )
    return [replace(base, name="webhook-text-open"), closed]


def one_round(options: RunOptions, users: int) -> dict[str, dict[str, dict[str, Any]]]:
    """scenario -> profiler -> overhead figures (and the profile's status)."""
    record = run_scenarios(scenarios(users), options, QuietEvents(), ["bench_profilers"])
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for e in record.scenarios:
        row = out.setdefault(e["name"], {})
        for name in PROFILERS:
            cost = (e.get("overhead") or {}).get(name)
            prof = (e.get("profiles") or {}).get(name) or {}
            row[name] = {
                **(cost or {}),
                "status": prof.get("status", "missing"),
                "method": prof.get("method"),
                "valid": e["validity"]["valid"],
            }
        row["unprofiled"] = {"rps": e["summary"]["rps"], "p50_ms": e["summary"]["p50_ms"],
                             "p99_ms": e["summary"]["p99_ms"]}  # fmt: skip
    return out


def fmt(values: list[float]) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values)
    each = "/".join(f"{v:.2f}" for v in values)
    return f"{mean:.2f} ({each})" if len(values) > 1 else f"{mean:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--users", type=int, default=16, help="closed-model users")
    args = parser.parse_args()
    specs = parse_cli([",".join(PROFILERS)])
    assert specs
    for problems in check(specs).values():
        for p in problems:
            print(f"warning: {p}", file=sys.stderr)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="bench-profilers-") as tmp:
        options = RunOptions(
            out_dir=Path(tmp), duration_s=args.duration, warmup_s=args.warmup, profile=specs
        )
        for i in range(args.rounds):
            print(f"round {i + 1}/{args.rounds} ...", file=sys.stderr, flush=True)
            rounds.append(one_round(options, args.users))
    print(f"\nprofiler overhead on webhook-text: profiled / unprofiled, same run "
          f"({args.rounds} rounds, {args.duration:g} s windows; mean (per round))")  # fmt: skip
    for scenario in rounds[0]:
        base = [r[scenario]["unprofiled"] for r in rounds]
        print(f"\n{scenario}: unprofiled " + ", ".join(
            f"{k} {fmt([b[k] for b in base])}" for k in ("rps", "p50_ms", "p99_ms")))  # fmt: skip
        print(f"  {'profiler':<13} {'req/s ratio':<22} {'p50 ratio':<22} {'p99 ratio':<22} note")
        for name in PROFILERS:
            rows = [r[scenario][name] for r in rounds]
            cells = [fmt([x[k] for x in rows if x.get(k) is not None]) for k in RATIOS]
            notes = {x["status"] for x in rows} - {"ok"}
            method = {x["method"] for x in rows if x.get("method")}
            note = ", ".join([*sorted(notes), *(f"method {m}" for m in sorted(method))])
            print(f"  {name:<13} {cells[0]:<22} {cells[1]:<22} {cells[2]:<22} {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
