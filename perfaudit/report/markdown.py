"""report.md with its charts as SVG files beside it (renders on GitHub)."""

from __future__ import annotations

import re
from pathlib import Path

from perfaudit.report.findings_markdown import scenario_lines
from perfaudit.report.markdown_text import esc
from perfaudit.report.view import ReportView


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def render_markdown(view: ReportView, out_dir: Path) -> str:
    """The Markdown text; chart files are written under ``out_dir/charts``."""

    charts_dir = out_dir / "charts"
    charts_dir.mkdir(parents=True, exist_ok=True)
    lines = [f"# perfaudit run `{esc(view.run_id)}`", ""]
    lines.append(f"**{view.verdict.upper()}** — {esc(view.verdict_text)} ({esc(view.created_at)}, "
                 f"status {esc(view.status)})")  # fmt: skip
    if view.baseline_label:
        verdict = f": {esc(view.comparison_headline)}" if view.comparison_headline else ""
        lines.append(f"\nCompared with **{esc(view.baseline_label)}**{verdict}")
        lines += [f"- {esc(n)}" for n in view.comparison_notes]
    lines.append(f"\nFindings: **{esc(view.findings_text)}** (per scenario below; "
                 f"`perfaudit diagnose {esc(view.run_id)}` runs the rules again)")  # fmt: skip
    lines += ["", "## Environment", "", "| | |", "|---|---|"]
    lines += [f"| {esc(k)} | {esc(v)} |" for k, v in view.environment]
    lines += ["", "## Scenarios", "",
              "| scenario | target | p50 ms | p95 ms | p99 ms | req/s | errors | verdict |",
              "|---|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for s in view.scenarios:
        r = s.rows
        lines.append(f"| [{esc(s.name)}](#{slug(s.name)}) | {esc(s.target)} | {r[0].value} | "
                     f"{r[1].value} | {r[2].value} | {r[4].value} | {r[5].value} | "
                     f"**{s.verdict}** |")  # fmt: skip
    for s in view.scenarios:
        lines += ["", f"## {esc(s.name)}", "", f"{esc(s.description)} ({s.kind}, {esc(s.target)}) "
                  f"— **{s.verdict}**", ""]  # fmt: skip
        lines += [f"- invalid: {esc(r)}" for r in s.reasons]
        if s.comparison_headline:
            lines.append(f"- vs baseline: {esc(s.comparison_headline)}")
        lines += [f"- {esc(n)}" for n in s.notes]
        if lines[-1]:
            lines.append("")  # a table right after a list would be read as part of it
        header = "| metric | this run | threshold |"
        rule = "|---|---:|---:|"
        if view.baseline_label:
            header += " baseline | change [95 % CI] | verdict |"
            rule += "---:|---:|---|"
        lines += [header, rule]
        for row in s.rows:
            mark = {True: " ✓", False: " ✗", None: ""}[row.threshold_ok]
            line = f"| {esc(row.label)} | {row.value} | {row.threshold}{mark} |"
            if view.baseline_label:
                seen = f" ({esc(row.detectable)})" if row.detectable else ""
                line += f" {row.baseline} | {esc(row.change)} | {row.verdict}{seen} |"
            lines.append(line)
        if s.costs:
            lines += ["", "| per-request cost | |", "|---|---:|"]
            lines += [f"| {esc(k)} | {esc(v)} |" for k, v in s.costs]
        lines += scenario_lines(s.findings, s.not_checked)
        for title, svg in s.charts.items():
            name = f"{slug(s.name)}-{slug(title)}.svg"
            (charts_dir / name).write_text(svg)
            lines += ["", f"![{esc(title)}](charts/{name})"]
        if s.flamediff:
            name = f"{slug(s.name)}-flamediff.svg"
            (charts_dir / name).write_text(s.flamediff)
            lines += ["", f"![differential flame graph](charts/{name})"]
        if s.hotspots:
            lines += [
                "",
                "| profiler | function | where | self | category |",
                "|---|---|---|---:|---|",
            ]
            for h in s.hotspots:
                lines.append(f"| {esc(h['profiler'])} | {esc(h['function'])} | {esc(h['where'])} | "
                             f"{esc(h['share'])} | {esc(h['category'])} |")  # fmt: skip
        if s.artifacts:
            lines += [""] + [
                f"- {esc(label)}: [{esc(path)}]({path})" for label, path in s.artifacts
            ]
    lines += ["", "## Optimization log", ""]
    for o in view.optimization_log:
        lines += [f"### `{o.name}`", "", f"- finding: {esc(o.finding)}", f"- phase3: {esc(o.phase3)}",
                  f"- optimized: {esc(o.optimized)}"]  # fmt: skip
        if o.effects:
            lines += ["", "| scenario | p95 before | p95 after | change | verdict |",
                      "|---|---:|---:|---:|---|"]  # fmt: skip
            lines += [f"| {esc(e['scenario'])} | {e['before']} | {e['after']} | {esc(e['change'])} | "
                      f"{esc(e['verdict'])} |" for e in o.effects]  # fmt: skip
        if o.note:
            lines += ["", f"_{esc(o.note)}_"]
        lines.append("")
    return "\n".join(lines) + "\n"


def write_markdown(view: ReportView, out_dir: Path) -> Path:
    path = out_dir / "report.md"
    path.write_text(render_markdown(view, out_dir))
    return path
