"""``perfaudit report``: results (and an optional baseline) → index.html and report.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perfaudit import results
from perfaudit.report.flamediff import render_diff_svg
from perfaudit.report.html import write_html
from perfaudit.report.markdown import write_markdown
from perfaudit.report.view import build_view


@dataclass(frozen=True)
class Written:
    html: Path
    markdown: Path


def render(
    run: Path,
    out_dir: Path | None = None,
    baseline: dict[str, list[dict[str, Any]]] | None = None,
    baseline_label: str = "",
    comparison: dict[str, Any] | None = None,
    baseline_dir: Path | None = None,
) -> Written:
    """Render the run at ``run`` (a run folder or its results.json) into ``out_dir``."""
    record = results.read(run)
    folder = run if run.is_dir() else run.parent
    out = out_dir or folder
    view = build_view(record, baseline, baseline_label, comparison)
    if baseline and baseline_dir is not None:
        _add_flame_diffs(view, record, folder, baseline, baseline_dir)
    return Written(write_html(view, out), write_markdown(view, out))


def collapsed_stacks(entry: dict[str, Any], run_dir: Path, process: str = "service") -> str | None:
    """The py-spy collapsed stacks of ``process`` in a scenario entry, if it was profiled."""
    spy = (entry.get("profiles") or {}).get("py-spy") or {}
    info = (spy.get("processes") or {}).get(process) or {}
    for rel in info.get("artifacts") or []:
        if str(rel).endswith(".collapsed.txt"):
            path = run_dir / rel
            if path.is_file():
                return path.read_text(errors="replace")
    return None


def _add_flame_diffs(
    view: Any,
    record: results.RunRecord,
    run_dir: Path,
    baseline: dict[str, list[dict[str, Any]]],
    baseline_dir: Path,
) -> None:
    entries = {e["name"]: e for e in record.scenarios if not e.get("profiled")}
    for s in view.scenarios:
        after = collapsed_stacks(entries.get(s.name, {}), run_dir)
        before_entries = baseline.get(s.name) or []
        before = collapsed_stacks(before_entries[0], baseline_dir) if before_entries else None
        if after and before:
            s.flamediff = render_diff_svg(before, after, f"{s.name}: service, baseline → this run")


def entries_by_name(record: results.RunRecord) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in record.scenarios:
        if not e.get("profiled"):
            out.setdefault(e["name"], []).append(e)
    return out
