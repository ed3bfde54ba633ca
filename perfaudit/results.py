"""The run record: one versioned JSON file per run, the hinge between measuring and reading.

Everything before it measures, everything after it only reads it, so a report can be
rendered again, or compared, long after the run. It is written atomically (temp file +
rename) after every scenario, so a Ctrl-C keeps the finished ones.
"""

from __future__ import annotations

import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
PACKAGES = ("perfaudit", "uvicorn", "starlette", "httptools", "uvloop", "redis", "arq", "httpx")


class ResultsError(Exception):
    """A results file that cannot be read: the message names the file and the problem."""


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=5, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip()


def environment() -> dict[str, Any]:
    """Facts about the machine and software a reader needs to trust or compare a run."""
    import psutil

    from perfaudit import calibrate

    status = _git("status", "--porcelain")
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "packages": package_versions(),
        # How fast this machine ran a fixed piece of Python work now: the same CPU model
        # can run 2x slower, and time-based baselines are trusted only at the same speed.
        "calibration": calibrate.this_machine(),
    }


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    packages: dict[str, str | None] = {}
    for name in names:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    return packages


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


@dataclass
class RunRecord:
    run_id: str
    created_at: str
    command: list[str]
    environment: dict[str, Any]
    scenarios: list[dict[str, Any]] = field(default_factory=list)
    status: str = "running"  # running | complete | interrupted | failed
    finished_at: str | None = None
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def start(cls, command: list[str]) -> RunRecord:
        return cls(
            run_id=new_run_id(), created_at=utc_now(), command=command, environment=environment()
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "status": self.status,
            "command": self.command,
            "environment": self.environment,
            "scenarios": self.scenarios,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ResultsError(
                f"schema_version {version!r} is not supported (this perfaudit reads "
                f"{SCHEMA_VERSION})"
            )
        try:
            return cls(
                run_id=str(data["run_id"]),
                created_at=str(data["created_at"]),
                finished_at=data.get("finished_at"),
                status=str(data["status"]),
                command=list(data["command"]),
                environment=dict(data["environment"]),
                scenarios=list(data["scenarios"]),
                schema_version=version,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"missing or malformed key {exc}") from exc


def write_atomic(path: Path, record: RunRecord) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".results-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record.to_dict(), f, indent=1, default=str)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a results file is meant to be read
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> RunRecord:
    if path.is_dir():
        path = path / RESULTS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ResultsError(f"{path}: no such results file") from exc
    except (OSError, ValueError) as exc:
        raise ResultsError(f"{path}: not a readable JSON results file ({exc})") from exc
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: the top level is not an object")
    try:
        return RunRecord.from_dict(data)
    except ResultsError as exc:
        raise ResultsError(f"{path}: {exc}") from exc
