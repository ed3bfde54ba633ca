"""The gate's verdict in the terminal (Rich): a table per compared scenario, then one
line per failed threshold, invalid repeat and note, and the headline last."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from perfaudit.redact import redact
from perfaudit.report.outcome import (
    GateReport,
    change_text,
    check_text,
    ci_text,
    detectable_text,
    floor_text,
    value_text,
    verdict_of,
)

STYLE = {
    "regressed": "bold red", "improved": "green", "unchanged": "dim",
    "inconclusive": "yellow", "withheld": "yellow", "missing": "dim",
}  # fmt: skip
STATUS_STYLE = {
    "pass": "green",
    "fail": "bold red",
    "regressed": "bold red",
    "invalid": "bold yellow",
}


def print_report(report: GateReport, console: Console) -> None:
    comp = report.comparison
    if comp is not None:
        console.print(
            f"[bold]{comp.candidate}[/] vs [bold]{comp.baseline}[/] ({comp.mode})", highlight=False
        )
        for note in comp.notes:
            console.print(f"[cyan]note[/] {note}", highlight=False)
    for o in report.scenarios:
        sc = o.comparison
        if sc is not None and sc.metrics:
            verdict = verdict_of(sc)  # from the metric verdicts, as the headline counts them
            table = Table(
                title=f"{o.name}: {verdict}", title_style=STYLE.get(verdict, ""),
                title_justify="left",
            )  # fmt: skip
            for col in (
                "metric",
                "baseline",
                "candidate",
                "change",
                "95 % CI",
                "noise floor",
                "verdict",
                "detectable",  # the smallest change the verdict could have seen
            ):
                table.add_column(col, justify="left" if col in ("metric", "verdict") else "right")
            for m in sc.metrics:
                table.add_row(
                    m.label, value_text(m, "baseline"), value_text(m, "candidate"),
                    change_text(m), ci_text(m), floor_text(m),
                    Text(m.verdict, style=STYLE.get(m.verdict, "")), detectable_text(m),
                )  # fmt: skip
            console.print(table)
            for m in sc.metrics:
                if m.verdict in ("regressed", "improved"):
                    console.print(f"  {m.label}: {m.reason}", highlight=False)
        if sc is not None:
            for note in sc.notes:
                console.print(f"  [cyan]note[/] {o.name}: {note}", highlight=False)
    for o in report.scenarios:
        for c in o.failed_checks:
            note = f" ({c.note})" if c.note else ""
            console.print(f"[red]FAIL[/] {o.name}: {check_text(c)}{note}", highlight=False)
        for reason in o.invalid:
            console.print(f"[yellow]INVALID[/] {o.name}: {redact(reason)}", highlight=False)
    for note in report.notes:
        console.print(f"[cyan]note[/] {note}", highlight=False)
    style = STATUS_STYLE[
        "invalid" if report.exit_code == 3 else ("fail" if report.exit_code else "pass")
    ]
    console.print(Text(f"{report.headline} (exit code {report.exit_code})", style=style))
