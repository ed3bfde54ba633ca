"""Scenario problems and the error that carries them.

One :class:`Problem` is one thing wrong at one place (file, line, key path). A file's
problems are collected and raised together as one :class:`ScenarioError`, so a user fixes
a file in one pass instead of one error per run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str  # as shown to the user (relative to the cwd when below it)
    line: int | None  # 1-based; None when the problem has no place (file unreadable)
    key: str  # dotted key path, e.g. "load.stages[1].duration"; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ScenarioError(Exception):
    """One or more scenario problems; ``str()`` lists them one per line.

    ``file``, ``line``, ``key`` and ``message`` describe the first (most important) problem;
    ``problems`` holds all of them.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("ScenarioError needs at least one problem")
        self.problems: tuple[Problem, ...] = tuple(problems)
        first = self.problems[0]
        self.file = first.file
        self.line = first.line
        self.key = first.key
        self.message = first.message
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)

    @classmethod
    def single(cls, file: str, line: int | None, key: str, message: str) -> ScenarioError:
        return cls([Problem(file, line, key, message)])
