"""The one interface every profiler implements, and the pieces they share.

A profiler module has ``preflight(spec) -> list[Problem]`` (what it needs on this machine) and
``prepare(spec, ctx) -> Capture`` (one profiled run). A :class:`Capture` says how the target must
be launched (``launch``: None means the plain target will do), starts at the steady window's
start, stops at its end (both called from the runner's window callbacks, so they must not
raise), and ``collect()`` turns what it captured into artifacts and figures once the run (and,
for ``memray run``, the target) is over.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from perfaudit.profile.spec import ProfileSpec
from perfaudit.stack.launch import Launch

if TYPE_CHECKING:
    from perfaudit.profile.session import TargetLike, TargetSessionLike


@dataclass(frozen=True)
class Problem:
    """Something a profiler needs and does not have, and how to fix it. ``blocking``: the
    profiler cannot work (it is skipped); otherwise it is a warning and it still runs."""

    profiler: str
    message: str
    fix: str
    blocking: bool = True

    def __str__(self) -> str:
        return f"{self.profiler}: {self.message} — {self.fix}"


@dataclass(frozen=True)
class CaptureContext:
    scenario: str
    target: TargetLike
    out_dir: Path  # reports/<run-id>/profiles/<scenario>/
    run_dir: Path  # reports/<run-id>/: artifact paths are stored relative to it
    window_s: float  # the scenario's steady window (its duration)
    warmup_s: float = 0.0


class Capture(Protocol):
    spec: ProfileSpec
    launch: Launch | None
    errors: list[str]  # already set before start: the capture cannot work with this target
    lead_s: float  # start() is called this long before the window starts (a slow attach)
    min_warmup_s: float  # the profiled run's warm-up is made at least this long

    def start(self, session: TargetSessionLike) -> None: ...
    def stop(self) -> None: ...
    def collect(self) -> dict[str, Any]: ...
    def abort(self) -> None: ...


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Clock:
    """When a capture actually started and stopped, relative to the window start."""

    def __init__(self) -> None:
        self.window_start: float | None = None
        self.started: float | None = None
        self.stopped: float | None = None
        self.started_at: str | None = None

    def window(self, lead_s: float = 0.0) -> None:
        """The window starts now, or ``lead_s`` from now."""
        self.window_start = time.monotonic() + lead_s
        self.started_at = datetime.fromtimestamp(time.time() + lead_s, UTC).isoformat(
            timespec="milliseconds"
        )

    def mark_started(self) -> None:
        self.started = time.monotonic()

    def mark_stopped(self) -> None:
        self.stopped = time.monotonic()

    def to_dict(self, covers_startup: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"window_started_at": self.started_at, "covers_startup": covers_startup}
        if self.window_start is not None and self.started is not None:
            d["capture_started_after_s"] = round(self.started - self.window_start, 3)
        if self.started is not None and self.stopped is not None:
            d["captured_s"] = round(self.stopped - self.started, 3)
        return d


def result(
    spec: ProfileSpec,
    status: str,
    ctx: CaptureContext | None = None,
    artifacts: list[Path] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The per-profiler record stored under ``entry["profiles"][name]``."""
    paths = []
    for p in artifacts or []:
        if p.exists() and p.stat().st_size > 0:
            paths.append(str(p.relative_to(ctx.run_dir)) if ctx else str(p))
    out: dict[str, Any] = {
        "profiler": spec.name,
        "status": status,  # ok | failed | skipped
        "options": spec.all_options(),
        "artifacts": paths,
    }
    out.update(extra)
    out.setdefault("notes", [])
    return out


def busiest(processes: Mapping[str, dict[str, Any]], weight: str) -> dict[str, Any]:
    """The figures of the process with the most ``weight`` (samples, bytes), named, for
    readers that show one process per profiler; every process stays under ``processes``."""

    def w(item: tuple[str, dict[str, Any]]) -> float:
        value = item[1].get(weight)
        if isinstance(value, dict):  # hotspots: their total weight
            value = value.get("total")
        return float(value or 0)

    candidates = [kv for kv in processes.items() if kv[1].get(weight) is not None]
    if not candidates:
        return {}
    name, proc = max(candidates, key=w)
    return {"process": name, "pid": proc.get("pid"), weight: proc[weight]}


def skipped(spec: ProfileSpec, problems: list[Problem]) -> dict[str, Any]:
    return result(
        spec,
        "skipped",
        reason="; ".join(str(p) for p in problems),
        problems=[{"message": p.message, "fix": p.fix} for p in problems],
    )
