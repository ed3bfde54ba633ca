"""Render an audit folder's ``summary.json`` into report.md, index.html and charts/, and
publish it (with the summary, so the committed report re-renders from it) and the
performance doc."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from perfaudit.report.audit_charts import write_charts
from perfaudit.report.audit_html import write_html
from perfaudit.report.audit_markdown import write_markdown
from perfaudit.report.performance_doc import write_performance_doc

SUMMARY_FILE = "summary.json"  # perfaudit.audit.analyze.SUMMARY_FILE
DOC_FILE = "performance.md"


class AuditRenderError(ValueError):
    pass


def read_summary(folder: Path) -> dict[str, Any]:
    path = folder / SUMMARY_FILE if folder.is_dir() else folder
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise AuditRenderError(f"no {SUMMARY_FILE} in {folder}: analyze the audit first") from exc
    except json.JSONDecodeError as exc:
        raise AuditRenderError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise AuditRenderError(f"{path}: not an audit summary")
    return data


def render_audit(folder: Path, out: Path | None = None) -> list[Path]:
    """folder/summary.json -> report.md, index.html and charts/*.png in ``out`` (default:
    ``folder``). Returns the files written (charts first)."""
    summary = read_summary(folder)
    out = out or (folder if folder.is_dir() else folder.parent)
    out.mkdir(parents=True, exist_ok=True)
    charts = write_charts(summary, out)
    written = [out / rel for rel in charts.values()]
    written.append(write_markdown(summary, out, charts))
    written.append(write_html(summary, out, charts))
    return written


def publish(folder: Path, dest: Path, docs: Path | None = None) -> list[Path]:
    """Copy folder/summary.json into ``dest`` (e.g. reports/phase4), render the report
    there, and write the performance doc to ``docs`` when given (a file, or a folder to
    hold performance.md) with links relative to it."""
    source = folder / SUMMARY_FILE if folder.is_dir() else folder
    dest.mkdir(parents=True, exist_ok=True)
    copied = dest / SUMMARY_FILE
    if source.resolve() != copied.resolve():
        shutil.copyfile(source, copied)
    written = [copied, *render_audit(dest)]
    if docs is not None:
        doc = docs if docs.suffix == ".md" else docs / DOC_FILE
        rel = Path(os.path.relpath(copied, doc.parent)).as_posix()
        written.append(write_performance_doc(read_summary(dest), doc, dest / "report.md", rel))
    return written
