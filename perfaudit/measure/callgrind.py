"""valgrind's callgrind, driven from outside: the command prefix, zero/dump of a running
process, and the self cost per C function from a dump.

Counts are taken with ``callgrind_control -z`` (zero) and ``-d`` (dump) on the running
process (vgdb, through ptrace), so nothing inside the target needs to cooperate. A dump
holds what ran since the last zero; its ``summary:`` line is the total (``totals:`` may be
larger: it includes calls that were open at the zero).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

VALGRIND_ENV = "PERFAUDIT_VALGRIND"  # an explicit valgrind binary ("" hides it: tests)
CONTROL_TIMEOUT_S = 60.0  # a zero/dump waits for the target's next scheduling point
INSTALL_FIX = (
    "install valgrind: `sudo apt-get install -y valgrind` (Debian/Ubuntu; `make setup` does it "
    "when run as root), `sudo dnf install valgrind`, or `brew install valgrind` (Linux only)"
)


class CallgrindError(RuntimeError):
    """valgrind is missing, or a zero/dump of a process failed; the message says which."""


def valgrind_binary() -> str | None:
    explicit = os.environ.get(VALGRIND_ENV)
    if explicit is not None:
        return explicit if explicit and Path(explicit).is_file() else None
    return shutil.which("valgrind")


def control_binary() -> str | None:
    vg = valgrind_binary()
    beside = Path(vg).parent / "callgrind_control" if vg else None
    if beside is not None and beside.is_file():
        return str(beside)
    return shutil.which("callgrind_control")


def version() -> str | None:
    vg = valgrind_binary()
    if vg is None:
        return None
    try:
        out = subprocess.run([vg, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def missing() -> list[str]:
    """What this machine lacks for the instructions measure (empty: nothing)."""
    out = []
    if valgrind_binary() is None:
        out.append(f"valgrind is not installed; {INSTALL_FIX}")
    elif control_binary() is None:
        out.append(f"callgrind_control (part of valgrind) is not found; {INSTALL_FIX}")
    return out


def prefix(out_dir: Path) -> list[str]:
    """The command that runs a program under callgrind, one output file per process.

    Instrumentation is on from the start (a zero before each window discards start-up);
    threads are summed; ``--vgdb=yes`` lets callgrind_control reach a process blocked in
    epoll."""
    vg = valgrind_binary()
    if vg is None:
        raise CallgrindError(missing()[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        vg,
        "--tool=callgrind",
        f"--callgrind-out-file={out_dir}/cg.%p.out",
        "--vgdb=yes",
        "--separate-threads=no",
        "--dump-instr=no",  # positions "line" only, whatever ~/.valgrindrc says
        "--dump-line=yes",
        "--error-limit=no",
        "--quiet",
    ]


def _control(pid: int, *args: str) -> None:
    tool = control_binary()
    if tool is None:
        raise CallgrindError(missing()[0] if missing() else "callgrind_control not found")
    try:
        proc = subprocess.run(
            [tool, *args, str(pid)], capture_output=True, text=True, timeout=CONTROL_TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        raise CallgrindError(
            f"callgrind_control {' '.join(args)} {pid}: no answer in {CONTROL_TIMEOUT_S:.0f} s"
        ) from None
    text = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or "Error" in text or "No active callgrind" in text:
        raise CallgrindError(f"callgrind_control {' '.join(args)} {pid}: {text or proc.returncode}")


def zero(pid: int) -> None:
    _control(pid, "--zero")


def dump(pid: int, out_dir: Path, label: str = "perfaudit") -> Path:
    """Dump what ran since the last zero; returns the new dump file."""
    before = set(out_dir.glob(f"cg.{pid}.out*"))
    _control(pid, f"--dump={label}")
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        new = [p for p in out_dir.glob(f"cg.{pid}.out*") if p not in before]
        done = [p for p in new if _complete(p)]
        if done:
            return max(done, key=lambda p: p.stat().st_mtime_ns)
        time.sleep(0.02)
    raise CallgrindError(f"callgrind dump of process {pid} did not appear in {out_dir}")


def _complete(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, path.stat().st_size - 4096))
            tail = f.read()
    except OSError:
        return False
    return b"\ntotals:" in tail or b"\nsummary:" in tail


# -- the dump format ---------------------------------------------------------------------
@dataclass
class Dump:
    """One dump: the total instruction count and the self cost of every function."""

    summary: int
    self_cost: dict[str, int] = field(default_factory=dict)  # "fn [object]" -> Ir
    totals: int | None = None

    def consistent(self, tolerance: float = 0.001) -> bool:
        """Does the function table add up to the summary? The first dump of a process
        can hold millions of instructions from calls open before its zero; such a table
        says nothing about the window (its summary still does)."""
        total = sum(self.self_cost.values())
        return abs(total - self.summary) <= tolerance * self.summary + 1000


_NAMED = re.compile(r"^\((\d+)\)(?: (.*))?$")
_COST = re.compile(r"^[0-9+\-*]")
_CYCLE = re.compile(r"'\d+$")


def parse(path: Path) -> Dump:
    """Self cost (first event, Ir) per function. The line after ``calls=`` is the
    inclusive cost of that call, charged to the callee, so it is skipped; names may be
    compressed (``fn=(12) name`` once, ``fn=(12)`` after)."""
    names: dict[tuple[str, str], str] = {}
    summary = 0
    totals: int | None = None
    event_at = 1  # the first event (Ir) follows the position columns
    costs: dict[str, int] = {}
    ob = fn = ""
    skip_next = False

    def name(kind: str, value: str) -> str:
        m = _NAMED.match(value)
        if not m:
            return value
        ident, text = m.group(1), m.group(2)
        key = (kind, ident)
        if text is not None:
            names[key] = text
            return text
        return names.get(key, value)

    with open(path, errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not line:
                continue
            if _COST.match(line):
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) > event_at and fn:
                    base = _CYCLE.sub("", fn)  # recursion levels: f'2 is f
                    key = f"{base} [{os.path.basename(ob)}]" if ob else base
                    costs[key] = costs.get(key, 0) + int(parts[event_at])
                continue
            key, _, value = line.partition("=")
            if key == "fn":
                fn = name("fn", value)
            elif key == "ob":
                ob = name("ob", value)
            elif key in ("cob", "cfn"):
                name("ob" if key == "cob" else "fn", value)  # defines a compressed name
            elif key in ("fl", "fi", "fe", "cfi", "cfl"):
                name("fl", value)
            elif key == "calls":
                skip_next = True
            elif line.startswith("summary:"):
                summary = int(line.split(":", 1)[1].split()[0])
            elif line.startswith("totals:"):
                totals = int(line.split(":", 1)[1].split()[0])
            elif line.startswith("positions:"):
                event_at = len(line.split(":", 1)[1].split())  # "line" or "instr line"
    return Dump(summary, costs, totals)
