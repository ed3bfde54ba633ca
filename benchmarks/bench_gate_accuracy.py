"""How often the regression gate cries wolf, and how often it catches a real slowdown.

K A/A trials (the same configuration on both sides) and K trials where the candidate is
made really slower, each trial exactly what ``perfaudit run --baseline variant:... --repeat
N`` does: baseline and candidate interleaved (A B B A ...), every repeat its own stack
start, then the comparison at the default settings. Prints the false-alarm rate (any
metric "regressed" or "improved" in an A/A trial) and the detection rate (p95
"regressed" in a slowdown trial).

The slowdown is injected deterministically on an awaited path, without touching the
reference service: in ``admin-webhook-info`` the service awaits Telegram's getWebhookInfo
before it answers, so raising the stand-in's latency by 15 % of the measured p95 makes
the response p95 15 % slower.

    .venv/bin/python benchmarks/bench_gate_accuracy.py [--trials 20] [--repeat 3]
        [--scenario admin-webhook-info] [--slowdown 0.15] [--duration S --warmup S]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from perfaudit import results
from perfaudit.analysis.compare import Comparison, compare_entries
from perfaudit.gate import DEFAULT_REPEAT
from perfaudit.run.display import QuietEvents
from perfaudit.run.repeat import BASELINE, CANDIDATE, Side, record_path, run_repeats
from perfaudit.run.runner import RunOptions
from perfaudit.scenario import Scenario, load_scenarios
from perfaudit.upstreams.config import DEFAULT_ROUTES

ROUTE = "telegram.getWebhookInfo"


def with_latency(s: Scenario, latency_ms: float) -> Scenario:
    routes = dict((s.standins or {}).get("routes") or {})
    routes[ROUTE] = {**routes.get(ROUTE, {}), "latency_ms": latency_ms}
    return replace(s, standins={**(s.standins or {}), "routes": routes})


def trial(a: Scenario, b: Scenario, repeat: int, options: RunOptions, run_id: str) -> None:
    run_repeats(
        [Side(BASELINE, [a], options), Side(CANDIDATE, [b], options)],
        repeat, options.out_dir, QuietEvents(), sys.argv, run_id,
    )  # fmt: skip


def judge(out: Path, run_id: str) -> Comparison:
    """The comparison `perfaudit run --baseline variant:...` makes of one trial's runs."""
    a = results.read(record_path(out, run_id, BASELINE)).scenarios
    b = results.read(record_path(out, run_id, CANDIDATE)).scenarios
    return compare_entries(a, b, baseline_label="A", candidate_label="B", mode="side by side")


def _complete(out: Path, run_id: str) -> bool:
    try:
        return all(
            results.read(record_path(out, run_id, side)).status == "complete"
            for side in (BASELINE, CANDIDATE)
        )
    except results.ResultsError:
        return False


def p95(c: Comparison) -> Any:
    return next(m for m in c.scenarios[0].metrics if m.metric == "p95_ms")


