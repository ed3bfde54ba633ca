"""The hotspots section of the terminal summary, read from the run's entries only."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from perfaudit.profile.hotspots import short_path, where

CATEGORY_STYLE = {"own": "bold magenta", "library": "", "waiting": "dim"}
TOP = 5


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.1f}%"


def _x(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.2f}×"


def print_profiles(entries: list[dict[str, Any]], console: Console) -> None:
    for e in entries:
        profiles = e.get("profiles") or {}
        if not profiles:
            continue
        console.print(Text(f"\nprofiles — {e['name']}", style="bold"))
        for name, prof in profiles.items():
            _profile(e, name, prof, console)


def _profile(entry: dict[str, Any], name: str, prof: dict[str, Any], console: Console) -> None:
    status = prof.get("status")
    if status != "ok":
        why = prof.get("reason") or "; ".join(prof.get("errors") or []) or status
        console.print(f"[yellow]{name} {status}[/]: {why}", highlight=False)
        return
    cost = (entry.get("overhead") or {}).get(name)
    if cost:
        console.print(
            f"[cyan]{name}[/] cost vs unprofiled: throughput {_x(cost.get('rps_ratio'))}, "
            f"p50 {_x(cost.get('p50_ratio'))}, p99 {_x(cost.get('p99_ratio'))}",
            highlight=False,
        )
    for proc_name, proc in (prof.get("processes") or {}).items():
        if "hotspots" in proc:
            title, table = _hotspot_table(name, proc_name, proc)
            console.print(title, highlight=False)
            console.print(table)
        elif "peak_mb" in proc:
            _memray_lines(proc_name, proc, console)
        elif "error" in proc:
            console.print(f"  [yellow]{proc_name}[/]: {proc['error']}", highlight=False)
    for note in prof.get("errors") or []:
        console.print(f"  [yellow]![/] {note}", highlight=False)
    for note in prof.get("notes") or []:  # e.g. the asyncio loop, memray run's start-up
        console.print(f"  [dim]note: {note}[/]", highlight=False)
    if prof.get("artifacts"):
        folder = str(prof["artifacts"][0]).rsplit("/", 1)[0]
        console.print(f"  [dim]artifacts: {folder}/ ({len(prof['artifacts'])} files)[/]")


def _hotspot_table(profiler: str, proc_name: str, proc: dict[str, Any]) -> tuple[str, Table]:
    hs = proc["hotspots"]
    cats = hs.get("by_category") or {}
    unit = "s" if profiler == "pyinstrument" else " samples"
    title = (
        f"  {profiler} · {proc_name} (pid {proc.get('pid')}, {hs.get('total', 0):g}{unit}): "
        f"own {_pct(cats.get('own'))} · libraries {_pct(cats.get('library'))} · "
        f"waiting {_pct(cats.get('waiting'))}"
    )
    table = Table(box=None, pad_edge=False)
    for col, justify in (("self", "right"), ("cum", "right"), ("function", "left"),
                         ("where", "left")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    cumulative = {(c["function"], c["file"]): c["share"] for c in hs.get("cumulative", [])}
    for item in hs.get("self", [])[:TOP]:
        style = CATEGORY_STYLE.get(item["category"], "")
        cum = cumulative.get((item["function"], item["file"]), item["share"])
        table.add_row(
            _pct(item["share"]), _pct(cum), Text(item["function"], style=style), where(item)
        )
    return title, table


def _memray_lines(proc_name: str, proc: dict[str, Any], console: Console) -> None:
    console.print(
        f"  memray · {proc_name} (pid {proc.get('pid')}): peak {proc['peak_mb']:.1f} MB, "
        f"allocated {proc['total_allocated_mb']:.1f} MB in {proc.get('allocations') or 0} "
        "allocations",
        highlight=False,
    )
    for a in (proc.get("top_allocators") or [])[:3]:
        loc = f"{short_path(a['file'])}:{a['line']}" if a.get("file") else "(native)"
        console.print(
            f"    {a['size_mb']:.1f} MB  {a['function']}  {loc}",
            style=CATEGORY_STYLE.get(a.get("category", ""), ""),
            highlight=False,
        )
