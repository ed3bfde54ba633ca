"""The CI gate path of ``perfaudit run`` (--baseline, --repeat, --junit, --summary)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from perfaudit import cli_ui as ui
from perfaudit import exitcodes

if TYPE_CHECKING:
    from perfaudit.run.runner import RunOptions
    from perfaudit.scenario import Scenario


def gated_run(
    scenarios: list[Scenario],
    options: RunOptions,
    baseline: str | None,
    repeat: int | None,
    junit: Path | None,
    summary: Path | None,
    as_json: bool,
    confirm: bool = True,
    fail_on_findings: str | None = None,
) -> int:
    """Run the gate and print its outcome; returns the exit code."""
    from perfaudit.analysis.findings._gather import exit_code, gather
    from perfaudit.gate import DEFAULT_REPEAT, GateError, GateOptions, plan, print_gate, run_gate
    from perfaudit.report.findings_terminal import print_findings
    from perfaudit.results import new_run_id
    from perfaudit.run.display import LiveDisplay, QuietEvents
    from perfaudit.run.repeat import CANDIDATE
    from perfaudit.scenario import ScenarioError
    from perfaudit.stack.process import ProcessStartError
    from perfaudit.stack.redis_server import RedisNotFoundError

    console, err, fail = ui.console, ui.err, ui.fail
    n = repeat if repeat is not None else (DEFAULT_REPEAT if baseline else 1)
    if n < 1:
        raise fail(exitcodes.USAGE, f"--repeat must be >= 1, got {n}")
    gate = GateOptions(
        baseline=baseline, repeat=n, junit=junit, summary=summary, confirm=confirm,
        fail_on_findings=fail_on_findings,
    )  # fmt: skip
    try:
        plan(scenarios, options, gate)  # usage errors before anything starts
    except GateError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    run_id = new_run_id()
    ui.sigterm_as_interrupt()
    show = err if as_json else console
    try:
        if as_json:
            result = run_gate(scenarios, options, gate, QuietEvents(), sys.argv, run_id)
        else:
            with LiveDisplay(console) as live:
                result = run_gate(scenarios, options, gate, live, sys.argv, run_id)
    except KeyboardInterrupt:
        show.print(f"interrupted; finished repeats kept in {options.out_dir / run_id}")
        raise typer.Exit(exitcodes.INTERRUPTED) from None
    except GateError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    except ScenarioError as exc:
        raise fail(exitcodes.USAGE, str(exc)) from None
    except (ProcessStartError, RedisNotFoundError, ConnectionError, OSError) as exc:
        raise fail(exitcodes.INVALID, f"could not start a target: {exc}") from None
    written = _render_gated(result, show)
    # The candidate's findings (repeats share the first one's), as in the JUnit and summary.
    diagnosis = gather(result.records[CANDIDATE].scenarios)
    code = exit_code(result.report.exit_code, diagnosis, fail_on_findings)
    if as_json:
        out = result.to_dict() | {"report": written, "diagnosis": diagnosis.to_dict()}
        print(json.dumps(out | {"exit_code": code}, indent=2, default=str))
    else:
        print_gate(result, console)
        print_findings(diagnosis, console, result.report.results or result.run_id)
        hits = diagnosis.at_least(fail_on_findings)
        if hits:
            console.print(f"[bold red]FAILED[/]: {len(hits)} finding(s) at or above "
                          f"{fail_on_findings} (--fail-on-findings)", highlight=False)  # fmt: skip
        for path in written:
            console.print(f"report: {path}", highlight=False)
    return code


def _render_gated(result: Any, show: Any) -> list[str]:
    """The before/after report beside the candidate's results, as for a plain run."""
    from perfaudit.run.repeat import BASELINE

    comparison = result.report.comparison
    folder = result.out_dir / result.run_id
    if comparison is None:
        return ui.render_report(folder, show)
    base = result.records[BASELINE].scenarios if BASELINE in result.records else []
    return ui.render_compared(str(folder), str(folder / "baseline"), comparison.baseline, base,
                              comparison.to_dict(), show)  # fmt: skip
