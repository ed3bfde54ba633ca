"""What an instruction count depends on besides the code: recorded with every count, and
what a stored instruction baseline must match to be trusted.

glibc picks memcpy/strlen variants from the CPU valgrind presents (its CPUID), Python's
eval loop and every package's code path count, and the settings decide what is counted.
A baseline that differs in any of these measures the machine or the software, not the
change: it is re-measured instead (the rule: perfaudit.baseline.instruction_differences).
"""

from __future__ import annotations

import hashlib
import platform
import sys
from pathlib import Path
from typing import Any

from perfaudit.measure import callgrind
from perfaudit.results import package_versions

PACKAGES = (
    "perfaudit", "uvicorn", "starlette", "httptools", "uvloop", "redis", "arq", "httpx",
    "httpcore", "anyio", "h11", "orjson", "pydantic",
)  # fmt: skip


def _cpuinfo() -> tuple[str | None, str | None]:
    model = flags = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and model is None:
                model = value.strip()
            elif key == "flags" and flags is None:
                flags = value.strip()
    except OSError:
        pass
    digest = hashlib.sha256(" ".join(sorted((flags or "").split())).encode()).hexdigest()
    return model, (digest[:16] if flags else None)


def cost_environment(settings: dict[str, Any]) -> dict[str, Any]:
    model, flags = _cpuinfo()
    return {
        "valgrind": callgrind.version(),
        "arch": platform.machine(),
        "cpu_model": model,
        "cpu_flags": flags,
        "python": sys.version,
        "packages": package_versions(PACKAGES),
        "settings": dict(settings),
    }