def flagged(c: Comparison) -> list[str]:
    return [
        f"{m.metric} {m.verdict} {100 * (m.change or 0):+.1f}%"
        for s in c.scenarios
        for m in s.metrics
        if m.verdict in ("regressed", "improved")
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    ap.add_argument("--scenario", default="admin-webhook-info")
    ap.add_argument("--slowdown", type=float, default=0.15, help="of the p95 (0.15 = +15 %%)")
    ap.add_argument("--duration", type=float, default=None)
    ap.add_argument("--warmup", type=float, default=None)
    ap.add_argument("--aa-only", action="store_true", help="A/A trials only (any scenario)")
    ap.add_argument("--json", type=Path, default=None, help="write every trial's figures here")
    ap.add_argument(
        "--reanalyse",
        type=Path,
        default=None,
        help="judge the trials stored in this folder again, without running",
    )
    ap.add_argument("--resume", type=Path, default=None,
                    help="continue an interrupted benchmark in this folder")  # fmt: skip
    args = ap.parse_args()

    out = args.reanalyse or args.resume or Path(tempfile.mkdtemp(prefix="perfaudit-gate-bench-"))
    options = RunOptions(out_dir=out, duration_s=args.duration, warmup_s=args.warmup)
    if args.reanalyse:
        plan = sorted((p.name.split("-")[0], p.name) for p in out.iterdir() if p.is_dir())
        injected = json.loads((out / "injected.json").read_text())
        print(f"re-judging {len(plan)} trials stored in {out}")
    else:
        [scenario] = [s for s in load_scenarios() if s.name == args.scenario]
        kinds = ["aa"] if args.aa_only else ["aa", "slow"]
        plan = [(k, f"{k}-{i + 1:02d}") for i in range(args.trials) for k in kinds]
        injected = json.loads((out / "injected.json").read_text()) if args.resume else {}
        print(f"{args.scenario}: {args.trials} A/A + {0 if args.aa_only else args.trials} "
              f"slowdown trials, {args.repeat} repeats per side, runs in {out}", flush=True)  # fmt: skip
    rows: list[dict[str, Any]] = []
    base_latency = DEFAULT_ROUTES[ROUTE].latency_ms
    base_p95: list[float] = []
    t0 = time.monotonic()
    for kind, run_id in plan:
        if not args.reanalyse and not _complete(out, run_id):
            if kind == "aa":
                a = b = scenario
                injected[run_id] = 0.0
            else:
                # +slowdown x the p95 measured so far on the A sides, added to an awaited call
                injected[run_id] = args.slowdown * statistics.median(base_p95)
                a, b = scenario, with_latency(scenario, base_latency + injected[run_id])
            (out / "injected.json").write_text(json.dumps(injected))
            shutil.rmtree(out / run_id, ignore_errors=True)  # an interrupted trial's leftovers
            try:
                trial(a, b, args.repeat, options, run_id)
            except Exception as exc:  # noqa: BLE001 - one failed start is not the benchmark
                print(f"{run_id}: failed ({exc.__class__.__name__}: {str(exc)[:200]}); retried",
                      flush=True)  # fmt: skip
                shutil.rmtree(out / run_id, ignore_errors=True)
                trial(a, b, args.repeat, options, run_id)
        c = judge(out, run_id)
        m = p95(c)
        if m.baseline is not None:
            base_p95.append(m.baseline)
        row = {
            "trial": run_id, "kind": kind, "p95_a": m.baseline, "p95_b": m.candidate,
            "change": m.change, "ci": m.ci, "floor": m.floor, "verdict": m.verdict,
            "scenario_verdict": c.scenarios[0].verdict, "flagged": flagged(c),
            "injected_ms": injected.get(run_id, 0.0),
        }  # fmt: skip
        rows.append(row)
        print(
            f"{run_id}: p95 {m.baseline:.1f} -> {m.candidate:.1f} ms "
            f"({100 * (m.change or 0):+.1f} %, floor ±{100 * math.expm1(m.floor or 0):.1f} %) "
            f"{m.verdict:12} flagged: {', '.join(row['flagged']) or '-'}  "
            f"[{time.monotonic() - t0:.0f} s]",
            flush=True,
        )
    aa = [r for r in rows if r["kind"] == "aa"]
    slow = [r for r in rows if r["kind"] == "slow"]
    false_alarms = sum(1 for r in aa if r["flagged"])
    print()
    print(f"A/A trials: {len(aa)}, false alarms (any metric regressed/improved): "
          f"{false_alarms} ({100 * false_alarms / max(1, len(aa)):.0f} %)")  # fmt: skip
    verdicts: dict[str, int] = {}
    for r in aa:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    print(f"  A/A p95 verdicts: {verdicts}")
    floors = [r["floor"] for r in rows if r["floor"] is not None]
    if floors:
        print(
            f"  p95 noise floor (median over trials): ±{100 * math.expm1(statistics.median(floors)):.1f} %"
        )
    if slow:
        detected = sum(1 for r in slow if r["verdict"] == "regressed")
        changes = [r["change"] for r in slow if r["change"] is not None]
        print(f"slowdown trials: {len(slow)}, injected +{slow[-1]['injected_ms']:.1f} ms on "
              f"{ROUTE} (+{100 * args.slowdown:.0f} % of p95), measured p95 change median "
              f"{100 * statistics.median(changes):+.1f} %")  # fmt: skip
        print(f"  detected (p95 regressed): {detected}/{len(slow)} "
              f"({100 * detected / len(slow):.0f} %)")  # fmt: skip
    print(f"total {time.monotonic() - t0:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
