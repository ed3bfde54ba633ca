"""Event-loop selection: uvloop when installed (about 25 % less client CPU per request
on loopback, see shared/research/feasibility.md B), plain asyncio otherwise."""

from __future__ import annotations

import asyncio

try:  # uvloop is optional (absent on Windows)
    import uvloop as _uvloop
except ImportError:  # pragma: no cover - depends on the platform
    _uvloop = None


def uvloop_available() -> bool:
    return _uvloop is not None


def new_event_loop(use_uvloop: bool = True) -> asyncio.AbstractEventLoop:
    """A fresh loop: uvloop if requested and installed, else the default asyncio loop."""
    if use_uvloop and _uvloop is not None:
        return _uvloop.new_event_loop()
    return asyncio.new_event_loop()


def install(use_uvloop: bool = True) -> str:
    """Make new loops in this process uvloop loops when possible; returns the loop name."""
    if use_uvloop and _uvloop is not None:
        asyncio.set_event_loop_policy(_uvloop.EventLoopPolicy())
        return "uvloop"
    return "asyncio"


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
