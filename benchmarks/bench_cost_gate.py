"""Can the instructions gate catch a 1 % regression in the service's own code, and does
it ever cry wolf? K A/A trials and K trials with a planted regression, each exactly what
a user's CI does:

    perfaudit run -s webhook-text -s health --measure instructions --baseline git:HEAD~1 --repeat 1

in a scratch clone of this repository. A/A: HEAD is an empty commit on top of HEAD~1 (the
same code on both sides). Planted: HEAD adds deterministic work to the service's own
handlers (the webhook and /health), sized to about 1 % of each one's instructions per
request as measured in the first trial. Every side of every trial is a fresh stack under
callgrind. Prints, per trial and in total, the measured change of the service's (and
worker's) instructions per request, the verdicts, the A/A spread, the false-alarm and
detection rates, and the wall time per trial.

    .venv/bin/python benchmarks/bench_cost_gate.py [--trials 10] [--share 0.01] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("webhook-text", "health")
METRICS = ("service_instructions_per_request", "worker_instructions_per_request")
PLANT = '''

def _planted_work(n: int) -> int:
    """bench_cost_gate: deterministic extra work in the service's own code."""
    total = 0
    for i in range(n):
        total += i & 7
    return total
'''


def sh(*args: str, cwd: Path) -> str:
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


def clone(into: Path) -> Path:
    repo = into / "repo"
    sh("git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(repo), cwd=into)
    sh("git", "config", "user.email", "bench@perfaudit.invalid", cwd=repo)
    sh("git", "config", "user.name", "bench_cost_gate", cwd=repo)
    # The scenarios as a CI job would run them, without the Python call-count pass.
    for name in SCENARIOS:
        path = repo / "scenarios" / f"{name}.yaml"
        path.write_text(path.read_text() + "cost: {python_calls: false}\n")
    sh("git", "commit", "--quiet", "-am", "bench: no python call counts", cwd=repo)
    return repo


def iteration_cost(python: str) -> float:
    """Instructions per iteration of the planted loop, warm (callgrind, two sizes)."""
    counts = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (0, 100_000):
            code = PLANT + f"\nfor _ in range(3):\n    _planted_work(1000)\n_planted_work({n})\n"
            out = Path(tmp) / f"cg.{n}.out"
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                            "--quiet", python, "-c", code], check=True)  # fmt: skip
            counts.append(int(re.search(r"^summary: (\d+)", out.read_text(), re.M).group(1)))
    return (counts[1] - counts[0]) / 100_000


def plant(repo: Path, webhook_n: int, health_n: int) -> None:
    app = repo / "perfaudit" / "refservice" / "app.py"
    text = app.read_text()
    text = text.replace(
        "    async def health(request: Request) -> Response:\n",
        f"    async def health(request: Request) -> Response:\n        _planted_work({health_n})\n",
    )
    text = text.replace(
        "            update = await parse_body(request)\n",
        f"            update = await parse_body(request)\n            _planted_work({webhook_n})\n",
        1,
    )
    app.write_text(text + PLANT)
    sh("git", "commit", "--quiet", "-am", "bench: planted regression", cwd=repo)


def gate(repo: Path, python: str) -> tuple[dict[str, Any], int, float]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [python, "-m", "perfaudit.cli", "run", *(a for s in SCENARIOS for a in ("-s", s)),
         "--measure", "instructions", "--baseline", "git:HEAD~1", "--repeat", "1", "--json"],
        cwd=repo, env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.monotonic() - t0
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit(
            f"perfaudit failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
        ) from None
    return report, proc.returncode, wall


def calibrate(repo: Path, python: str, per_iter: float, share: float) -> dict[str, int]:
    """Plant sizes for ``share`` of each scenario's service instructions per request: a
    first guess from the loop's cost in isolation, then scaled by what one planted run
    (not counted as a trial) really added in the service."""
    sizes = {"webhook-text": 50, "health": 8}
    plant(repo, sizes["webhook-text"], sizes["health"])
    report, _, wall = gate(repo, python)
    sh("git", "reset", "--quiet", "--hard", "HEAD~1", cwd=repo)
    got = figures(report)
    for name in SCENARIOS:
        m = got[name]["service_instructions_per_request"]
        added = (m["candidate"] - m["baseline"]) / sizes[name]  # Ir per iteration, in place
        sizes[name] = max(1, round(share * m["baseline"] / max(added, per_iter / 10)))
        print(
            f"calibration ({wall:.0f} s): {name}: {added:.0f} Ir per planted iteration in "
            f"the service -> {sizes[name]} iterations for {100 * share:g} %",
            flush=True,
        )
    return sizes


def figures(report: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for s in (report.get("comparison") or {}).get("scenarios", []):
        for m in s["metrics"]:
            if m["metric"] in METRICS:
                out.setdefault(s["name"], {})[m["metric"]] = {
                    k: m.get(k) for k in ("baseline", "candidate", "change", "floor", "verdict",
                                          "detectable", "reason")
                }  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10, help="A/A trials and planted trials each")
    ap.add_argument("--share", type=float, default=0.01, help="planted regression size")
    ap.add_argument("--out", type=Path, default=None, help="keep the scratch clone here")
    args = ap.parse_args()
    python = sys.executable
    tmp = Path(args.out or tempfile.mkdtemp(prefix="bench-cost-gate-"))
    tmp.mkdir(parents=True, exist_ok=True)
    repo = clone(tmp)
    per_iter = iteration_cost(python)
    print(f"planted loop: {per_iter:.1f} Ir per iteration (callgrind)", flush=True)
    trials: list[dict[str, Any]] = []
    sizes = calibrate(repo, python, per_iter, args.share)
    for i in range(2 * args.trials):
        kind = "A/A" if i % 2 == 0 else "planted"
        if kind == "A/A":
            sh("git", "commit", "--quiet", "--allow-empty", "-m", "bench: A/A", cwd=repo)
        else:
            plant(repo, sizes["webhook-text"], sizes["health"])
        report, code, wall = gate(repo, python)
        got = figures(report)
        sh("git", "reset", "--quiet", "--hard", "HEAD~1", cwd=repo)
        trials.append({"kind": kind, "exit_code": code, "wall_s": wall, "figures": got})
        parts = []
        for name, ms in got.items():
            for metric, m in ms.items():
                change = "n/a" if m["change"] is None else f"{100 * m['change']:+.3f} %"
                parts.append(f"{name}/{metric.split('_')[0]} {change} {m['verdict']}")
        print(f"trial {i + 1:2d} {kind:7s} exit {code} {wall:5.0f} s: " + "; ".join(parts),
              flush=True)  # fmt: skip
    summarize(trials, args.share)
    (tmp / "bench_cost_gate.json").write_text(json.dumps(trials, indent=1))
    print(f"trials: {tmp / 'bench_cost_gate.json'}")
    if args.out is None:
        shutil.rmtree(tmp / "repo", ignore_errors=True)


def summarize(trials: list[dict[str, Any]], share: float) -> None:
    print(f"\nsummary ({sum(t['kind'] == 'A/A' for t in trials)} A/A, "
          f"{sum(t['kind'] == 'planted' for t in trials)} planted trials):")  # fmt: skip
    for name in SCENARIOS:
        for metric in METRICS:
            rows = [(t["kind"], t["figures"].get(name, {}).get(metric)) for t in trials]
            aa = [m for k, m in rows if k == "A/A" and m and m["change"] is not None]
            pl = [m for k, m in rows if k == "planted" and m and m["change"] is not None]
            if not aa and not pl:
                continue
            label = f"{name} {metric}"
            if aa:
                changes = [100 * m["change"] for m in aa]
                alarms = sum(m["verdict"] in ("regressed", "improved") for m in aa)
                print(f"  {label}: A/A change {statistics.median(changes):+.3f} % median, "
                      f"spread {min(changes):+.3f}..{max(changes):+.3f} %; false alarms "
                      f"{alarms}/{len(aa)}; median floor "
                      f"±{100 * statistics.median(m['floor'] or 0 for m in aa):.3f} (log)")  # fmt: skip
            if pl and metric.startswith("service"):
                changes = [100 * m["change"] for m in pl]
                hits = sum(m["verdict"] == "regressed" for m in pl)
                print(f"  {label}: planted ~{100 * share:g} %: measured {statistics.median(changes):+.3f} % "
                      f"median ({min(changes):+.3f}..{max(changes):+.3f}); detected {hits}/{len(pl)}")  # fmt: skip
    walls = [t["wall_s"] for t in trials]
    print(f"  wall time per trial (both sides, both scenarios): median {statistics.median(walls):.0f} s, "
          f"max {max(walls):.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
