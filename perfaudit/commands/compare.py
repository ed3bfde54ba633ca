"""``perfaudit compare A B``: compare two recordings per scenario and metric, re-running nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from perfaudit import cli_ui as ui
from perfaudit import exitcodes
from perfaudit.commands import options as opt
from perfaudit.commands.options import BASELINES_DIR, DirOpt


def compare(
    baseline: Annotated[
        str, typer.Argument(help="A: a baseline name or file, a run folder or results.json")
    ],
    candidate: Annotated[str, typer.Argument(help="B: the same kinds of reference")],
    scenario: Annotated[
        list[str] | None, typer.Option("--scenario", "-s", help="only this scenario (repeatable)")
    ] = None,
    junit: Annotated[Path | None, typer.Option(help=opt.JUNIT)] = None,
    summary: Annotated[Path | None, typer.Option("--summary", help=opt.SUMMARY)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the comparison as JSON")] = False,
    directory: DirOpt = BASELINES_DIR,
) -> None:
    """Compare B with A per scenario and metric: change, CI, noise floor, verdict.

    Verdicts: improved, regressed, unchanged, inconclusive (too noisy to say). Nothing
    is re-run, so verdicts are given per class of metric only where the recordings show
    they can be: time (latency, throughput, CPU) needs the same machine, both recordings'
    calibrations within 10 % and the same load settings; counts (connections per request)
    the same load settings; instructions the same cost environment. Others are
    inconclusive (re-measure side by side with `perfaudit run --baseline A`)."""
    from perfaudit import baseline as bl
    from perfaudit.analysis.compare import compare_entries
    from perfaudit.report import junit as junit_mod
    from perfaudit.report import markdown_summary
    from perfaudit.report.cost_terminal import print_cost_diff
    from perfaudit.report.outcome import build_report
    from perfaudit.report.terminal import print_report

    console, err, fail = ui.console, ui.err, ui.fail
    try:
        la, env_a, ea = bl.read_entries(baseline, directory)
        lb, env_b, eb = bl.read_entries(candidate, directory)
    except bl.BaselineError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    if scenario:
        ea = [e for e in ea if e["name"] in scenario]
        eb = [e for e in eb if e["name"] in scenario]
        if not eb:
            raise fail(exitcodes.USAGE, f"B has none of: {', '.join(scenario)}")
    untrusted, notes = bl.recorded_untrusted(env_a, ea, env_b, eb, baseline)
    comparison = compare_entries(
        ea, eb, baseline_label=la, candidate_label=lb, mode="recorded", untrusted=untrusted,
        notes=notes,
    )  # fmt: skip
    report = build_report(f"perfaudit compare {la} vs {lb}", eb, comparison, with_checks=False)
    if junit:
        junit_mod.write(report, junit)
    if summary:
        markdown_summary.write(report, summary)
    written = ui.render_compared(candidate, baseline, la, ea, comparison.to_dict(), err)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print_report(report, console)
        print_cost_diff(ea, eb, console)
        for path in written:
            console.print(f"report: {path}", highlight=False)
    raise typer.Exit(report.exit_code)


# typer shows the docstring; the exit codes follow it, as in the app's help.
HELP = (compare.__doc__ or "") + "\n\n" + opt.EXIT_CODES
