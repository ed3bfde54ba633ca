"""What an audit runs: the ablation configurations the catalog implies, and the settings.

Every switch is measured twice, each time against a reference configuration run in the
same invocation and interleaved with it:

- **add-one**: phase3 + the switch, against phase3;
- **drop-one**: optimized - the switch, against optimized.

Each runs the scenarios the catalog says the switch touches (``Switch.touches``); the two
references run every scenario some measured switch touches, plus those the targets table
needs. Both comparisons are oriented "without the switch -> with it", so "improved"
always means the switch helps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from perfaudit.refservice import switches as sw

PHASE3 = "phase3"
OPTIMIZED = "optimized"
ADD_ONE = "add-one"
DROP_ONE = "drop-one"

# The key endpoints whose capacity the audit searches (the seed task's webhook, callback,
# the job and the whole flow), with the open-model rate each search starts from.
CAPACITY_START: dict[str, float] = {
    "webhook-text": 50.0,
    "callback-success": 20.0,
    "telegram-job": 20.0,
    "e2e-flow": 10.0,
}


class AuditPlanError(ValueError):
    pass


@dataclass(frozen=True)
class AuditSettings:
    preset: str = "full"
    repeats: int = 2  # interleaved repeats of every configuration
    warmup_s: float = 1.0
    duration_s: float = 3.0
    # The references also run every scenario of the targets table (quick: only those some
    # switch is measured on).
    all_targets: bool = True
    # Which ablations run: add-one (phase3 + the switch) and drop-one (optimized - it).
    roles: tuple[str, ...] = ("add-one", "drop-one")
    # The ablation's open-model rate is at most this (req/s): it measures what a switch
    # does per request, below saturation (phase3 spends ~150 ms of CPU per webhook with its
    # callback: it saturates two cores near 15/s); the capacity search measures above it.
    ablation_max_rate: float | None = 10.0
    # At most this many of each switch's touched scenarios, in the catalog's order (most
    # affected first); None: all of them. Bounds the full audit to its 45-minute budget.
    max_touched: int | None = 3
    capacity: tuple[str, ...] = tuple(CAPACITY_START)
    capacity_duration_s: float = 3.0
    capacity_max_rate: float = 1500.0
    capacity_factor: float = 2.0  # rate steps: start, x factor, ... up to the max rate
    capacity_refine: int = 1  # bisections between the last passing and first failing step
    # Instructions per request under callgrind, on the first touched http scenario of the
    # switches whose change is CPU work in the service's own code, below what time-based
    # figures resolve; drop-one only (optimized - the switch vs optimized): phase3 spends
    # ~150 ms of CPU per webhook, ~50x that under callgrind (over 10 minutes per run), the
    # optimized variant ~20x less. Empty ``instructions_switches``: every switch.
    instructions: bool = True
    instructions_switches: tuple[str, ...] = ("text-fastpath", "lean-logging", "settings-cache")
    instructions_roles: tuple[str, ...] = ("drop-one",)
    instructions_requests: int = 60
    # Profiles of the optimized variant for the remaining opportunities.
    profile: tuple[str, ...] = ("py-spy", "memray")
    profile_scenarios: tuple[str, ...] = ("webhook-text", "callback-success", "e2e-flow")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuditSettings:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        for k, v in d.items():
            if isinstance(v, list):  # JSON has no tuples
                d[k] = tuple(v)
        return cls(**d)


PRESETS: dict[str, AuditSettings] = {
    "full": AuditSettings(),
    # Under 8 minutes: add-one only, two repeats (the fewest that give a noise floor), one
    # scenario per switch, one capacity search, no callgrind and no profiles.
    "quick": AuditSettings(
        preset="quick",
        roles=("add-one",),
        all_targets=False,
        repeats=2,
        warmup_s=0.5,
        duration_s=1.5,
        max_touched=1,
        capacity=("webhook-text",),
        capacity_duration_s=2.0,
        capacity_max_rate=400.0,
        capacity_refine=0,
        instructions=False,
        profile=(),
        profile_scenarios=(),
    ),  # fmt: skip
}

# Seed targets (PHASE3-035/PHASE4-023 and PHASE3-033, spec §6): the scenario and the
# metric that measure each, and its limit in ms.
TARGETS: tuple[tuple[str, str, str, str, float], ...] = (
    ("Webhook response", "PHASE3-035 / PHASE4-023", "webhook-text", "p95_ms", 200.0),
    ("Job enqueueing", "PHASE3-035 / PHASE4-023", "telegram-job", "p95_ms", 50.0),
    ("Redis operations", "PHASE3-035 / PHASE4-023", "redis-store", "p95_ms", 50.0),
    ("Callback response", "PHASE3-035 / PHASE4-023", "callback-success", "p95_ms", 500.0),
    ("Health check", "PHASE3-035 / PHASE4-023", "health", "p95_ms", 10.0),
    ("Webhook acknowledge (command)", "PHASE3-033", "webhook-command", "p95_ms", 200.0),
    ("Webhook acknowledge (voice)", "PHASE3-033", "webhook-voice", "p95_ms", 200.0),
    ("webhook_info", "PHASE3-033", "admin-webhook-info", "p95_ms", 500.0),
    ("Callback, unknown request", "PHASE3-033", "callback-unknown", "p95_ms", 500.0),
    ("agent-tools", "PHASE3-033", "agent-tools", "p95_ms", 1000.0),
)


@dataclass(frozen=True)
class Config:
    """One configuration of the reference service the audit runs."""

    key: str  # folder name: phase3, optimized, add-<switch>, drop-<switch>
    role: str  # PHASE3 | OPTIMIZED (references) | ADD_ONE | DROP_ONE
    switch: str | None
    scenarios: tuple[str, ...]

    @property
    def variant(self) -> str:
        return PHASE3 if self.role in (PHASE3, ADD_ONE) else OPTIMIZED

    @property
    def with_(self) -> tuple[str, ...]:
        return (self.switch,) if self.role == ADD_ONE and self.switch else ()

    @property
    def without(self) -> tuple[str, ...]:
        return (self.switch,) if self.role == DROP_ONE and self.switch else ()

    @property
    def reference(self) -> str:
        """The configuration this one is compared with."""
        return PHASE3 if self.role == ADD_ONE else OPTIMIZED

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "role": self.role, "switch": self.switch,
                "scenarios": list(self.scenarios)}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        return cls(d["key"], d["role"], d.get("switch"), tuple(d["scenarios"]))


@dataclass(frozen=True)
class AuditPlan:
    settings: AuditSettings
    switches: tuple[str, ...]
    configs: tuple[Config, ...]
    scenarios: tuple[str, ...]  # every scenario some configuration runs
    instructions: dict[str, str] = field(default_factory=dict)  # switch -> scenario
    capacity: tuple[str, ...] = ()
    profile_scenarios: tuple[str, ...] = ()

    def config(self, key: str) -> Config:
        return next(c for c in self.configs if c.key == key)

    def ablation_of(self, switch: str) -> list[Config]:
        return [c for c in self.configs if c.switch == switch]

    def runs_per_repeat(self) -> int:
        return sum(len(c.scenarios) for c in self.configs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings.to_dict(),
            "switches": list(self.switches),
            "configs": [c.to_dict() for c in self.configs],
            "scenarios": list(self.scenarios),
            "instructions": dict(self.instructions),
            "capacity": list(self.capacity),
            "profile_scenarios": list(self.profile_scenarios),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuditPlan:
        return cls(
            settings=AuditSettings.from_dict(d["settings"]),
            switches=tuple(d["switches"]),
            configs=tuple(Config.from_dict(c) for c in d["configs"]),
            scenarios=tuple(d["scenarios"]),
            instructions=dict(d.get("instructions") or {}),
            capacity=tuple(d.get("capacity") or ()),
            profile_scenarios=tuple(d.get("profile_scenarios") or ()),
        )


def _pick(
    names: Iterable[str], wanted: Sequence[str] | None, what: str, known: Sequence[str]
) -> list[str]:
    if not wanted:
        return list(names)
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise AuditPlanError(f"unknown {what} {unknown[0]!r}; known: {', '.join(known)}")
    return [n for n in names if n in wanted]


def build_plan(
    available: dict[str, str],
    settings: AuditSettings,
    switches: Sequence[str] | None = None,
    scenarios: Sequence[str] | None = None,
    catalog: Sequence[sw.Switch] = sw.CATALOG,
) -> AuditPlan:
    """The plan for the scenarios ``available`` (name -> kind) and the chosen ``switches``
    (default: the whole catalog) and ``scenarios`` (default: every touched one)."""
    names = [s.name for s in catalog]
    chosen = _pick(names, switches, "switch", names)
    selected = _pick(available, scenarios, "scenario", list(available))
    by_name = {s.name: s for s in catalog}
    configs: list[Config] = []
    measured: dict[str, tuple[str, ...]] = {}
    for name in chosen:
        touched = [t for t in by_name[name].touches if t in selected]
        if settings.max_touched is not None:
            touched = touched[: settings.max_touched]
        if touched:
            measured[name] = tuple(touched)
    if not measured:
        raise AuditPlanError(
            "no switch touches the chosen scenarios: nothing to measure "
            f"(switches: {', '.join(chosen)}; scenarios: {', '.join(selected)})"
        )
    union = [s for s in available if any(s in t for t in measured.values())]
    if not scenarios and settings.all_targets:  # the targets table needs these too
        union += [t[2] for t in TARGETS if t[2] in available and t[2] not in union]
    configs.append(Config(PHASE3, PHASE3, None, tuple(union)))
    configs.append(Config(OPTIMIZED, OPTIMIZED, None, tuple(union)))
    for name, touched in measured.items():
        if ADD_ONE in settings.roles:
            configs.append(Config(f"add-{name}", ADD_ONE, name, touched))
        if DROP_ONE in settings.roles:
            configs.append(Config(f"drop-{name}", DROP_ONE, name, touched))
    instructions = {}
    if settings.instructions:
        for name, touched in measured.items():
            if settings.instructions_switches and name not in settings.instructions_switches:
                continue
            http = [t for t in touched if available.get(t) == "http"]
            if http:
                instructions[name] = http[0]
    capacity = tuple(
        s for s in settings.capacity if s in available and (not scenarios or s in selected)
    )
    profiled = tuple(
        s for s in settings.profile_scenarios if s in available and (not scenarios or s in selected)
    )
    return AuditPlan(
        settings=settings,
        switches=tuple(measured),
        configs=tuple(configs),
        scenarios=tuple(union),
        instructions=instructions,
        capacity=capacity,
        profile_scenarios=profiled if settings.profile else (),
    )


def with_overrides(settings: AuditSettings, **changes: Any) -> AuditSettings:
    """``settings`` with the given fields replaced (None: kept)."""
    return replace(settings, **{k: v for k, v in changes.items() if v is not None})
