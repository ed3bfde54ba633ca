"""A sub-millisecond one-shot timer for the open model's dispatcher.

Event-loop timers wake with ~1 ms granularity: asyncio rounds the epoll timeout up to
whole ms, uvloop/libuv keep time in ms. Dispatching arrivals on them adds a systematic
0-1 ms send lag, which the coordinated-omission-corrected latency then (correctly)
includes: a 0.1 ms endpoint would report p50 ~0.6 ms. Re-arming a timer whose rounded
delay is 0 instead spins the loop at 100 % CPU.

On Linux a ``timerfd`` (CLOCK_MONOTONIC, absolute ns deadline) registered as a reader
wakes the same loop within tens of µs at the cost of one syscall per arm. It is created
through ctypes because ``os.timerfd_*`` only exists from Python 3.13. Elsewhere (or if
timerfd fails) :class:`LoopTimer` uses the loop's timer with delays of at least 1 ms.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
import time
from collections.abc import Callable
from time import perf_counter

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = 0o2000000
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    # timerfd deadlines are CLOCK_MONOTONIC; perf_counter must be the same clock.
    if time.get_clock_info("perf_counter").implementation != "clock_gettime(CLOCK_MONOTONIC)":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class LoopTimer:
    """Fallback: the loop's own timer, never shorter than 1 ms (no busy re-arming)."""

    precise = False

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.TimerHandle | None = None

    @property
    def armed(self) -> bool:
        return self._handle is not None

    def arm(self, when: float) -> None:
        """Fire ``callback`` once at ``when`` (a perf_counter() time)."""
        if self._handle is not None:
            self._handle.cancel()
        self._handle = self._loop.call_later(max(0.001, when - perf_counter()), self._fire)

    def _fire(self) -> None:
        self._handle = None
        self._callback()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


class TimerFd:
    """One-shot absolute-deadline timer on a Linux timerfd, read by the event loop."""

    precise = True

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        assert _LIBC is not None
        fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._fd = fd
        self._loop = loop
        self._callback = callback
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.byref(self._spec)
        self._armed = False
        loop.add_reader(fd, self._fire)

    @property
    def armed(self) -> bool:
        return self._armed

    def arm(self, when: float) -> None:
        ns = int(when * 1e9)
        if ns <= 0:
            ns = 1  # an all-zero it_value would disarm instead
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(ns, 1_000_000_000)
        if _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, self._spec_ref, None) != 0:  # type: ignore[union-attr]
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        self._armed = True

    def _fire(self) -> None:
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            return  # spurious wake-up (re-armed meanwhile)
        self._armed = False
        self._callback()

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
            self._armed = False


def make_timer(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], None]
) -> LoopTimer | TimerFd:
    """The most precise one-shot timer available for ``loop``."""
    if _LIBC is not None:
        try:
            return TimerFd(loop, callback)
        except (OSError, NotImplementedError):
            pass
    return LoopTimer(loop, callback)
