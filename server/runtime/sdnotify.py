"""systemd integration without a dependency: readiness and status, the watchdog, and socket activation.

Theory of operation
-------------------
Under systemd (systemd/kefu.service, Type=notify, and systemd/kefu.socket) `kefu serve` finds in its environment::

    NOTIFY_SOCKET    an AF_UNIX datagram socket, a path or "@name" in the abstract namespace, to which the
                     service sends newline-separated VAR=value assignments (sd_notify(3))
    WATCHDOG_USEC    with WatchdogSec=: ping at least this often or be killed; WATCHDOG_PID, when set, names
                     the process meant (sd_watchdog_enabled(3))
    LISTEN_PID, LISTEN_FDS, LISTEN_FDNAMES
                     with the socket unit: listening sockets systemd holds for us, as fds 3, 4, ...
                     (sd_listen_fds(3)); meant for us only if LISTEN_PID is our pid

`Notifier` sends READY=1 once the listener and the metrics endpoint are up, STATUS= with the connection count
when it changes (looked at every `STATUS_INTERVAL_S`), WATCHDOG=1 every WATCHDOG_USEC/2, and STOPPING=1 when the
drain begins. The pings come from a coroutine on the event loop, never from a thread: a loop that stalls (a
blocking call, a lock, a runaway callback) stops pinging, and systemd kills and restarts the service once
WatchdogSec passes without one.

`listen_socket()` adopts the socket systemd passes. systemd keeps its own copy of that socket open while kefu
restarts, so connections made meanwhile wait in the accept queue instead of being refused.

Outside systemd (no NOTIFY_SOCKET, no LISTEN_FDS) everything here is a no-op. A failed notification is logged,
never raised: losing one must not take the server down.

`install_debug_stall` is a test-only hook, inert unless its environment variable is set; see its docstring.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import time
from collections.abc import Callable, Mapping, MutableMapping

from .. import log

__all__ = [
    "ACTIVATION_FD_NAME",
    "DEBUG_STALL_ENV",
    "ActivationError",
    "Notifier",
    "install_debug_stall",
    "listen_fds",
    "listen_socket",
    "notify_address",
]

SD_LISTEN_FDS_START = 3
"""The first passed file descriptor (sd-daemon.h SD_LISTEN_FDS_START)."""
STATUS_INTERVAL_S = 1.0
"""How often the connection count is looked at. STATUS= is sent only when its text changed, so a busy server
sends at most one datagram a second and an idle one none."""
ACTIVATION_FD_NAME = "kefu"
"""When systemd passes several sockets, the client listener is the one with FileDescriptorName=kefu."""
DEBUG_STALL_ENV = "KEFU_DEBUG_STALL_ON_SIGNAL"
"""TEST ONLY: seconds that SIGUSR2 blocks the event loop for (see `install_debug_stall`)."""
_ACTIVATION_VARS = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ActivationError(Exception):
    """The sockets systemd passed cannot be served: not a socket, not listening, not TCP, or ambiguous."""


# --- sd_notify ------------------------------------------------------------------------------------------


def notify_address(value: str) -> str | None:
    """$NOTIFY_SOCKET as a socket address: "@name" is the abstract namespace ("\\0name"); None if unusable.

    systemd 254+ may also pass "vsock:CID:PORT" to a virtual machine; kefu does not run as a VM's init.
    """
    if value.startswith("@"):
        return "\0" + value[1:]
    return value if value.startswith("/") else None


def _watchdog_seconds(env: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout from $WATCHDOG_USEC, if it is set, valid and (per $WATCHDOG_PID) meant for `pid`."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
        meant_for = int(env.get("WATCHDOG_PID") or pid)
    except ValueError:
        return None
    return usec / 1e6 if usec > 0 and meant_for == pid else None


class Notifier:
    """Sends sd_notify datagrams to the service manager; does nothing when there is none."""

    def __init__(self, address: str | None, *, watchdog_s: float | None = None) -> None:
        self.address = address
        self.watchdog_interval_s = watchdog_s / 2 if watchdog_s else None
        """Half the timeout, as sd_watchdog_enabled(3) advises: one late ping is not yet fatal."""
        self._sock: socket.socket | None = None
        self._last_status: str | None = None
        self._failing = False

    @classmethod
    def from_environment(cls, env: Mapping[str, str] | None = None, *, pid: int | None = None) -> Notifier:
        """The notifier systemd asked for through NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID."""
        env = os.environ if env is None else env
        address = notify_address(env.get("NOTIFY_SOCKET", ""))
        watchdog = _watchdog_seconds(env, os.getpid() if pid is None else pid) if address else None
        return cls(address, watchdog_s=watchdog)

    @property
    def enabled(self) -> bool:
        """Whether a service manager listens."""
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send VAR=value lines in one datagram; False if not sent (no manager, or the send failed)."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)  # a full queue drops this one datagram rather than block the loop
            self._sock.sendto("\n".join(lines).encode(), self.address)
        except OSError as exc:
            if not self._failing:  # once per run of failures, not once a second
                log.warning("systemd.notify_failed", reason=str(exc))
            self._failing = True
            return False
        self._failing = False
        return True

    def ready(self, status: str) -> None:
        """READY=1: the listener and the metrics endpoint are up."""
        self._last_status = status
        self.notify("READY=1", f"STATUS={status}")

    def stopping(self, status: str) -> None:
        """STOPPING=1: the drain has begun."""
        self._last_status = status
        self.notify("STOPPING=1", f"STATUS={status}")

    async def run(self, status: Callable[[], str], healthy: Callable[[], bool] = lambda: True) -> None:
        """Ping the watchdog and report `status()` when it changes, until cancelled.

        It must run on the event loop it vouches for: a WATCHDOG=1 proves that this loop ran a callback lately, and
        it is sent only while `healthy()` (with worker processes: while every worker answers its pings).
        """
        if self.address is None:
            return
        loop = asyncio.get_running_loop()
        next_ping = next_status = loop.time()
        while True:
            now, lines = loop.time(), []
            if self.watchdog_interval_s is not None and now >= next_ping:
                if healthy():
                    lines.append("WATCHDOG=1")
                next_ping = now + self.watchdog_interval_s
            if now >= next_status:
                next_status = now + STATUS_INTERVAL_S
                if (text := status()) != self._last_status:
                    lines.append(f"STATUS={text}")
                    self._last_status = text
            if lines:
                self.notify(*lines)
            wake = min(next_status, next_ping if self.watchdog_interval_s is not None else math.inf)
            await asyncio.sleep(max(0.0, wake - loop.time()))

    def close(self) -> None:
        """Close the datagram socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


