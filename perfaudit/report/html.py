"""The self-contained HTML report: inline CSS and inline SVG charts, no network access."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from perfaudit.report.view import ReportView

_env = Environment(
    loader=PackageLoader("perfaudit.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_html(view: ReportView) -> str:
    return _env.get_template("report.html.j2").render(v=view)


def write_html(view: ReportView, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "index.html"
    path.write_text(render_html(view))
    return path
