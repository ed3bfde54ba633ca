"""Repeated runs, interleaved across sides: A B B A A B ... in one invocation.

Each repeat of each side is one :func:`run_scenarios` call, so it starts its own targets:
the restart-to-restart noise (20-40 % on sub-millisecond latencies on a shared 2-vCPU VM)
is sampled on both sides instead of being mistaken for a change. The order alternates
(A B, then B A) so that a drift over the invocation favours neither side.

Layout under ``<out>/<run-id>/``: ``results.json`` (the candidate, every repeat, each
entry tagged ``repeat``), ``baseline/results.json`` (a re-measured baseline), and
``repeats/<side>-<n>/`` (each repeat's own run folder: results and target logs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from perfaudit.results import (
    RESULTS_FILE,
    RunRecord,
    environment,
    new_run_id,
    utc_now,
    write_atomic,
)
from perfaudit.run.runner import RunEvents, RunOptions, run_scenarios
from perfaudit.scenario import Scenario

CANDIDATE = "candidate"
BASELINE = "baseline"


# Runs one repeat of a side: (scenarios, options, events, command, record) -> record.
Runner = Callable[[list[Scenario], RunOptions, RunEvents, list[str], RunRecord], RunRecord]


@dataclass(frozen=True)
class Side:
    key: str  # CANDIDATE | BASELINE
    scenarios: list[Scenario]
    options: RunOptions
    runner: Runner = run_scenarios  # or another revision's perfaudit (perfaudit.run.gitrev)
    # Scenarios whose repeat 1 is already done (a canary reused as the first baseline
    # repeat, see perfaudit.gate): they start at repeat 2.
    done: frozenset[str] = frozenset()
    folder: str | None = None  # repeats/<folder>-<n>/ (default: the key)

    def at(self, repeat: int) -> list[Scenario]:
        """The scenarios this side runs in repeat ``repeat``."""
        return [s for s in self.scenarios if repeat > 1 or s.name not in self.done]


def record_path(out_dir: Path, run_id: str, side: str) -> Path:
    base = out_dir / run_id
    return base / RESULTS_FILE if side == CANDIDATE else base / side / RESULTS_FILE


class _Labelled:
    """RunEvents for one repeat of one side: numbered across the whole invocation, and
    the scenario shown with its side and repeat."""

    def __init__(self, inner: RunEvents, tag: str, offset: int, total: int) -> None:
        self.inner, self.tag, self.offset, self.total = inner, tag, offset, total

    def scenario_started(self, scenario: Scenario, index: int, total: int) -> None:
        shown = replace(scenario, name=f"{scenario.name} {self.tag}")
        self.inner.scenario_started(shown, self.offset + index, self.total)

    def progress(self, item: Any) -> None:
        self.inner.progress(item)

    def scenario_finished(self, entry: dict[str, Any]) -> None:
        self.inner.scenario_finished(entry)

    def note(self, message: str) -> None:
        self.inner.note(f"{self.tag}: {message}")


def run_repeats(
    sides: list[Side],
    repeats: int,
    out_dir: Path,
    events: RunEvents,
    command: list[str],
    run_id: str | None = None,
    prior: dict[str, RunRecord] | None = None,
    label: str = "",
) -> dict[str, RunRecord]:
    """Run every side ``repeats`` times, interleaved; returns one record per side key with
    every repeat's entries (``entry["repeat"]``: 1-based). Records are written after each
    scenario, so an interrupted invocation keeps what finished.

    ``prior``: records of this invocation to go on with (their entries are kept and
    written again); ``label`` goes before each repeat's tag in the display ("rerun")."""
    run_id = run_id or new_run_id()
    env = environment()
    records = dict(prior or {})
    for s in sides:
        if s.key not in records:
            records[s.key] = RunRecord(
                run_id=run_id if s.key == CANDIDATE else f"{run_id}-{s.key}",
                created_at=utc_now(), command=command, environment=env,
            )  # fmt: skip
    total = sum(len(s.at(i)) for i in range(1, repeats + 1) for s in sides)
    done = 0
    short = {CANDIDATE: "B", BASELINE: "A"}
    keys = {s.key for s in sides}
    status = "failed"
    try:
        for i in range(1, repeats + 1):
            order = sides if i % 2 else list(reversed(sides))
            for side in order:
                scenarios = side.at(i)
                if not scenarios:
                    continue
                tag = f"[{short.get(side.key, side.key)}{i}]" if len(keys) > 1 else f"[{i}]"
                tag = f"{label} {tag}" if label else tag
                sub = RunRecord(run_id=f"{side.folder or side.key}-{i}", created_at=utc_now(),
                                command=command, environment=env)  # fmt: skip
                options = replace(side.options, out_dir=out_dir / run_id / "repeats")
                labelled = _Labelled(events, tag, done, total)
                try:
                    side.runner(scenarios, options, labelled, command, sub)
                finally:
                    record = records[side.key]
                    for e in sub.scenarios:
                        e["repeat"] = i
                        record.scenarios.append(e)
                    write_atomic(record_path(out_dir, run_id, side.key), record)
                done += len(scenarios)
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        for key, record in records.items():
            record.status = status
            record.finished_at = utc_now()
            write_atomic(record_path(out_dir, run_id, key), record)
    return records
