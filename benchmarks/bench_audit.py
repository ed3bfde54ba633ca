"""What the audit itself costs, part by part: runs ``perfaudit audit`` (the quick form by
default) into a scratch folder and prints each part's wall time, its runs and the cost per
run, and the whole audit's wall time.

    .venv/bin/python benchmarks/bench_audit.py [--full] [--out DIR] [-- extra audit options]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="the full audit, not --quick")
    parser.add_argument("--out", type=Path, help="where the audit folder goes (default: temp)")
    parser.add_argument("extra", nargs="*", help="more perfaudit audit options")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-audit-"))
    command = [sys.executable, "-m", "perfaudit.cli", "audit", "--out", str(out), *args.extra]
    if not args.full:
        command.append("--quick")
    t0 = time.monotonic()
    proc = subprocess.run(command, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:], sep="\n")
        return proc.returncode
    (folder,) = sorted(p for p in out.iterdir() if p.name.startswith("audit-"))[-1:]
    record = json.loads((folder / "audit.json").read_text())
    settings = record["plan"]["settings"]
    print(f"audit ({settings['preset']}): {len(record['plan']['configs'])} configurations, "
          f"{settings['repeats']} repeats, window {settings['duration_s']} s")  # fmt: skip
    print(f"{'part':<14}{'wall s':>9}{'runs':>7}{'s/run':>8}")
    for name, part in record["parts"].items():
        runs = part.get("runs") or 0
        per = part["wall_s"] / runs if runs else float("nan")
        print(f"{name:<14}{part['wall_s']:>9.0f}{runs:>7}{per:>8.1f}")
    print(f"{'whole audit':<14}{wall:>9.0f}   (analysis and rendering included)")
    summary = json.loads((folder / "summary.json").read_text())
    print(f"headline: {summary['headline']}")
    print(f"folder: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
