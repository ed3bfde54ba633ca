"""The audit as GitHub-renderable Markdown (``report.md``), charts as relative image links."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from perfaudit.report.audit_view import (
    SIDES,
    AuditView,
    Effect,
    OpportunityRow,
    ScenarioBlock,
    Summary,
    SwitchView,
    build_view,
)

SIDE_HEADS = {
    "add_one": ("add-one: phase3 → + switch", "change (95 % CI)", "verdict"),
    "drop_one": ("drop-one: optimized − switch → optimized", "change (95 % CI)", "verdict"),
}


def text(s: object) -> str:
    """Plain text safe in Markdown: no raw HTML, no table breaks."""
    return (
        str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace("|", "\\|").replace("\n", " ")
    )  # fmt: skip


def code(s: object) -> str:
    return "`" + str(s).replace("`", "'") + "`"


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table; cells are already escaped."""
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out + [""]


def image(path: str | None, alt: str) -> list[str]:
    return [f"![{text(alt)}]({path})", ""] if path else []


def _before_after(e: Effect) -> str:
    return f"{text(e.before)} → {text(e.after)}" if e.before or e.after else "—"


def _side_cells(e: Effect) -> list[str]:
    return [_before_after(e), text(e.change or "—"), text(e.note)]


def scenario_table(b: ScenarioBlock, sides: Sequence[str]) -> list[str]:
    head = ["metric"]
    for side in sides:
        head += list(SIDE_HEADS[side])
    rows = [[text(r.label)] + [c for s in sides for c in _side_cells(r.sides[s])] for r in b.rows]
    out = table(head, rows) if rows else ["No metric compared.", ""]
    return out + [f"_{text(n)}_" for n in b.notes] + ([""] if b.notes else [])


def verdict_table(v: AuditView) -> list[str]:
    rows = [
        [
            f"[{text(s.name)}](#{s.anchor})",
            f"**{text(s.verdict)}**",
            "<br>".join(text(t.text) for t in s.top) or "none conclusive",
            text(", ".join(s.measured_on) or "none"),
            f"yes ({len(s.interactions)})" if s.interactions else "—",
        ]
        for s in v.switches
    ]
    head = ["switch", "verdict", "largest conclusive effects (95 % CI)", "scenarios measured",
            "interactions"]  # fmt: skip
    return ["## Verdict per switch", ""] + (
        table(head, rows) if rows else ["No switch measured.", ""]
    )


def capacity_section(v: AuditView) -> list[str]:
    out = ["## Capacity", ""]
    if not v.capacity:
        return out + [text(v.capacity_note), ""]
    out += [
        "Highest open-model arrival rate at which each key endpoint still meets its thresholds; "
        '"≥" where the search stopped before the target failed (only a bound).',
        "",
    ]
    head = ["endpoint", "phase3", "optimized", "optimized / phase3", "phase3 limited by",
            "optimized limited by"]  # fmt: skip
    rows = [[text(c.scenario), text(c.phase3), text(c.optimized), text(c.ratio),
             text(c.phase3_limit), text(c.optimized_limit)] for c in v.capacity]  # fmt: skip
    return out + table(head, rows) + image(v.charts.get("capacity"), "capacity steps")


def targets_section(v: AuditView) -> list[str]:
    out = ["## Targets", ""]
    if not v.targets:
        return out + [text(v.targets_note), ""]
    head = ["target", "source", "scenario", "limit", "phase3 p95 / p99", "phase3",
            "optimized p95 / p99", "optimized"]  # fmt: skip
    rows = [[text(t.target), text(t.source), text(t.scenario), text(t.limit), text(t.phase3),
             f"**{text(t.phase3_status)}**", text(t.optimized), f"**{text(t.optimized_status)}**"]
            for t in v.targets]  # fmt: skip
    return out + table(head, rows) + image(v.charts.get("targets"), "targets: p95 vs limit")


def combined_section(v: AuditView) -> list[str]:
    out = ["## Phase 3 → optimized (all switches together)", ""]
    if not v.combined:
        return out + [text(v.combined_note), ""]
    for b in v.combined:
        out += [f"### {text(b.scenario)} — {text(b.verdicts.get('combined', 'missing'))}", ""]
        head = ["metric", "phase3", "optimized", "change (95 % CI)", "verdict"]
        rows = [[text(r.label), text(r.sides["combined"].before), text(r.sides["combined"].after),
                 text(r.sides["combined"].change), text(r.sides["combined"].note)] for r in b.rows]  # fmt: skip
        out += table(head, rows) if rows else ["No metric compared.", ""]
        out += [f"_{text(n)}_" for n in b.notes] + ([""] if b.notes else [])
    return out


