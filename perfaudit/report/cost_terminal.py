"""The instructions measure in the terminal: where the instructions went in one run, and
which functions gained or lost instructions (or calls) per request between two."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from perfaudit.analysis import costdiff
from perfaudit.analysis.metrics import Entry

TOP = 8


def _ir(v: float, signed: bool = False) -> str:
    sign = "+" if signed and v > 0 else ""
    if abs(v) >= 1e6:
        return f"{sign}{v / 1e6:.3f} M"
    if abs(v) >= 1e3:
        return f"{sign}{v / 1e3:.1f} k"
    return f"{sign}{v:.0f}"


def _calls(v: float, signed: bool = False) -> str:
    return f"{'+' if signed and v > 0 else ''}{v:.3g}"


def _by_name(entries: list[Entry]) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for e in entries:
        if costdiff.processes([e]):
            out.setdefault(e["name"], []).append(e)
    return out


def print_cost(entries: list[Entry], console: Console, top: int = TOP) -> None:
    """Per scenario measured for instructions: per process, the count and its top
    functions (C self cost, and Python calls where counted)."""
    for name, es in _by_name(entries).items():
        e = es[0]
        cost = e["cost"]["instructions"]
        table = Table(
            "process", "instructions/request", "top C functions (self Ir/request)",
            "most-called Python functions (calls/request)",
            title=f"{name}: where the instructions went ({cost.get('requests')} requests, "
            f"{len(cost.get('windows') or [])} windows)", title_justify="left",
        )  # fmt: skip
        for proc in costdiff.processes([e]):
            node = cost["processes"][proc]
            if not node.get("busy", True):
                table.add_row(proc, "idle (only background work)", "", "")
                continue
            c = "\n".join(f"{_ir(v)}  {escape(k)}" for k, v in costdiff.top(e, proc, "c", top))
            py = "\n".join(
                f"{_calls(v)}  {escape(costdiff.short_name(k))}"
                for k, v in costdiff.top(e, proc, "python", top)
            )
            table.add_row(proc, _ir(node["per_request"]), c, py or "(not counted)")
        console.print(table)


def print_cost_diff(baseline: list[Entry], candidate: list[Entry], console: Console,
                    top: int = TOP) -> None:  # fmt: skip
    """Which functions gained or lost instructions (C) or calls (Python) per request."""
    a_by, b_by = _by_name(baseline), _by_name(candidate)
    for name, b in b_by.items():
        a = a_by.get(name)
        if not a:
            continue
        for proc in costdiff.processes(b):
            if not (costdiff.busy(a, proc) or costdiff.busy(b, proc)):
                continue
            rows = _diff_rows(a, b, proc, top)
            if not rows:
                continue
            table = Table("level", "function", "baseline", "candidate", "change/request",
                          title=f"{name} / {proc}: where the instructions moved",
                          title_justify="left")  # fmt: skip
            for row in rows:
                table.add_row(*row)
            console.print(table)


def _diff_rows(a: list[Entry], b: list[Entry], proc: str, top: int) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for level, fmt, label in (("python", _calls, "Python calls"), ("c", _ir, "C self Ir")):
        for m in costdiff.diff(a, b, proc, level, top):
            style = "red" if m.delta > 0 else "green"
            rows.append((label, escape(costdiff.short_name(m.name)), fmt(m.baseline), fmt(m.candidate),
                         f"[{style}]{fmt(m.delta, signed=True)}[/]"))  # fmt: skip
    return rows


def cost_summary(entries: list[Entry]) -> dict[str, Any]:
    """For --json: per scenario and process, the count per request."""
    out: dict[str, Any] = {}
    for name, es in _by_name(entries).items():
        cost = es[0]["cost"]["instructions"]
        out[name] = {p: n.get("per_request") for p, n in (cost.get("processes") or {}).items()}
    return out
