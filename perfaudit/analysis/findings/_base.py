"""What a finding is, and what a rule is: the contract every rule file follows.

A rule is a pure function of one scenario's results entry (``results.json`` → ``scenarios[i]``):
it reads the figures the run stored — summary, server metrics, derived per-request costs,
profiles — and returns the findings it sees, or a :class:`NotChecked` saying which measurement
it needed and how to get it. It never measures, never reads the run folder, never prints.

Severity is ranked by estimated impact (see :func:`severity`), so a table of findings sorted by
it puts what costs the most first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Severity = Literal["high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low")  # most severe first
# What an impact is measured in; each unit has its own severity bounds (high, medium).
Unit = Literal[
    "ms/request", "% cpu", "MB/1k requests", "round trips/request", "connections/request"
]
# Why these bounds (docs/diagnosis.md): "high" is what a user would notice in p50 or in the
# bill (≥ 5 ms per request, a fifth of a core, a megabyte per thousand requests, …); "medium"
# is what is worth a ticket; anything smaller that a rule still reports is "low".
SEVERITY_BOUNDS: dict[str, tuple[float, float]] = {
    "ms/request": (5.0, 1.0),
    "% cpu": (20.0, 5.0),
    "MB/1k requests": (1.0, 0.1),
    "round trips/request": (5.0, 2.0),
    "connections/request": (0.5, 0.1),
}


def severity(value: float, unit: str) -> Severity:
    high, medium = SEVERITY_BOUNDS[unit]
    if value >= high:
        return "high"
    if value >= medium:
        return "medium"
    return "low"


@dataclass(frozen=True)
class Location:
    """Where it is: ``file:line`` and function, from the stacks (``process``: service, worker)."""

    function: str
    file: str = ""
    line: int | None = None
    process: str | None = None

    def text(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{self.function} ({where})" if where else self.function


@dataclass(frozen=True)
class Impact:
    value: float
    unit: str  # one of Unit

    def text(self) -> str:
        return f"{self.value:.3g} {self.unit}"


@dataclass(frozen=True)
class Finding:
    rule: str  # the rule's id, e.g. "loop-blocked"
    title: str  # one line, specific: "GET /slow blocks the event loop 21 ms per request"
    impact: Impact
    evidence: Mapping[str, Any]  # the numbers, with "window" naming where they came from
    where: tuple[Location, ...]
    fix: str  # a concrete change
    confirm: str  # how to confirm the fix: the scenario and the metric to rerun
    scenario: str = ""
    # Reference targets: the optimization switches that fix it and are off in this target.
    switches: tuple[str, ...] = ()
    # Which kind of the rule's pattern (connection-churn: "redis" or "http"; a Redis pair
    # "get-del"): a switch linked to "rule:topic" fixes that kind only.
    topic: str = ""
    severity: Severity = field(default="low")

    @classmethod
    def make(cls, **kwargs: Any) -> Finding:
        """A finding whose severity follows from its impact."""
        impact: Impact = kwargs["impact"]
        return cls(**kwargs, severity=severity(impact.value, impact.unit))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["where"] = [asdict(w) for w in self.where]
        d["switches"] = list(self.switches)
        d["evidence"] = dict(self.evidence)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        return cls(
            rule=str(d["rule"]),
            title=str(d["title"]),
            impact=Impact(float(d["impact"]["value"]), str(d["impact"]["unit"])),
            evidence=dict(d.get("evidence") or {}),
            where=tuple(Location(**w) for w in d.get("where") or ()),
            fix=str(d.get("fix", "")),
            confirm=str(d.get("confirm", "")),
            scenario=str(d.get("scenario", "")),
            switches=tuple(d.get("switches") or ()),
            topic=str(d.get("topic") or ""),
            severity=d.get("severity", "low"),
        )


@dataclass(frozen=True)
class NotChecked:
    """A rule that could not look: which measurement it needs and how to get it."""

    rule: str
    reason: str  # "needs py-spy:idle on the service" / "no Redis metrics (set target.redis_url)"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Outcome = list[Finding] | NotChecked
Check = Callable[[Mapping[str, Any]], Outcome]


@dataclass(frozen=True)
class Rule:
    id: str
    title: str  # what it looks for, for `perfaudit diagnose --rules` and the docs
    check: Check  # entry -> findings (possibly none) or NotChecked
    # True when a finding's location is its cause (the frames that held the loop, the site
    # that allocated): on a reference target the switch changing that code is named. False
    # for rules whose location is only a hint (counters: the endpoint, a caller of redis).
    place_decides: bool = False