# --- sd_listen_fds --------------------------------------------------------------------------------------


def listen_fds(
    env: MutableMapping[str, str] | None = None, *, pid: int | None = None, unset: bool = True
) -> list[tuple[str, socket.socket]]:
    """(name, socket) of every descriptor systemd passed to this process; [] if none were meant for it.

    As sd_listen_fds(3): honoured only when $LISTEN_PID is our pid (the variables are inherited by children,
    which must not take the sockets too); with `unset`, the variables are removed from `env` either way.
    Every descriptor is made close-on-exec. Names come from $LISTEN_FDNAMES (FileDescriptorName=).
    """
    env = os.environ if env is None else env
    values = {name: env.get(name) for name in _ACTIVATION_VARS}
    if unset:
        for name in _ACTIVATION_VARS:
            env.pop(name, None)
    try:
        if values["LISTEN_PID"] is None or int(values["LISTEN_PID"]) != (os.getpid() if pid is None else pid):
            return []
        count = int(values["LISTEN_FDS"] or "0")
    except ValueError:
        raise ActivationError(f"malformed LISTEN_PID/LISTEN_FDS: {values}") from None
    names = (values["LISTEN_FDNAMES"] or "").split(":")
    if len(names) != count:
        names = ["unknown"] * count
    passed = []
    for i, name in enumerate(names):
        fd = SD_LISTEN_FDS_START + i
        try:
            os.set_inheritable(fd, False)
            passed.append((name, socket.socket(fileno=fd)))
        except OSError as exc:
            raise ActivationError(f"passed descriptor {fd} ({name}) is not a usable socket: {exc}") from None
    return passed


def listen_socket(env: MutableMapping[str, str] | None = None, *, pid: int | None = None) -> socket.socket | None:
    """The client listener systemd passed (kefu.socket), non-blocking; None when not socket-activated.

    With one socket passed, that one; with several, the one named `ACTIVATION_FD_NAME`. It must be a
    listening TCP socket (ListenStream=ADDRESS:PORT); anything else is an ActivationError.
    """
    passed = listen_fds(env, pid=pid)
    if not passed:
        return None
    chosen = [s for name, s in passed if name == ACTIVATION_FD_NAME] if len(passed) > 1 else [passed[0][1]]
    for _, sock in passed:
        if not any(sock is c for c in chosen):
            sock.close()  # not ours to serve; systemd keeps its own copy
    if len(chosen) != 1:
        what = f"{len(passed)} sockets ({', '.join(name for name, _ in passed)})"
        raise ActivationError(f"systemd passed {what}: name the client one FileDescriptorName={ACTIVATION_FD_NAME}")
    sock = chosen[0]
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
        sock.close()
        raise ActivationError("the passed socket is not TCP: kefu.socket needs ListenStream=ADDRESS:PORT")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.close()
        raise ActivationError("the passed socket is not listening (kefu.socket must not set Accept=yes)")
    sock.setblocking(False)
    return sock


# --- test-only ------------------------------------------------------------------------------------------


def install_debug_stall(loop: asyncio.AbstractEventLoop, env: Mapping[str, str] | None = None) -> float | None:
    """TEST ONLY. With $KEFU_DEBUG_STALL_ON_SIGNAL=<seconds>, SIGUSR2 blocks the event loop for that long.

    It lets tests/systemd prove that a stalled loop stops the watchdog pings. Without the variable (always, in
    production) nothing is installed and SIGUSR2 keeps its default action. Returns the stall, or None.
    """
    value = (os.environ if env is None else env).get(DEBUG_STALL_ENV)
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        log.warning("debug.stall_hook_ignored", reason=f"{DEBUG_STALL_ENV}={value!r} is not a number of seconds")
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    loop.add_signal_handler(signal.SIGUSR2, _stall, seconds)
    log.warning("debug.stall_hook_armed", seconds=seconds, note="test-only: SIGUSR2 blocks the event loop")
    return seconds


def _stall(seconds: float) -> None:
    log.warning("debug.stall", seconds=seconds)
    time.sleep(seconds)  # deliberately on the loop: this is the stall under test
