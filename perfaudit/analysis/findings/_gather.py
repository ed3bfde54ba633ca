"""A run's diagnosis: every scenario's findings in one list, for the renderers and the gates.

The diagnosis stored in an entry by ``perfaudit run`` is used as it is; an entry without one
(a run from before diagnosis existed) is diagnosed from its figures, which rules only read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from perfaudit import exitcodes
from perfaudit.analysis.findings import SEVERITIES, at_least, diagnose
from perfaudit.analysis.findings._base import Severity
from perfaudit.suggest import suggest

Entry = Mapping[str, Any]


@dataclass(frozen=True)
class RunDiagnosis:
    findings: list[dict[str, Any]]  # most severe first; each names its scenario
    not_checked: list[dict[str, Any]]  # {"rule", "reason", "scenario"}
    rules: list[str]  # ids of the rules that ran
    scenarios: list[str]

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for f in self.findings if f["severity"] == s) for s in SEVERITIES}

    def at_least(self, level: str | None) -> list[dict[str, Any]]:
        return list(at_least(self.findings, level)) if level else []  # type: ignore[arg-type]

    def counts_text(self) -> str:
        """ "2 high, 1 medium" (only the severities present), or "no findings"."""
        parts = [f"{n} {s}" for s, n in self.counts().items() if n]
        return ", ".join(parts) if parts else "no findings"

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "findings": self.findings,
            "not_checked": self.not_checked,
            "rules": self.rules,
            "scenarios": self.scenarios,
        }


def scenario_entries(entries: Iterable[Entry]) -> list[Entry]:
    """One entry per scenario, in run order: repeats of a scenario share a diagnosis (the
    first repeat that stored one), and profiled runs are not scenarios of their own."""
    chosen: dict[str, Entry] = {}
    for e in entries:
        if e.get("profiled"):
            continue
        name = str(e.get("name", ""))
        if name not in chosen or ("diagnosis" in e and "diagnosis" not in chosen[name]):
            chosen[name] = e
    return list(chosen.values())


def diagnosis_of(entry: Entry, fresh: bool = False, only: tuple[str, ...] = ()) -> dict[str, Any]:
    """The entry's stored diagnosis (``fresh``: run the rules again), limited to ``only``."""
    stored = entry.get("diagnosis")
    if fresh or not isinstance(stored, Mapping):
        return diagnose(entry, only)
    if not only:
        return dict(stored)
    return {
        "findings": [f for f in stored.get("findings", []) if f["rule"] in only],
        "not_checked": [n for n in stored.get("not_checked", []) if n["rule"] in only],
        "rules": [r for r in stored.get("rules", []) if r in only],
    }


def gather(
    entries: Iterable[Entry], fresh: bool = False, only: tuple[str, ...] = ()
) -> RunDiagnosis:
    findings: list[dict[str, Any]] = []
    not_checked: list[dict[str, Any]] = []
    ran: dict[str, None] = {}
    names: list[str] = []
    for e in scenario_entries(entries):
        name = str(e.get("name", ""))
        names.append(name)
        d = diagnosis_of(e, fresh, only)
        findings += [{**f, "scenario": f.get("scenario") or name} for f in d.get("findings", [])]
        not_checked += [{**n, "scenario": name} for n in d.get("not_checked", [])]
        ran.update(dict.fromkeys(d.get("rules", [])))
    # Most severe first over the whole run, the larger impact first within a severity.
    findings.sort(key=lambda f: (SEVERITIES.index(f["severity"]), -float(f["impact"]["value"])))
    return RunDiagnosis(findings, not_checked, list(ran), names)


def check_level(text: str | None, flag: str = "--fail-on-findings") -> Severity | None:
    """A severity given on the command line; ValueError with a one-line message if unknown."""
    if text is None:
        return None
    if text not in SEVERITIES:
        raise ValueError(
            f"{flag}: unknown severity {text!r} (known: {', '.join(SEVERITIES)})"
            + suggest(text, SEVERITIES)
        )
    return text  # type: ignore[return-value]


def exit_code(code: int, diagnosis: RunDiagnosis, level: str | None) -> int:
    """``code`` raised to FAILED when a finding is at or above ``level``; an invalid run's
    code (3) and an interrupt keep theirs: findings from an untrusted run do not outrank it."""
    if code == exitcodes.OK and diagnosis.at_least(level):
        return exitcodes.FAILED
    return code
