"""Waking an event loop at a nanosecond deadline: a CLOCK_MONOTONIC timerfd watched by the loop.

Why: asyncio's timers under uvloop have a resolution of 1 ms (libuv rounds every timeout to whole
milliseconds), so an open-loop sender that sleeps until the next scheduled message wakes up to a
millisecond late and sends everything due in that millisecond together. Each message is measured from its
scheduled time, so that lateness is charged to the server's latency although the server never saw it. A
timerfd wakes the loop through epoll at the deadline itself, and the sender sends each message at (or just
after) its scheduled time.

`time.monotonic_ns()` reads CLOCK_MONOTONIC, the clock the timer is armed on, so deadlines computed from it
mean what they say. Linux only: `PreciseTimer.create` returns None elsewhere (and when the loop cannot
watch file descriptors), and callers fall back to `asyncio.sleep`. Python 3.13 has `os.timerfd_create`;
3.11 and 3.12 reach the same two system calls through ctypes.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import sys
from typing import Any

__all__ = ["PreciseTimer"]

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_create.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.timerfd_settime.argtypes = [
            ctypes.c_int, ctypes.c_int, ctypes.POINTER(_Itimerspec), ctypes.POINTER(_Itimerspec),
        ]  # fmt: skip
    except (OSError, AttributeError):
        return None
    return libc


class PreciseTimer:
    """One timerfd, armed for one deadline at a time; `wait_until` returns once CLOCK_MONOTONIC reaches it."""

    def __init__(self, loop: asyncio.AbstractEventLoop, fd: int, settime: Any) -> None:
        self._loop, self._fd, self._settime = loop, fd, settime
        self._waiter: asyncio.Future[None] | None = None
        loop.add_reader(fd, self._fired)

    @classmethod
    def create(cls, loop: asyncio.AbstractEventLoop) -> PreciseTimer | None:
        """A timer on `loop`, or None where timerfd is not available."""
        if hasattr(os, "timerfd_create"):  # Python >= 3.13
            fd = os.timerfd_create(_CLOCK_MONOTONIC, flags=_TFD_NONBLOCK | _TFD_CLOEXEC)

            def settime(deadline_ns: int) -> None:
                os.timerfd_settime_ns(fd, flags=_TFD_TIMER_ABSTIME, initial=deadline_ns)

        else:
            libc = _libc()
            if libc is None:
                return None
            fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd < 0:
                return None
            spec = _Itimerspec()

            def settime(deadline_ns: int) -> None:
                spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
                if libc.timerfd_settime(fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None) != 0:
                    raise OSError(ctypes.get_errno(), "timerfd_settime")

        try:
            return cls(loop, fd, settime)
        except (NotImplementedError, RuntimeError):  # a loop that cannot watch descriptors
            os.close(fd)
            return None

    async def wait_until(self, deadline_ns: int) -> None:
        """Sleep until time.monotonic_ns() >= deadline_ns (at once if it already is)."""
        self._waiter = self._loop.create_future()
        self._settime(max(1, deadline_ns))  # 0 would disarm the timer
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _fired(self) -> None:
        try:
            os.read(self._fd, 8)  # the expiration count; reading it re-arms the descriptor's readiness
        except BlockingIOError:
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        self._loop.remove_reader(self._fd)
        os.close(self._fd)
