"""What the profilers need from this machine: binaries, modules, ptrace permission, lldb.

Each check returns :class:`Problem` s whose message says what is missing and whose fix says
how to get it — the usual culprits being a container without ``SYS_PTRACE`` and Yama's
``ptrace_scope``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
from pathlib import Path

from perfaudit.profile.base import Problem

PY_SPY_ENV = "PERFAUDIT_PY_SPY"  # an explicit py-spy binary (also how tests hide it)
LLDB_ENV = "PERFAUDIT_LLDB"  # an explicit lldb binary; "" or a missing path: no lldb
CAP_SYS_PTRACE = 19
CONTAINER_FIX = (
    "run the container with --cap-add SYS_PTRACE (docker run / compose cap_add), or "
    "securityContext.capabilities.add: [SYS_PTRACE] on Kubernetes"
)


def find_binary(name: str, env_var: str) -> str | None:
    """``$env_var`` when set (a path; nothing when it does not exist), else the binary beside
    this interpreter (a venv's bin/, often not on PATH), else PATH."""
    explicit = os.environ.get(env_var)
    if explicit is not None:
        return explicit if explicit and Path(explicit).is_file() else None
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def py_spy_binary() -> str | None:
    return find_binary("py-spy", PY_SPY_ENV)


def lldb_binary() -> str | None:
    return find_binary("lldb", LLDB_ENV)


def _cap_eff() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return None


def _ptrace_scope() -> int | None:
    try:
        return int(Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip())
    except (OSError, ValueError):
        return None  # no Yama: ordinary same-user rules


def ptrace_problems(profiler: str) -> list[Problem]:
    """Can this process's children attach to the target (py-spy, lldb)?"""
    if not sys.platform.startswith("linux"):
        return []  # macOS needs root; py-spy says so itself
    caps = _cap_eff()
    has_cap = caps is not None and bool(caps >> CAP_SYS_PTRACE & 1)
    scope = _ptrace_scope()
    if has_cap:
        return [] if scope != 3 else [_scope3(profiler)]
    if scope == 3:
        return [_scope3(profiler)]
    if scope in (1, 2):
        return [
            Problem(
                profiler,
                f"ptrace is restricted (kernel.yama.ptrace_scope={scope}) and this process "
                "lacks CAP_SYS_PTRACE, so it cannot attach to the target",
                "run perfaudit as root (sudo), or `sudo sysctl kernel.yama.ptrace_scope=0`; in "
                "a container: " + CONTAINER_FIX,
            )
        ]
    if os.geteuid() == 0:
        # Root without the capability: a container. Same-user attach may still work.
        return [
            Problem(
                profiler,
                "running as root without CAP_SYS_PTRACE (a container?): attaching may be refused",
                CONTAINER_FIX,
                blocking=False,
            )
        ]
    return []


def _scope3(profiler: str) -> Problem:
    return Problem(
        profiler,
        "ptrace is disabled on this machine (kernel.yama.ptrace_scope=3)",
        "only a reboot with a lower ptrace_scope lifts it; use memray with method=run instead",
    )


def module_problem(profiler: str, module: str) -> list[Problem]:
    if importlib.util.find_spec(module) is None:
        return [
            Problem(
                profiler,
                f"the {module} module is not installed in {sys.executable}",
                f"pip install {module} (it is a perfaudit dependency: reinstall perfaudit)",
            )
        ]
    return []
