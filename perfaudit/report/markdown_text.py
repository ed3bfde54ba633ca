"""Escaping text for Markdown tables and lines, shared by every Markdown renderer."""

from __future__ import annotations

_MD_SPECIAL = str.maketrans({"|": "\\|", "<": "&lt;", ">": "&gt;", "&": "&amp;", "`": "'"})


def esc(text: object) -> str:
    """Text for a Markdown table cell or line: no HTML, no broken tables."""
    return str(text).translate(_MD_SPECIAL).replace("\n", " ")
