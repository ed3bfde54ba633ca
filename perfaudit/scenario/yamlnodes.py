"""YAML read as a node tree (``yaml.compose``) so every value keeps its line, plus the
typed readers the validator is built from.

Each reader takes a node and a key path, returns the converted value or ``None`` and
records a :class:`Problem` on the :class:`Checker` when the value is wrong, so one pass
over a file reports every problem in it.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from perfaudit.scenario.errors import Problem, ScenarioError
from perfaudit.suggest import suggest

_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


def display_path(path: Path) -> str:
    """The path relative to the cwd when below it (shorter messages), else as given."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def compose_file(path: Path, shown: str) -> Node:
    """The file's single YAML document as nodes; unreadable, empty or malformed files raise
    a one-line ScenarioError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError.single(shown, None, "", "no such file") from None
    except UnicodeDecodeError as exc:
        raise ScenarioError.single(shown, None, "", f"not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise ScenarioError.single(shown, None, "", exc.strerror or str(exc)) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or exc.context or "malformed YAML"
        raise ScenarioError.single(shown, line, "", f"invalid YAML: {what}") from None
    except yaml.YAMLError as exc:  # e.g. a reader error (control characters)
        msg = " ".join(str(exc).split())
        raise ScenarioError.single(shown, None, "", f"invalid YAML: {msg}") from None
    if node is None:
        raise ScenarioError.single(shown, 1, "", "file is empty (expected a scenario mapping)")
    return node


def line(node: Node) -> int:
    return node.start_mark.line + 1


def kind_name(node: Node) -> str:
    """What a node is, for 'expected X, got Y' messages."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list" if node.value else "an empty list"
    return {
        _NULL: "null",
        _BOOL: f"{node.value}",
        _INT: f"{node.value}",
        _FLOAT: f"{node.value}",
        _STR: repr(node.value),
    }.get(node.tag, repr(node.value))


