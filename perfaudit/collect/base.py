"""The shape every collector has: a baseline at ``start()``, a JSON-ready result at ``stop()``."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

Result = dict[str, Any]


@runtime_checkable
class Collector(Protocol):
    def start(self) -> None:
        """Take the baseline (or start sampling); called right before the window opens."""

    def stop(self) -> Result:
        """Close the window and return what happened in it (JSON-serialisable)."""
