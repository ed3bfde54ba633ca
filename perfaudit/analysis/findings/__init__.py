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


def _fixing_switches(f: Finding, rule: Rule, entry: Mapping[str, Any]) -> tuple[str, ...]:
    """Reference targets: the switches that fix ``f`` and are off in the target.

    A rule whose location is the cause (``Rule.place_decides``: the frames that held the loop,
    the allocation site) names the switch whose change is at that place — the same function,
    else the same class, else the only switch changing that file — preferring the catalog's
    links for the rule: one rule (a blocked loop) has different causes in different variants.
    Otherwise the catalog's links decide, narrowed to the switches that touch this scenario
    most (the catalog lists a switch's scenarios most affected first).
    """
    target = entry.get("target") or {}
    switches_on = target.get("switches")
    if switches_on is None:
        switches_on = (entry.get("scenario") or {}).get("target", {}).get("switches")
    if switches_on is None:
        return ()
    from perfaudit.refservice import switches as sw

    off = [s for s in sw.CATALOG if s.name not in switches_on]
    linked = _linked(off, f)
    if rule.place_decides:
        # The first place that is any switch's code decides (places come most important first).
        primary = next((w for w in f.where if any(_score_one(s.code, w) for s in off)), None)
        scored = {s.name: _score_one(s.code, primary) if primary else 0 for s in off}
        placed = [s.name for s in linked if scored[s.name]]
        if placed:
            top = max(scored[n] for n in placed)
            return tuple(n for n in placed if scored[n] == top)
        best = max(scored.values(), default=0)
        at_best = [n for n, v in scored.items() if v == best and best]
        if at_best and (best >= _SAME_CLASS or len(at_best) == 1):
            return tuple(at_best)
    return _most_touched(linked, str(entry.get("name", "")))


_SAME_FILE, _SAME_CLASS, _SAME_FUNCTION = 1, 2, 3


def _linked(switches: list[Any], f: Finding) -> list[Any]:
    """The switches the catalog links to ``f``: those linked to its rule and topic
    (``rule:topic``) when there are any, else those linked to the rule as a whole."""
    specific = [s for s in switches if f.topic and f"{f.rule}:{f.topic}" in s.rules]
    return specific or [s for s in switches if f.rule in s.rules]


def _qualname(function: str) -> tuple[str, str]:
    """(qualifier, name) of ``Class.method`` / ``create_app.<locals>.handler`` / ``name``."""
    parts = [p for p in function.split(".") if p != "<locals>"]
    return (parts[-2] if len(parts) > 1 else "", parts[-1] if parts else "")


def _score_one(code: tuple[str, ...], w: Location) -> int:
    """How closely a switch's changed code (``path.py:Qual.name``) matches one place."""
    best = 0
    if w.file:
        file = w.file.replace("\\", "/")
        qual, name = _qualname(w.function)
        for c in code:
            path, _, function = c.partition(":")
            if not file or not (file == path or file.endswith("/" + path)):
                continue
            c_qual, c_name = _qualname(function)
            if name == c_name and (not qual or not c_qual or qual == c_qual):
                best = max(best, _SAME_FUNCTION)
            elif qual and qual == c_qual:
                best = max(best, _SAME_CLASS)
            else:
                best = max(best, _SAME_FILE)
    return best


def _most_touched(switches: list[Any], scenario: str) -> tuple[str, ...]:
    """The switches that touch ``scenario`` earliest in their list (all when none does)."""
    ranks = {s.name: s.touches.index(scenario) for s in switches if scenario in s.touches}
    if not ranks:
        return tuple(s.name for s in switches)
    first = min(ranks.values())
    return tuple(n for n, r in ranks.items() if r == first)


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
            found = [_completed(f, rule, entry).to_dict() for f in outcome]
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


def _completed(f: Finding, rule: Rule, entry: Mapping[str, Any]) -> Finding:
    """The scenario and, for reference targets, the fixing switches filled in."""
    extra: dict[str, Any] = {}
    if not f.scenario:
        extra["scenario"] = str(entry.get("name", ""))
    if not f.switches:
        extra["switches"] = _fixing_switches(f, rule, entry)
    return _replace(f, extra) if extra else f


def _replace(f: Finding, changes: dict[str, Any]) -> Finding:
    from dataclasses import replace

    return replace(f, **changes)


def at_least(found: list[Mapping[str, Any]], level: str) -> list[Mapping[str, Any]]:
    """The stored findings at ``level`` or more severe (for ``--fail-on-findings``)."""
    bound = SEVERITIES.index(level)  # type: ignore[arg-type]
    return [f for f in found if SEVERITIES.index(f["severity"]) <= bound]
