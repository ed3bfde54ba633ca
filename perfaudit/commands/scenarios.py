"""``perfaudit scenarios list|validate`` (wired by perfaudit/cli.py as ``scenarios``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from perfaudit import exitcodes

if TYPE_CHECKING:
    from perfaudit.scenario.errors import Problem
    from perfaudit.scenario.model import Scenario

scenarios_app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Scenario files: list them, validate them.",
)

PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(
        help="scenario files or directories (default: the repo's scenarios/)", show_default=False
    ),
]


def _check(
    paths: list[Path] | None,
) -> tuple[list[tuple[Path, Scenario | None, list[Problem]]], bool]:
    """Each file with its scenario or problems; False when no file was found."""
    # Imported here, not at start-up: the loader brings yaml and the validators.
    from perfaudit.scenario.errors import Problem, ScenarioError
    from perfaudit.scenario.loader import duplicate_names, load_scenario, scenario_files
    from perfaudit.scenario.yamlnodes import display_path

    files = scenario_files(paths or None)
    results: list[tuple[Path, Scenario | None, list[Problem]]] = []
    for f in files:
        try:
            results.append((f, load_scenario(f), []))
        except ScenarioError as exc:
            results.append((f, None, list(exc.problems)))
        except Exception as exc:  # a validator bug must still not end in a traceback
            msg = f"internal error while validating: {type(exc).__name__}: {exc}"
            results.append((f, None, [Problem(display_path(f), None, "", msg)]))
    # A duplicate name makes the later file invalid (the problem names both files).
    dups = {p.file: p for p in duplicate_names(sc for _, sc, _ in results if sc is not None)}
    results = [
        (f, None, [dups[sc.display_path]])
        if sc is not None and sc.display_path in dups
        else (f, sc, probs)
        for f, sc, probs in results
    ]
    return results, bool(files)


def _no_files(paths: list[Path] | None, err: Console) -> typer.Exit:
    from perfaudit.scenario.loader import default_scenario_dir

    where = ", ".join(str(p) for p in paths) if paths else str(default_scenario_dir())
    err.print(f"error: no scenario files (*.yaml) in {where}", highlight=False, markup=False)
    return typer.Exit(exitcodes.USAGE)


@scenarios_app.command("validate")
def validate(paths: PathsArg = None) -> None:
    """Check scenario files; prints 'ok  FILE' or one 'FILE:LINE: KEY: problem' line each.
    Exit code 2 when any file is invalid."""
    from perfaudit.scenario.yamlnodes import display_path

    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    results, found = _check(paths)
    if not found:
        raise _no_files(paths, err)
    bad = 0
    for f, sc, problems in results:
        if sc is not None:
            out.print(f"ok  {display_path(f)}", markup=False)
        else:
            bad += 1
            for p in problems:
                out.print(str(p), markup=False, soft_wrap=True)
    if bad:
        err.print(f"{bad} of {len(results)} scenario files invalid", markup=False)
        raise typer.Exit(exitcodes.USAGE)


@scenarios_app.command("list")
def list_(
    paths: PathsArg = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the scenarios as JSON")] = False,
) -> None:
    """The scenarios: name, kind, target, load, duration, thresholds."""
    from rich.table import Table

    out, err = Console(highlight=False), Console(stderr=True, highlight=False)
    results, found = _check(paths)
    if not found:
        raise _no_files(paths, err)
    problems = [p for _, _, probs in results for p in probs]
    for p in problems:
        err.print(str(p), markup=False, soft_wrap=True)
    scenarios = [sc for _, sc, _ in results if sc is not None]
    if as_json:
        typer.echo(json.dumps([sc.to_dict() for sc in scenarios], indent=2))
    else:
        if not out.is_terminal:  # piped: no 80-column wrapping
            out = Console(highlight=False, width=200)
        table = Table(box=None)
        for col in ("name", "kind", "target", "load", "duration"):
            table.add_column(col, no_wrap=True)
        table.add_column("thresholds")
        for sc in scenarios:
            table.add_row(
                sc.name,
                sc.kind,
                sc.target.label(),
                sc.load.describe() + (f" ×{sc.load.processes}p" if sc.load.processes > 1 else ""),
                f"{sc.warmup_s:g}s+{sc.duration_s:g}s",
                sc.thresholds.describe() or "-",
            )
        out.print(table)
    if problems:
        raise typer.Exit(exitcodes.USAGE)