def switch_section(s: SwitchView) -> list[str]:
    out = [f'<a id="{s.anchor}"></a>', "", f"### {text(s.name)} — {text(s.verdict)}", ""]
    out += [f"- **Finding:** {text(s.finding or 'n/a')}",
            f"- **Phase 3 behaviour:** {text(s.phase3 or 'n/a')}",
            f"- **The change:** {text(s.optimized or 'n/a')}"]  # fmt: skip
    code_list = ", ".join(f"{code(f)} ({code(fn)})" if fn else code(f) for f, fn in s.code)
    out += [f"- **Code:** {code_list or 'n/a'}", ""]
    out += ["#### Before / after", ""]
    for b in s.blocks:
        verdicts = ", ".join(f"{k.replace('_', '-')}: {text(v)}" for k, v in b.verdicts.items())
        out += [f"**{text(b.scenario)}** ({verdicts})", ""] + scenario_table(b, SIDES)
    if not s.blocks:
        out += ["Not measured.", ""]
    if s.instructions:
        out += ["#### Instructions per request", ""]
        for b in s.instructions:
            out += [f"**{text(b.scenario)}**", ""] + scenario_table(b, SIDES)
    if s.interactions:
        out += ["#### Interactions", ""] + [f"- {text(i)}" for i in s.interactions] + [""]
    return out + image(s.chart, f"{s.name}: effects with 95 % CI")


def findings_section(v: AuditView) -> list[str]:
    rows = [[text(s.finding or "n/a"), f"[{text(s.name)}](#{s.anchor})", text(s.effect_line)]
            for s in v.switches]  # fmt: skip
    out = ["## Findings → fixes", ""]
    return out + (
        table(["Phase 3 finding", "switch", "measured effect"], rows) if rows else ["None.", ""]
    )


def _opportunity_table(title: str, rows: list[OpportunityRow], alloc: bool = False) -> list[str]:
    out = [f"### {title}", ""]
    if not rows:
        return out + ["None found.", ""]
    head = ["scenario", "process", "function", "file:line", "category",
            "share of allocations" if alloc else "share of CPU"] + (["size"] if alloc else [])  # fmt: skip
    cells = [[text(o.scenario), text(o.process), code(o.function), code(o.location),
              text(o.category), text(o.share)] + ([text(o.size)] if alloc else [])
             for o in rows]  # fmt: skip
    return out + table(head, cells)


def opportunities_section(v: AuditView) -> list[str]:
    out = ["## Remaining opportunities", ""]
    if not (v.own_hotspots or v.cpu_hotspots or v.allocators):
        out += [text(v.opportunities_note), ""]
    else:
        out += ["From profiles of the optimized variant (py-spy self samples, memray).", ""]
        out += _opportunity_table("Own-code hotspots", v.own_hotspots)
        out += _opportunity_table("Anything above 5 % of CPU", v.cpu_hotspots)
        out += _opportunity_table("Top allocators", v.allocators, alloc=True)
    out += ["### Recommendations", ""]
    out += [f"- {text(r)}" for r in v.recommendations] or ["- None: every measured target is met."]
    return out + [""]


def method_section(v: AuditView) -> list[str]:
    out = ["## Method and cost", ""] + [f"- {text(n)}" for n in v.method_notes] + [""]
    out += ["### Plan settings", ""] + table(
        ["setting", "value"], [[text(k), text(x)] for k, x in v.settings]
    )
    out += ["### Environment", ""] + table(["", ""], [[text(k), text(x)] for k, x in v.environment])
    out += ["### Cost", ""] + table(["part", "status", "wall time", "runs"],
                                    [[text(c) for c in p] for p in v.parts])  # fmt: skip
    return out


def render_markdown(view: AuditView) -> str:
    lines = [f"# {text(view.title)}", "", f"**{text(view.headline)}**", ""]
    lines += [f"Audit {code(view.audit_id)} · {text(view.created_at)} · status {text(view.status)}. "
              "Every comparison is oriented without the switch → with it: \"improved\" means the "
              "switch helps.", ""]  # fmt: skip
    lines += verdict_table(view) + capacity_section(view) + targets_section(view)
    lines += combined_section(view) + ["## Optimizations", ""]
    for s in view.switches:
        lines += switch_section(s)
    lines += findings_section(view) + opportunities_section(view) + method_section(view)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def write_markdown(summary: Summary, out: Path, charts: dict[str, str] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.md"
    path.write_text(render_markdown(build_view(summary, charts)))
    return path
