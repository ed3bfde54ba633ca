"""What profiling needs of the layers above it, as protocols: the scenario it profiles, that
scenario's target, and the started target (the run layer's ``TargetSession``) it attaches to.

The run layer hands these in (``perfaudit.run.runner`` passes its ``TargetSession`` objects and
its ``start_target``); this package never imports ``perfaudit.run`` or ``perfaudit.scenario``,
so it stays below both. Each protocol lists exactly what this package reads, no more.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol


class TargetLike(Protocol):
    """A scenario's target (``perfaudit.scenario.model.Target``), as the profilers read it."""

    @property
    def is_reference(self) -> bool: ...
    @property
    def start(self) -> str | None: ...  # external only: the command that starts the service
    @property
    def profile_process(self) -> str | int | None: ...


class ScenarioLike(Protocol):
    """A scenario (``perfaudit.scenario.Scenario``, a dataclass: profiled runs
    ``dataclasses.replace`` its ``warmup_s``), as :mod:`perfaudit.profile.runs` reads it."""

    @property
    def name(self) -> str: ...
    @property
    def target(self) -> TargetLike: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def warmup_s(self) -> float: ...


class TargetSessionLike(Protocol):
    """A started target (``perfaudit.run.targets.TargetSession``): what a capture attaches to."""

    @property
    def target(self) -> TargetLike: ...
    @property
    def pids(self) -> Mapping[str, int]: ...
    @property
    def base_url(self) -> str: ...
    @property
    def redis_url(self) -> str | None: ...
    def close(self) -> None: ...


# start_target(target, run_dir, redis_url=..., launch=...) -> a started target of its own for
# one profiled run (``perfaudit.run.targets.start_target``); passed in, like ``run_one``.
StartTarget = Callable[..., TargetSessionLike]
