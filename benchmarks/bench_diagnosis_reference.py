"""The reference service as the diagnosis's first patient: does every Phase 3 pattern come
out as a finding naming the switch that fixes it, and does the optimized variant give none?

Runs the default scenarios on ``phase3`` and on ``optimized`` with the profilers
``perfaudit run --diagnose`` adds, at no more than ``--max-rate`` requests per second (phase3
spends ~150 ms of CPU per webhook with its callback: above ~10/s every figure is queueing),
then prints, per switch, whether phase3 gave a finding naming it (recall), and every finding
the optimized variant gave (false findings), and the wall time of each variant's run.

    .venv/bin/python benchmarks/bench_diagnosis_reference.py [--duration 3] [--max-rate 10]
        [--scenario NAME ...] [--out DIR] [--phase3 RUN --optimized RUN]

``--phase3``/``--optimized`` diagnose earlier runs again with today's rules (nothing is run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from perfaudit import results
from perfaudit.analysis.findings import diagnose
from perfaudit.audit.runner import audited
from perfaudit.commands.run import with_diagnosis_profilers
from perfaudit.refservice import switches as sw
from perfaudit.run.display import QuietEvents
from perfaudit.run.runner import RunOptions, run_scenarios
from perfaudit.scenario.loader import load_scenarios, select

# A queue without bound shows only under overload: telegram-job keeps its own 20 jobs/s,
# past phase3's ~12/s (optimized keeps up).
UNCAPPED = frozenset({"telegram-job"})


def _run(variant: str, names: list[str] | None, args: argparse.Namespace, out: Path) -> Path:
    scenarios = [
        s if s.name in UNCAPPED else audited(s, args.max_rate)
        for s in select(load_scenarios(), names)
    ]
    scenarios, _ = with_diagnosis_profilers(scenarios, None)
    options = RunOptions(
        out_dir=out / variant, duration_s=args.duration, warmup_s=args.warmup, variant=variant,
        drain_s=30.0,
    )  # fmt: skip
    record = run_scenarios(scenarios, options, QuietEvents(), ["bench_diagnosis_reference"])
    return out / variant / record.run_id


def _findings(run_dir: Path) -> list[dict[str, Any]]:
    """Today's rules on the stored entries (as `perfaudit diagnose` does)."""
    found: list[dict[str, Any]] = []
    for entry in results.read(run_dir).scenarios:
        found += diagnose(entry)["findings"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-rate", type=float, default=10.0)
    parser.add_argument("--scenario", action="append", help="only this scenario (repeatable)")
    parser.add_argument("--out", type=Path, help="where the runs go (default: a temp folder)")
    parser.add_argument("--phase3", type=Path, help="diagnose this earlier phase3 run instead")
    parser.add_argument("--optimized", type=Path, help="and this optimized run")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-diagnosis-"))
    runs: dict[str, Path] = {}
    walls: dict[str, float] = {}
    for variant in ("phase3", "optimized"):
        t0 = time.monotonic()
        given = getattr(args, variant)
        runs[variant] = given or _run(variant, args.scenario, args, out)
        walls[variant] = time.monotonic() - t0
        print(f"{variant}: {runs[variant]} ({walls[variant]:.0f} s)", flush=True)
    phase3, optimized = _findings(runs["phase3"]), _findings(runs["optimized"])
    print(f"\n{'switch':<20}{'rules':<40}found on phase3 (scenario: rule)")
    hits = 0
    for switch in sw.CATALOG:
        named = sorted(
            {f"{f['scenario']}: {f['rule']}" for f in phase3 if switch.name in f["switches"]}
        )
        hits += bool(named)
        print(f"{switch.name:<20}{', '.join(switch.rules):<46}{'; '.join(named) or '-- not found'}")
    unnamed = [f for f in phase3 if not f["switches"]]
    print(f"\nrecall: {hits}/{len(sw.CATALOG)} switches named by a phase3 finding; "
          f"{len(phase3)} phase3 findings, {len(unnamed)} naming no switch")  # fmt: skip
    for f in unnamed:
        print(f"  unnamed: {f['scenario']}: {f['rule']}: {f['title']}")
    print(f"false findings on optimized: {len(optimized)}")
    for f in optimized:
        print(f"  {f['severity']:<7}{f['scenario']}: {f['rule']}: {f['title']}")
    print(f"wall time: phase3 {walls['phase3']:.0f} s, optimized {walls['optimized']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