class Checker:
    """Collects the problems of one file."""

    def __init__(self, shown: str) -> None:
        self.file = shown
        self.problems: list[Problem] = []
        self.lines: dict[str, int] = {}
        self._constructor = yaml.constructor.SafeConstructor()

    def problem(self, at: Node | int | None, key: str, message: str) -> None:
        ln = line(at) if isinstance(at, Node) else at
        self.problems.append(Problem(self.file, ln, key, message))

    def raise_if_any(self) -> None:
        if self.problems:
            # Stable sort: line order, file-level problems (no line) first.
            ordered = sorted(self.problems, key=lambda p: -1 if p.line is None else p.line)
            raise ScenarioError(ordered)

    # -- structure ---------------------------------------------------------------------

    def mapping(
        self, node: Node, key: str, known: Iterable[str]
    ) -> dict[str, tuple[ScalarNode, Node]] | None:
        """The mapping's entries by name; reports non-mappings, non-string and duplicate
        keys, and unknown keys (with a suggestion)."""
        if not isinstance(node, MappingNode):
            self.problem(node, key, f"must be a mapping, got {kind_name(node)}")
            return None
        if not self._flatten(node, key):
            return None
        known = list(known)
        out: dict[str, tuple[ScalarNode, Node]] = {}
        for k, v in node.value:
            if not isinstance(k, ScalarNode) or k.tag != _STR:
                self.problem(k, key, f"keys must be strings, got {kind_name(k)}")
                continue
            name = k.value
            path = f"{key}.{name}" if key else name
            if name not in known:
                self.problem(k, path, "unknown key" + (suggest(name, known) or _known(known)))
                continue
            if name in out:
                self.problem(k, path, f"duplicate key (first at line {line(out[name][0])})")
                continue
            out[name] = (k, v)
            self.lines[path] = line(k)
        return out

    def plain(self, node: Node, key: str) -> Any:
        """A whole subtree as plain Python values (for JSON bodies and stand-in patches)."""
        if isinstance(node, MappingNode):
            if not self._flatten(node, key):
                return None
            out: dict[str, Any] = {}
            for k, v in node.value:
                if not isinstance(k, ScalarNode) or k.tag != _STR:
                    self.problem(k, key, f"keys must be strings, got {kind_name(k)}")
                    continue
                path = f"{key}.{k.value}"
                self.lines.setdefault(path, line(k))
                out[k.value] = self.plain(v, path)
            return out
        if isinstance(node, SequenceNode):
            return [self.plain(v, f"{key}[{i}]") for i, v in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        if node.tag == _TIMESTAMP:  # keep dates as written; JSON has no date type
            return node.value
        if node.tag not in (_STR, _NULL, _BOOL, _INT, _FLOAT):
            self.problem(node, key, f"unsupported YAML type {node.tag}")
            return None
        value = self._constructor.construct_object(node)
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(node, key, f"must be a finite number, got {node.value}")
            return None
        return value

    def _flatten(self, node: MappingNode, key: str) -> bool:
        """Resolve YAML merge keys (``<<: *base``) in place."""
        try:
            self._constructor.flatten_mapping(node)
        except yaml.MarkedYAMLError as exc:
            self.problem(
                exc.problem_mark.line + 1 if exc.problem_mark else node, key, str(exc.problem)
            )
            return False
        return True

    # -- scalars -----------------------------------------------------------------------

    def string(
        self, node: Node, key: str, *, pattern: str | None = None, what: str = ""
    ) -> str | None:
        if not (isinstance(node, ScalarNode) and node.tag == _STR):
            self.problem(node, key, f"must be a string, got {kind_name(node)}")
            return None
        if pattern and not re.fullmatch(pattern, node.value):
            self.problem(node, key, f"must be {what or 'matching ' + pattern}, got {node.value!r}")
            return None
        return str(node.value)

    def choice(self, node: Node, key: str, choices: Iterable[str]) -> str | None:
        choices = list(choices)
        value = self.string(node, key)
        if value is None:
            return None
        if value not in choices:
            self.problem(
                node,
                key,
                f"must be one of {', '.join(choices)}, got {value!r}" + suggest(value, choices),
            )
            return None
        return value

    def boolean(self, node: Node, key: str) -> bool | None:
        if not (isinstance(node, ScalarNode) and node.tag == _BOOL):
            self.problem(node, key, f"must be true or false, got {kind_name(node)}")
            return None
        return bool(self._constructor.construct_object(node))

    def number(
        self,
        node: Node,
        key: str,
        *,
        gt: float | None = None,
        ge: float | None = None,
        le: float | None = None,
        integer: bool = False,
    ) -> Any:
        """An int (``integer``) or a finite number within the bounds."""
        want = "an integer" if integer else "a number"
        bounds = " and ".join(
            b
            for b in (
                f"> {_num(gt)}" if gt is not None else "",
                f">= {_num(ge)}" if ge is not None else "",
                f"<= {_num(le)}" if le is not None else "",
            )
            if b
        )
        expect = f"must be {want}" + (f" {bounds}" if bounds else "")
        ok_tags = (_INT,) if integer else (_INT, _FLOAT)
        if not (isinstance(node, ScalarNode) and node.tag in ok_tags):
            self.problem(node, key, f"{expect}, got {kind_name(node)}")
            return None
        value = self._constructor.construct_object(node)
        if (
            not math.isfinite(value)
            or (gt is not None and not value > gt)
            or (ge is not None and not value >= ge)
            or (le is not None and not value <= le)
        ):
            self.problem(node, key, f"{expect}, got {node.value}")
            return None
        return value

    def duration(self, node: Node, key: str, *, positive: bool = False) -> float | None:
        """``"500ms"``, ``"2s"``, ``"1.5s"``, ``"1m"``, ``"1h"`` or a bare number of seconds."""
        expect = "a duration > 0" if positive else "a duration >= 0"
        expect += " like 500ms, 2s, 1.5s, 1m (or a number of seconds)"
        value: float | None = None
        if isinstance(node, ScalarNode) and node.tag in (_INT, _FLOAT):
            value = float(self._constructor.construct_object(node))
        elif isinstance(node, ScalarNode) and node.tag == _STR:
            value = parse_duration(node.value)
        if value is None or not math.isfinite(value) or value < 0 or (positive and value == 0):
            self.problem(node, key, f"must be {expect}, got {kind_name(node)}")
            return None
        return value

    def string_list(
        self, node: Node, key: str, choices: Iterable[str] | None = None
    ) -> tuple[str, ...] | None:
        """A list of strings (a single string is taken as a one-item list)."""
        items = node.value if isinstance(node, SequenceNode) else [node]
        if isinstance(node, MappingNode):
            self.problem(node, key, "must be a list of strings, got a mapping")
            return None
        out = []
        for i, item in enumerate(items):
            path = f"{key}[{i}]" if isinstance(node, SequenceNode) else key
            value = (
                self.choice(item, path, choices) if choices is not None else self.string(item, path)
            )
            if value is not None:
                out.append(value)
        return tuple(out)


_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str) -> float | None:
    m = _DURATION.fullmatch(text)
    if not m:
        return None
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def _known(known: list[str]) -> str:
    return f" (known: {', '.join(known)})" if known else ""


def cpu_count() -> int:
    return os.cpu_count() or 1
