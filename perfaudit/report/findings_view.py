"""A finding as every renderer shows it (terminal, Markdown, HTML, JUnit): the same words
everywhere, each string redacted, from the stored finding dict (``Finding.to_dict``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from perfaudit.redact import redact

Stored = Mapping[str, Any]


@dataclass(frozen=True)
class FindingView:
    rule: str
    severity: str
    scenario: str
    title: str
    impact: str
    evidence: list[tuple[str, str]]
    where: list[str]
    fix: str
    confirm: str
    switches: list[str] = field(default_factory=list)


def location_text(loc: Stored) -> str:
    """``file:line function`` (what an editor's go-to-line takes first)."""
    file = str(loc.get("file") or "")
    line = loc.get("line")
    place = f"{file}:{line}" if file and line is not None else file
    func = str(loc.get("function") or "")
    process = f" [{loc['process']}]" if loc.get("process") else ""
    return redact(" ".join(p for p in (place, func) if p) + process)


def impact_text(f: Stored) -> str:
    impact = f.get("impact") or {}
    return f"{float(impact.get('value', 0.0)):.3g} {impact.get('unit', '')}".strip()


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {value_text(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(value_text(v) for v in value)
    return str(value)


def evidence_items(f: Stored) -> list[tuple[str, str]]:
    """The key numbers, ``window`` (where they came from) last."""
    ev = dict(f.get("evidence") or {})
    window = ev.pop("window", None)
    items = [(str(k), redact(value_text(v))) for k, v in ev.items()]
    if window is not None:
        items.append(("window", redact(value_text(window))))
    return items


def evidence_text(f: Stored) -> str:
    return "; ".join(f"{k} {v}" for k, v in evidence_items(f))


def first_where(f: Stored) -> str:
    where = f.get("where") or []
    return location_text(where[0]) if where else ""


def fix_text(f: Stored) -> str:
    """The fix, and for a reference target the switch(es) that make it."""
    switches = list(f.get("switches") or [])
    fix = redact(str(f.get("fix") or ""))
    if switches:
        fix += f" (switch: {', '.join(switches)})"
    return fix


def view(f: Stored) -> FindingView:
    return FindingView(
        rule=redact(str(f.get("rule", ""))),
        severity=str(f.get("severity", "low")),
        scenario=redact(str(f.get("scenario", ""))),
        title=redact(str(f.get("title", ""))),
        impact=impact_text(f),
        evidence=evidence_items(f),
        where=[location_text(w) for w in f.get("where") or []],
        fix=redact(str(f.get("fix") or "")),
        confirm=redact(str(f.get("confirm") or "")),
        switches=[redact(str(s)) for s in f.get("switches") or []],
    )
