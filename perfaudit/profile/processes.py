"""Which processes of a target to attach to.

The reference stack: the service and the worker (the job kind's work happens there). An
external target: the process the scenario names (``target.profile_process``) or the one
perfaudit started — and when that is a server master (gunicorn, ``uvicorn --workers``) or a
shell, its Python worker processes instead, since the master serves no requests (py-spy#572).
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from perfaudit.profile.session import TargetSessionLike

REFERENCE_PROCESSES = ("service", "worker")
_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver", "semaphore_tracker")


def _is_python(proc: psutil.Process) -> bool:
    try:
        names = [proc.name(), *(proc.cmdline()[:1])]
        with contextlib.suppress(psutil.AccessDenied, psutil.ZombieProcess):
            names.append(proc.exe())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return any("python" in n.rsplit("/", 1)[-1] for n in names if n)


def _is_helper(proc: psutil.Process) -> bool:
    try:
        return any(h in " ".join(proc.cmdline()) for h in _HELPERS)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return True


def server_processes(root_pid: int) -> dict[str, int]:
    """The Python processes under ``root_pid`` that do the serving: the leaves of the Python
    process tree (workers), or the root itself when it has no Python children."""
    try:
        root = psutil.Process(root_pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {"service": root_pid}
    python = [p for p in tree if _is_python(p) and not _is_helper(p)]
    pids = {p.pid for p in python}
    leaves = []
    for p in python:
        try:
            if not any(c.pid in pids for c in p.children(recursive=True)):
                leaves.append(p.pid)
        except psutil.NoSuchProcess:
            continue
    if not leaves:
        return {"service": root_pid}  # not Python as far as we can tell: let the profiler say
    if len(leaves) == 1:
        return {"service": leaves[0]}
    return {f"service-{pid}": pid for pid in sorted(leaves)}


def profile_targets(session: TargetSessionLike) -> dict[str, int]:
    if session.target.is_reference:
        return {n: session.pids[n] for n in REFERENCE_PROCESSES if n in session.pids}
    pid = session.pids.get("service")
    if pid is None:
        return {}
    if session.target.profile_process not in (None, "started"):
        return {"service": pid}  # the user named it: take it as is
    return server_processes(pid)
