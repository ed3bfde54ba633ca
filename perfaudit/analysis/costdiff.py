"""Where the instructions went, and where they moved (pure: reads recorded entries).

Two levels, both per request and per process:

- ``c``: callgrind's self cost per C function (``_PyEval_EvalFrameDefault``, json's
  encoder, dict lookups). Exact, but a Python function that got dearer shows up as "more
  of everything";
- ``python``: Python calls per function (perfaudit.measure.pycalls, a native run). Names
  the Python code, counts calls rather than instructions.

A differential takes the median over each side's repeats per function; a function one side
does not have counts as 0 there. A/A noise is about 40 Ir per function and request at the
C level (research/callgrind-feasibility.md), so smaller moves are left out.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from typing import Any

from perfaudit.analysis.metrics import Entry

LEVELS = ("c", "python")
_LIB = re.compile(r"^.*(site-packages/|lib/python3\.\d+/)")
MIN_DELTA = {"c": 100.0, "python": 0.05}  # per request: below this a move is noise


@dataclass(frozen=True)
class FunctionCost:
    name: str
    baseline: float
    candidate: float

    @property
    def delta(self) -> float:
        return self.candidate - self.baseline


def _cost(entry: Entry) -> dict[str, Any]:
    c = ((entry.get("cost") or {}).get("instructions")) or {}
    return c if c.get("status") == "ok" else {}


def functions(entry: Entry, process: str, level: str) -> dict[str, float] | None:
    """Per-request cost by function of one process (None: not measured)."""
    cost = _cost(entry)
    if level == "c":
        node = (cost.get("processes") or {}).get(process)
    else:
        pc = cost.get("python_calls") or {}
        node = (pc.get("processes") or {}).get(process) if pc.get("status") == "ok" else None
    if not node or "functions" not in node:
        return None
    return {str(k): float(v) for k, v in node["functions"].items()}


def processes(entries: list[Entry]) -> list[str]:
    out: list[str] = []
    for e in entries:
        for name in _cost(e).get("processes") or {}:
            if name not in out:
                out.append(name)
    return out


def busy(entries: list[Entry], process: str) -> bool:
    return any(
        ((_cost(e).get("processes") or {}).get(process) or {}).get("busy", True) for e in entries
    )


def top(entry: Entry, process: str, level: str, n: int = 10) -> list[tuple[str, float]]:
    """The costliest functions; at the Python level Python functions only (built-ins such
    as ``isinstance`` are called most and say least)."""
    fns = functions(entry, process, level) or {}
    if level == "python":
        fns = {k: v for k, v in fns.items() if not k.startswith("<")}
    return sorted(fns.items(), key=lambda kv: -kv[1])[:n]


def _median_by_function(entries: list[Entry], process: str, level: str) -> dict[str, float]:
    tables = [t for e in entries if (t := functions(e, process, level)) is not None]
    if not tables:
        return {}
    names = {k for t in tables for k in t}
    return {k: statistics.median(t.get(k, 0.0) for t in tables) for k in names}


def diff(
    baseline: list[Entry], candidate: list[Entry], process: str, level: str, n: int = 10
) -> list[FunctionCost]:
    """The functions whose per-request cost moved most between the sides, largest first."""
    a = _median_by_function(baseline, process, level)
    b = _median_by_function(candidate, process, level)
    if not a or not b:
        return []
    moved = [FunctionCost(k, a.get(k, 0.0), b.get(k, 0.0)) for k in set(a) | set(b)]
    moved = [m for m in moved if abs(m.delta) >= MIN_DELTA[level]]
    return sorted(moved, key=lambda m: -abs(m.delta))[:n]


def short_name(name: str) -> str:
    """``f (/long/path/site-packages/pkg/mod.py:12)`` -> ``f (pkg/mod.py:12)``."""
    head, sep, where = name.rpartition(" (")
    if not sep:
        return name
    return f"{head} ({_LIB.sub('', where)}"
