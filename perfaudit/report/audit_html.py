"""The audit as ``index.html``: inline CSS, chart images next to it (relative paths).

Autoescaped throughout: finding texts, function names and reasons come from files, so a
``<script>`` in one shows as text.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from perfaudit.report.audit_view import SIDE_TITLES, SIDES, AuditView, Summary, build_view

_env = Environment(
    loader=PackageLoader("perfaudit.report", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
# Badge colour per verdict word; classes by tone so the page only names verdicts it shows.
TONES = {"improved": "good", "unchanged": "good", "met": "good",
         "regressed": "bad", "mixed": "bad", "missed": "bad"}  # fmt: skip


def tone(word: str) -> str:
    return TONES.get(str(word).split(":")[0].strip(), "warn")


_env.filters["tone"] = tone


def render_html(view: AuditView) -> str:
    return _env.get_template("audit.html.j2").render(v=view, sides=SIDES, side_titles=SIDE_TITLES)


def write_html(summary: Summary, out: Path, charts: dict[str, str] | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    path.write_text(render_html(build_view(summary, charts)))
    return path
