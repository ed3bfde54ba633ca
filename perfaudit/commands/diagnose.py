"""``perfaudit diagnose RUN``: the rules run again on a stored run's figures; its findings
printed (or as JSON for CI). Reads results.json only; never writes it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from perfaudit import cli_ui as ui
from perfaudit import exitcodes

if TYPE_CHECKING:
    from rich.console import Console

    from perfaudit.analysis.findings._gather import RunDiagnosis

FailOnFindingsOpt = Annotated[
    str | None,
    typer.Option(
        "--fail-on-findings",
        metavar="SEVERITY",
        help="exit 1 when a finding is at or above this severity: high, medium or low "
        "(default: findings are reported and never fail)",
    ),
]


def diagnose(
    run: Annotated[
        str | None,
        typer.Argument(help="a run id under reports/, a run folder or a results.json"),
    ] = None,
    scenario: Annotated[
        list[str] | None,
        typer.Option("--scenario", "-s", help="only this scenario (repeatable)"),
    ] = None,
    rule: Annotated[
        list[str] | None, typer.Option("--rule", help="only this rule id (repeatable)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the diagnosis as JSON on stdout")
    ] = False,
    list_rules: Annotated[
        bool, typer.Option("--rules", help="list the rules (id, title) and exit")
    ] = False,
    fail_on: FailOnFindingsOpt = None,
    reports: Annotated[Path, typer.Option(help="where run folders are")] = Path("reports"),
) -> None:
    """Find what is wrong in a run: findings with evidence, location, fix and how to confirm it."""
    from perfaudit import results
    from perfaudit.analysis.findings import rules
    from perfaudit.analysis.findings._gather import check_level, exit_code, gather
    from perfaudit.commands.report import resolve_run
    from perfaudit.suggest import suggest

    if list_rules:
        _print_rules(as_json)
        return
    try:
        level = check_level(fail_on)
    except ValueError as exc:
        raise ui.fail(exitcodes.USAGE, str(exc)) from None
    if run is None:
        raise ui.fail(exitcodes.USAGE, "diagnose: give a run (a run id, a run folder or a "
                      "results.json), or --rules to list the rules")  # fmt: skip
    try:
        path = resolve_run(run, reports)
        record = results.read(path)
    except (FileNotFoundError, results.ResultsError) as exc:
        raise ui.fail(exitcodes.USAGE, str(exc)) from None
    entries = [e for e in record.scenarios if not e.get("profiled")]
    names = list(dict.fromkeys(e["name"] for e in entries))
    ids = [r.id for r in rules()]
    for given, known, what in ((scenario, names, "scenario"), (rule, ids, "rule")):
        for name in given or ():
            if name not in known:
                raise ui.fail(exitcodes.USAGE, f"unknown {what} {name!r} "
                              f"(known: {', '.join(known) or 'none'})" + suggest(name, known))  # fmt: skip
    if scenario:
        entries = [e for e in entries if e["name"] in scenario]
    diagnosis = gather(entries, fresh=True, only=tuple(rule or ()))
    code = exit_code(exitcodes.OK, diagnosis, level)
    results_path = path / results.RESULTS_FILE if path.is_dir() else path
    if as_json:
        out = {"run_id": record.run_id, "results": str(results_path), "fail_on_findings": level,
               "exit_code": code, **diagnosis.to_dict()}  # fmt: skip
        print(json.dumps(out, indent=2, default=str))
    else:
        _print(diagnosis, ui.console, record.run_id, str(results_path), level)
    raise typer.Exit(code)


def _print_rules(as_json: bool) -> None:
    from perfaudit.analysis.findings import rules

    if as_json:
        print(json.dumps([{"id": r.id, "title": r.title} for r in rules()], indent=2))
        return
    for r in rules():
        ui.console.print(f"{r.id:<28} {r.title}", highlight=False)


def _print(
    diagnosis: RunDiagnosis, console: Console, run_id: str, results_path: str, level: str | None
) -> None:
    from rich.markup import escape
    from rich.text import Text

    from perfaudit.redact import redact
    from perfaudit.report.findings_terminal import SEVERITY_STYLE, print_findings
    from perfaudit.report.findings_view import view

    console.print(f"diagnosis of run {run_id} ({results_path}): the rules run again on its "
                  "stored figures", highlight=False)  # fmt: skip
    print_findings(diagnosis, console, run_id, verbose=True)
    for f in diagnosis.findings:
        v = view(f)
        style = SEVERITY_STYLE.get(v.severity, "")
        head = escape(f"{v.scenario}: {v.title}")
        console.print(f"\n[{style}]{v.severity}[/] {head} [dim]({escape(v.rule)})[/]",
                      highlight=False)  # fmt: skip
        rows: list[tuple[str, Any]] = [("impact", v.impact)]
        rows += [("evidence", "; ".join(f"{k} {val}" for k, val in v.evidence))]
        rows += [("where", w) for w in v.where] or [("where", "(no location)")]
        rows += [("fix", v.fix), ("confirm", v.confirm)]
        if v.switches:
            rows.append(("switches", ", ".join(v.switches)))
        for key, text in rows:
            console.print(Text(f"  {key:<9} {redact(str(text))}"), highlight=False, soft_wrap=True)
    hits = diagnosis.at_least(level)
    if hits:
        console.print(f"\n[bold red]FAILED[/]: {len(hits)} finding(s) at or above {level}",
                      highlight=False)  # fmt: skip
