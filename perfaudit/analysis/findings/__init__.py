"""Diagnosis: findings with evidence, location and fix, one rule per file in this package.

Every module here whose name does not start with ``_`` is a rule and defines ``RULE``
(:class:`Rule`); adding a rule is adding one file. :func:`diagnose` runs them all on one
scenario entry of a results file and returns what they found, most severe first, plus the
rules that could not look and why. It only reads the entry.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache
from typing import Any

from perfaudit.analysis.findings._base import (
    SEVERITIES,
    Finding,
    Impact,
    Location,
    NotChecked,
    Rule,
    severity,
)

__all__ = [
    "SEVERITIES", "Finding", "Impact", "Location", "NotChecked", "Rule", "diagnose",
    "rules", "severity", "at_least",
]  # fmt: skip


@cache
def rules() -> tuple[Rule, ...]:
    found: list[Rule] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(module.RULE)
    return tuple(found)


def _fixing_switches(rule_id: str, entry: Mapping[str, Any]) -> tuple[str, ...]:
    """Reference targets: the catalog's switches for this rule that are off in the target."""
    target = entry.get("target") or {}
    switches_on = target.get("switches")
    if switches_on is None:
        switches_on = (entry.get("scenario") or {}).get("target", {}).get("switches")
    if switches_on is None:
        return ()
    from perfaudit.refservice import switches as sw

    return tuple(s.name for s in sw.CATALOG if rule_id in s.rules and s.name not in switches_on)


def _rank(f: Finding) -> tuple[int, float]:
    return (SEVERITIES.index(f.severity), -f.impact.value)


def diagnose(entry: Mapping[str, Any], only: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"findings": [...], "not_checked": [...], "rules": [ids run]}``, JSON-ready."""
    findings: list[Finding] = []
    not_checked: list[NotChecked] = []
    ran: list[str] = []
    for rule in rules():
        if only and rule.id not in only:
            continue
        ran.append(rule.id)
        outcome = rule.check(entry)
        if isinstance(outcome, NotChecked):
            not_checked.append(outcome)
            continue
        for f in outcome:
            extra: dict[str, Any] = {}
            if not f.scenario:
                extra["scenario"] = str(entry.get("name", ""))
            if not f.switches:
                extra["switches"] = _fixing_switches(f.rule, entry)
            findings.append(_replace(f, extra) if extra else f)
    findings.sort(key=_rank)
    return {
        "findings": [f.to_dict() for f in findings],
        "not_checked": [n.to_dict() for n in not_checked],
        "rules": ran,
    }


def _replace(f: Finding, changes: dict[str, Any]) -> Finding:
    from dataclasses import replace

    return replace(f, **changes)


def at_least(found: list[Mapping[str, Any]], level: str) -> list[Mapping[str, Any]]:
    """The stored findings at ``level`` or more severe (for ``--fail-on-findings``)."""
    bound = SEVERITIES.index(level)  # type: ignore[arg-type]
    return [f for f in found if SEVERITIES.index(f["severity"]) <= bound]
