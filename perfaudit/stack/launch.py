"""How a target must be started for a profiler or a measure (a target of its own): the
stack layer's input, so profilers and measures above it can ask for it without the run
layer in between."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Launch:
    """How a target must be started for a profiler (it then gets a target of its own).

    ``python_args``: for the reference stack, interpreter arguments per process (``service``,
    ``worker``) put before ``-m module``; ``start``: for an external target, the command that
    replaces ``target.start``."""

    env: Mapping[str, str] = field(default_factory=dict)
    python_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    start: str | None = None
    # reference stack only: a command before the interpreter per process (valgrind), and
    # how long a process may take to start under it.
    command_prefix: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    startup_timeout_s: float | None = None
    standin_config: Mapping[str, object] | None = None
    secrets_seed: str | None = None
