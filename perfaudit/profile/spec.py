"""Which profilers a run uses, and their options: ``--profile`` text and the scenario's
``profile:`` key both end up as a tuple of :class:`ProfileSpec`.

    parse_cli(["py-spy:idle,gil,memray"])  -> (py-spy{idle,gil}, memray)
    parse_cli(["py-spy:rate=250", "pyinstrument"])
    parse_cli(["none"])                    -> ()  (no profiling, whatever the scenarios say)

A token that names a profiler starts a new one; any other token is an option of the one before
(``idle`` means ``idle=true``). Kept free of scenario imports: the validator builds on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from perfaudit.suggest import suggest

PROFILERS: tuple[str, ...] = ("py-spy", "pyinstrument", "memray")


@dataclass(frozen=True)
class Option:
    kind: Literal["bool", "int", "float", "choice"]
    default: Any
    help: str
    low: float | None = None  # inclusive bounds for numbers
    high: float | None = None
    choices: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        what = "an integer" if self.kind == "int" else "a number"
        return f"{what} from {self.low:g} to {self.high:g}"

    def check(self, value: Any) -> tuple[Any, str | None]:
        """(converted value, None) or (None, what is wrong)."""
        expect = f"must be {self.describe()}, got {value!r}"
        if self.kind == "bool":
            return (value, None) if isinstance(value, bool) else (None, expect)
        if self.kind == "choice":
            return (value, None) if value in self.choices else (None, expect)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, expect
        if self.kind == "int" and not float(value).is_integer():
            return None, expect
        if not math.isfinite(value):
            return None, expect
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            return None, expect
        return (int(value) if self.kind == "int" else float(value)), None


OPTIONS: dict[str, dict[str, Option]] = {
    "py-spy": {
        "rate": Option("int", 100, "samples per second", 1, 1000),
        "idle": Option("bool", False, "include idle (waiting) threads"),
        "gil": Option("bool", False, "only samples that hold the GIL"),
        "nonblocking": Option("bool", False, "do not pause the target (cheaper, less exact)"),
        "native": Option("bool", False, "native (C) frames too (costs ~15 % throughput)"),
    },
    "pyinstrument": {
        "interval": Option("float", 0.001, "sampling interval in seconds", 0.0001, 1.0),
        "mode": Option(
            "choice",
            "requests",
            "requests: one async-aware profile per request, merged (await time attributed); "
            "thread: one profile of the whole event-loop thread",
            choices=("requests", "thread"),
        ),
    },
    "memray": {
        "method": Option(
            "choice",
            "auto",
            "attach (memray attach --method lldb, the window only), run (the target launched "
            "under memray run: start-up included), auto (attach when lldb is installed)",
            choices=("auto", "attach", "run"),
        ),
        "native": Option("bool", False, "native (C) stacks too"),
    },
}


class ProfileSpecError(ValueError):
    """A bad ``--profile`` value; the message says what and how to write it."""


@dataclass(frozen=True)
class ProfileSpec:
    name: str
    options: tuple[tuple[str, Any], ...] = ()  # only the ones given; sorted, hashable

    def get(self, key: str) -> Any:
        return dict(self.options).get(key, OPTIONS[self.name][key].default)

    def all_options(self) -> dict[str, Any]:
        return {key: self.get(key) for key in OPTIONS[self.name]}

    def label(self) -> str:
        if not self.options:
            return self.name
        parts = [k if v is True else f"{k}={v}" for k, v in self.options]
        return f"{self.name}:{','.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(self.options)}


def make_spec(name: str, options: Mapping[str, Any] | None = None) -> ProfileSpec:
    """A checked spec; raises ProfileSpecError naming the first bad option."""
    if name not in OPTIONS:
        raise ProfileSpecError(unknown_profiler(name))
    known = OPTIONS[name]
    out: dict[str, Any] = {}
    for key, value in (options or {}).items():
        if key not in known:
            raise ProfileSpecError(f"{name}: unknown option {key!r} ({known_options(name)})")
        checked, problem = known[key].check(value)
        if problem:
            raise ProfileSpecError(f"{name}: {key} {problem}")
        out[key] = checked
    if name == "py-spy" and out.get("native") and out.get("nonblocking"):
        raise ProfileSpecError("py-spy: native cannot be combined with nonblocking")
    return ProfileSpec(name, tuple(sorted(out.items())))


def unknown_profiler(name: str) -> str:
    return f"unknown profiler {name!r} (known: {', '.join(PROFILERS)})" + suggest(
        name, list(PROFILERS)
    )


def known_options(name: str) -> str:
    return "known: " + ", ".join(f"{k} ({o.describe()})" for k, o in OPTIONS[name].items())


def _cli_value(option: Option, text: str) -> Any:
    if option.kind == "bool":
        low = text.lower()
        return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
            low, text
        )
    if option.kind in ("int", "float"):
        try:
            return int(text) if option.kind == "int" and text.lstrip("-").isdigit() else float(text)
        except ValueError:
            return text
    return text


def parse_cli(values: Sequence[str] | None) -> tuple[ProfileSpec, ...] | None:
    """``--profile`` values -> specs; None when the option was not given."""
    if not values:
        return None
    tokens = [t.strip() for v in values for t in v.split(",") if t.strip()]
    if tokens == ["none"]:
        return ()
    specs: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for token in tokens:
        head, sep, first = token.partition(":")
        if head in OPTIONS or sep:
            if head not in OPTIONS:
                raise ProfileSpecError(f"--profile: {unknown_profiler(head)}")
            current = head
            specs.setdefault(current, {})
            if not first:
                continue
            token = first
        if current is None:
            raise ProfileSpecError(f"--profile: {unknown_profiler(token)}")
        key, eq, text = token.partition("=")
        option = OPTIONS[current].get(key)
        if option is None:
            raise ProfileSpecError(
                f"--profile: {current}: unknown option {key!r} ({known_options(current)})"
            )
        specs[current][key] = _cli_value(option, text) if eq else True
    try:
        return tuple(make_spec(name, opts) for name, opts in specs.items())
    except ProfileSpecError as exc:
        raise ProfileSpecError(f"--profile: {exc}") from None


def union(spec_sets: Iterable[Sequence[ProfileSpec]]) -> list[ProfileSpec]:
    """Distinct specs in first-seen order."""
    return list(dict.fromkeys(s for specs in spec_sets for s in specs))
