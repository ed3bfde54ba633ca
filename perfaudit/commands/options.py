"""Option types and help texts that more than one command shares."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

VariantOpt = Annotated[
    str, typer.Option("--variant", help="phase3 (the review's findings) or optimized (all fixes)")
]
WithOpt = Annotated[
    list[str] | None,
    typer.Option("--with", help="turn on one optimization switch (repeatable)"),
]
WithoutOpt = Annotated[
    list[str] | None,
    typer.Option("--without", help="turn off one optimization switch (repeatable)"),
]
RedisUrlOpt = Annotated[
    str | None, typer.Option(help="use this Redis instead of starting a private one")
]
DirOpt = Annotated[
    Path, typer.Option("--dir", help="where baselines live")
]  # default in each command: perfaudit.baseline.DEFAULT_DIR
BASELINES_DIR = Path("scenarios/baselines")

BASELINE = (
    "compare with this baseline: a name in scenarios/baselines/ or a baseline file; or, run "
    "side by side, variant:<label> (variant:phase3, variant:optimized-redis-pool) or "
    "git:<rev> (that revision's perfaudit). A stored baseline is used as stored only where "
    "this machine is shown to match it (time metrics: CPU, a calibration and a canary repeat; "
    "counts: the load settings; instructions: valgrind, CPU, Python, packages); otherwise its "
    "configuration is re-measured side by side"
)
REPEAT = "run each scenario N times, each with its own target start (default 3 with --baseline)"
JUNIT = "write JUnit XML here: a test case per scenario and check"
SUMMARY = "write a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)"
EXIT_CODES = (
    "Exit codes: 0 pass; 1 a threshold failed or a regression was found; 2 usage or "
    "configuration error; 3 the run is invalid (generator saturated, a process crashed); "
    "130 interrupted."
)
