"""Diagnosis: findings with evidence, location and fix, one rule per file in this package.

Every module here whose name does not start with ``_`` is a rule and defines ``RULE``
(:class:`Rule`); adding a rule is adding one file. :func:`diagnose` runs them all on one
scenario entry of a results file and returns what they found, most severe first, plus the
rules that could not look and why. It only reads the entry.

A rule that raises, or whose file does not import, is reported as not checked with the
error: one broken rule never costs the run, the report or the other rules.
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
    Outcome,
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
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
            found.append(module.RULE)
        except Exception as exc:  # noqa: BLE001 - a broken rule file is one rule that cannot look
            found.append(_broken(info.name.replace("_", "-"), exc))
    return tuple(found)


def _broken(rule_id: str, exc: Exception) -> Rule:
    def check(entry: Mapping[str, Any]) -> Outcome:
        raise RuntimeError(f"the rule file does not load: {type(exc).__name__}: {exc}")

    return Rule(rule_id, f"(does not load: {exc})", check)


def _fixing_switches(f: Finding, entry: Mapping[str, Any]) -> tuple[str, ...]:
    """Reference targets: the switches that fix ``f`` and are off in the target.

    Where the finding points into the service's code, the place decides: the switch whose
    change is that function, else the one whose change is in that file (with this rule's link
    breaking a tie). The catalog's rule links decide only when the place names none: one rule
    (a blocked loop) has different causes in different variants.
    """
    target = entry.get("target") or {}
    switches_on = target.get("switches")
    if switches_on is None:
        switches_on = (entry.get("scenario") or {}).get("target", {}).get("switches")
    if switches_on is None:
        return ()
    from perfaudit.refservice import switches as sw

    off = [s for s in sw.CATALOG if s.name not in switches_on]
    linked = [s.name for s in off if f.rule in s.rules]
    places = [(w.file.replace("\\", "/"), w.function.rsplit(".", 1)[-1]) for w in f.where if w.file]

    def changes(s: sw.Switch) -> list[tuple[str, str]]:
        return [(c.split(":", 1)[0], c.split(":", 1)[-1].rsplit(".", 1)[-1]) for c in s.code]

    def in_file(s: sw.Switch, exact: bool) -> bool:
        return any(
            file.endswith("/" + path) and (not exact or function == fn)
            for file, function in places
            for path, fn in changes(s)
        )

    exact = [s.name for s in off if in_file(s, exact=True)]
    if exact:
        return tuple(exact)
    same_file = [s.name for s in off if in_file(s, exact=False)]
    if same_file:
        tie = [n for n in same_file if n in linked]
        if tie or len(same_file) == 1:
            return tuple(tie or same_file)
    return tuple(linked)


def _rank(f: Mapping[str, Any]) -> tuple[int, float]:
    return (SEVERITIES.index(f["severity"]), -float(f["impact"]["value"]))


def diagnose(entry: Mapping[str, Any], only: tuple[str, ...] = ()) -> dict[str, Any]:
    """``{"findings": [...], "not_checked": [...], "rules": [ids run]}``, JSON-ready."""
    findings: list[dict[str, Any]] = []
    not_checked: list[NotChecked] = []
    ran: list[str] = []
    for rule in rules():
        if only and rule.id not in only:
            continue
        ran.append(rule.id)
        try:
            outcome = rule.check(entry)
            if isinstance(outcome, NotChecked):
                not_checked.append(outcome)
                continue
            # Completed and serialized inside the guard: a malformed finding fails its rule only.
            found = [_completed(f, entry).to_dict() for f in outcome]
        except Exception as exc:  # noqa: BLE001 - see the module docstring
            error = f"{type(exc).__name__}: {exc}"
            not_checked.append(NotChecked(rule.id, f"the rule failed: {error}"))
            continue
        findings.extend(found)
    findings.sort(key=_rank)
    return {
        "findings": findings,
        "not_checked": [n.to_dict() for n in not_checked],
        "rules": ran,
    }


def _completed(f: Finding, entry: Mapping[str, Any]) -> Finding:
    """The scenario and, for reference targets, the fixing switches filled in."""
    extra: dict[str, Any] = {}
    if not f.scenario:
        extra["scenario"] = str(entry.get("name", ""))
    if not f.switches:
        extra["switches"] = _fixing_switches(f, entry)
    return _replace(f, extra) if extra else f


def _replace(f: Finding, changes: dict[str, Any]) -> Finding:
    from dataclasses import replace

    return replace(f, **changes)


def at_least(found: list[Mapping[str, Any]], level: str) -> list[Mapping[str, Any]]:
    """The stored findings at ``level`` or more severe (for ``--fail-on-findings``)."""
    bound = SEVERITIES.index(level)  # type: ignore[arg-type]
    return [f for f in found if SEVERITIES.index(f["severity"]) <= bound]
