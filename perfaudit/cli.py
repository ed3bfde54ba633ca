"""The ``perfaudit`` command line: the typer app and its verbs, one module each in
perfaudit/commands/ (parse, call, print). This file only wires them."""

from __future__ import annotations

import sys

import typer

from perfaudit.commands import (
    audit,
    baseline,
    compare,
    diagnose,
    report,
    run,
    scenarios,
    serve,
    smoke,
    switches,
)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=(
        "perfaudit: load, profile and compare Python services.\n\n"
        "Exit codes: 0 ok; 1 a threshold failed, a regression was found, or a finding at "
        "or above --fail-on-findings; "
        "2 usage or configuration error; 3 the run is invalid (generator saturated, "
        "a process crashed); 130 interrupted."
    ),
)

# -- the verbs: one line each (commands first, then the groups; help lists them in this order)
app.command("report")(report.report)
app.command("compare", help=compare.HELP)(compare.compare)
app.command("diagnose")(diagnose.diagnose)
app.command("switches")(switches.switches)
app.command("serve")(serve.serve)
app.command("smoke")(smoke.smoke)
app.command("run")(run.run)
app.command("audit", help=audit.HELP)(audit.audit)
app.add_typer(scenarios.scenarios_app, name="scenarios", help="List and validate scenario files.")
app.add_typer(baseline.baseline_app, name="baseline", help="Save, list and show named baselines.")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
