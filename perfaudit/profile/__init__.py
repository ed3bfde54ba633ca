"""Profiling under load: py-spy, pyinstrument and memray over a scenario's steady window.

    specs = parse_cli(["py-spy:idle,memray"])
    problems = check(specs)                     # what is missing, and how to fix it
    capture = prepare(spec, ctx)                # one profiled run; see base.Capture

Each profiler is one module behind :class:`~perfaudit.profile.base.Capture`; hotspots,
flame graphs and memray's stats are pure functions over what they capture.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType

from perfaudit.profile.base import Capture, CaptureContext, Launch, Problem
from perfaudit.profile.spec import (
    PROFILERS,
    ProfileSpec,
    ProfileSpecError,
    make_spec,
    parse_cli,
    union,
)


def _module(name: str) -> ModuleType:
    from perfaudit.profile import memray, pyinstrument, pyspy

    return {"py-spy": pyspy, "pyinstrument": pyinstrument, "memray": memray}[name]


def check(specs: Sequence[ProfileSpec]) -> dict[ProfileSpec, list[Problem]]:
    """Preflight: the problems per spec (an empty list: ready). Named ``check``, not
    ``preflight``, so as not to shadow the :mod:`perfaudit.profile.preflight` module."""
    return {spec: list(_module(spec.name).preflight(spec)) for spec in specs}


def prepare(spec: ProfileSpec, ctx: CaptureContext) -> Capture:
    make: Callable[[ProfileSpec, CaptureContext], Capture] = _module(spec.name).prepare
    return make(spec, ctx)


__all__ = [
    "PROFILERS",
    "Capture",
    "CaptureContext",
    "Launch",
    "Problem",
    "ProfileSpec",
    "ProfileSpecError",
    "make_spec",
    "check",
    "parse_cli",
    "prepare",
    "union",
]
