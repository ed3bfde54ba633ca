"""Finding and loading scenario files."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from perfaudit.scenario.errors import Problem, ScenarioError
from perfaudit.scenario.model import Scenario
from perfaudit.scenario.validate import build_scenario
from perfaudit.scenario.yamlnodes import compose_file, display_path

SUFFIXES = (".yaml", ".yml")
PathLike = str | os.PathLike[str]


def default_scenario_dir(start: Path | None = None) -> Path:
    """The repository's ``scenarios/``: the nearest ``scenarios/`` directory next to a
    ``pyproject.toml``, searching upward from ``start`` (the cwd); else ``./scenarios``."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "scenarios").is_dir() and (d / "pyproject.toml").is_file():
            return d / "scenarios"
    return Path("scenarios")


def scenario_files(paths: PathLike | Iterable[PathLike] | None = None) -> list[Path]:
    """Files named by ``paths``; a directory gives its top-level ``*.yaml``/``*.yml`` files
    (not subdirectories, so ``scenarios/examples/`` stays out of the defaults). A path
    that does not exist is returned as is and fails when loaded."""
    if paths is None:
        items = [default_scenario_dir()]
    elif isinstance(paths, str | os.PathLike):  # one path, not an iterable of characters
        items = [Path(paths)]
    else:
        items = [Path(p) for p in paths]
    out: list[Path] = []
    for p in items:
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix in SUFFIXES and f.is_file())
        else:
            out.append(p)
    return out


def load_scenario(path: PathLike) -> Scenario:
    """Load and validate one file; raises ScenarioError listing all of its problems."""
    p = Path(path)
    shown = display_path(p)
    return build_scenario(compose_file(p, shown), p.resolve(), shown)


def duplicate_names(scenarios: Iterable[Scenario]) -> list[Problem]:
    """One problem per scenario whose name an earlier one already has (naming both files)."""
    first: dict[str, Scenario] = {}
    problems = []
    for sc in scenarios:
        if sc.name in first:
            other = first[sc.name]
            problems.append(
                Problem(
                    sc.display_path,
                    sc.line_of("name"),
                    "name",
                    f"duplicate scenario name {sc.name!r} (also in {other.display_path}:{other.line_of('name')})",
                )
            )
        else:
            first[sc.name] = sc
    return problems


def load_scenarios(paths: PathLike | Iterable[PathLike] | None = None) -> list[Scenario]:
    """Load every file under ``paths`` (files or directories; default: the default scenario
    directory). Raises one ScenarioError with the problems of all files, in file order."""
    problems: list[Problem] = []
    scenarios: list[Scenario] = []
    files = scenario_files(paths)
    for f in files:
        try:
            scenarios.append(load_scenario(f))
        except ScenarioError as exc:
            problems += exc.problems
    problems += duplicate_names(scenarios)
    if problems:
        raise ScenarioError(problems)
    return scenarios


class UnknownScenarioError(ValueError):
    """``--scenario NAME`` names no loaded scenario."""


def select(scenarios: list[Scenario], only: Iterable[str] | None) -> list[Scenario]:
    """The scenarios named in ``only`` (all when it is empty), in file order."""
    names = list(only or ())
    if not names:
        return scenarios
    known = {s.name for s in scenarios}
    missing = [n for n in names if n not in known]
    if missing:
        raise UnknownScenarioError(
            f"--scenario {', '.join(missing)}: no such scenario (known: {', '.join(sorted(known))})"
        )
    return [s for s in scenarios if s.name in names]
