"""Findings in the terminal (Rich): one table, most severe first, then what could not be
checked — one line per rule and scenario when verbose, else a single summary line."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from perfaudit.analysis.findings._gather import RunDiagnosis
from perfaudit.redact import redact
from perfaudit.report.findings_view import first_where, impact_text

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "dim"}


def findings_table(diagnosis: RunDiagnosis, title: str = "findings") -> Table:
    table = Table(title=f"{title}: {diagnosis.counts_text()}", title_justify="left")
    # The switch column only where a reference target's switch fixes something.
    switched = any(f.get("switches") for f in diagnosis.findings)
    cols = ("severity", "scenario", "finding", "impact", "where", "fix", "switch")
    for col in cols if switched else cols[:-1]:
        table.add_column(col, justify="right" if col == "impact" else "left")
    for f in diagnosis.findings:
        # Text, not str: a title like "GET /items/[id]" is not Rich markup.
        cells = [
            Text(f["severity"], style=SEVERITY_STYLE.get(f["severity"], "")),
            Text(redact(str(f.get("scenario", "")))),
            Text(redact(str(f.get("title", "")))),
            Text(impact_text(f)),
            Text(first_where(f)),
            Text(redact(str(f.get("fix") or ""))),
        ]
        if switched:
            cells.append(Text(", ".join(redact(str(s)) for s in f.get("switches") or [])))
        table.add_row(*cells)
    return table


def print_findings(
    diagnosis: RunDiagnosis, console: Console, run_ref: str, verbose: bool = False
) -> None:
    """``run_ref``: what to pass to ``perfaudit diagnose`` for the details."""
    n_rules, n_scen = len(diagnosis.rules), len(diagnosis.scenarios)
    if diagnosis.findings:
        console.print(findings_table(diagnosis))
    else:
        console.print(
            f"no findings: {n_rules} rule(s) ran on {n_scen} scenario(s)", highlight=False
        )
    print_not_checked(diagnosis, console, run_ref, verbose)


def print_not_checked(
    diagnosis: RunDiagnosis, console: Console, run_ref: str, verbose: bool
) -> None:
    if not diagnosis.not_checked:
        return
    if verbose:
        for n in diagnosis.not_checked:
            what = redact(f"{n['scenario']}: {n['rule']}: {n['reason']}")
            console.print(f"[dim]not checked[/] {escape(what)}", highlight=False)
        return
    rules = list(dict.fromkeys(n["rule"] for n in diagnosis.not_checked))
    console.print(
        Text(
            f"{len(rules)} rule(s) could not look in some scenario: {', '.join(rules)} "
            f"(see perfaudit diagnose {run_ref})"
        ),
        highlight=False,
    )
