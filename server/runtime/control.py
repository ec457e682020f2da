"""The control channel between the supervisor and one worker process.

A SOCK_SEQPACKET socketpair (message boundaries kept, file descriptors passed with SCM_RIGHTS): each message is one
small JSON object, with at most a few descriptors. The supervisor says ``ping`` (the worker answers ``pong`` with its
health), ``metrics`` (``metrics`` with its Prometheus exposition), ``link`` (a new link to the core or to a gateway,
its descriptor attached), ``drain`` and ``stop``; a worker says ``ready`` once it serves. Nothing else travels here:
the data plane is the links (`kefu.server.link`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["MAX_MESSAGE", "Control", "control_pair"]

MAX_MESSAGE = 4 << 20
"""Largest control message (a worker's metrics exposition is tens of KiB)."""
MAX_FDS = 4


def control_pair() -> tuple[socket.socket, socket.socket]:
    """A connected pair for one worker: (the supervisor's end, the worker's end)."""
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for sock in (left, right):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_MESSAGE)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, MAX_MESSAGE)
    return left, right


class Control:
    """One end of a control channel, read on the event loop. `on_message(message, fds)` gets every message (the
    receiver owns the descriptors); `on_closed()` runs once when the other end is gone."""

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[dict[str, Any], list[int]], None],
        on_closed: Callable[[], None],
    ) -> None:
        self.sock = sock
        self._loop = loop
        self._on_message = on_message
        self._on_closed = on_closed
        self._closed = False
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._readable)

    def send(self, message: dict[str, Any], fds: list[int] | tuple[int, ...] = ()) -> bool:
        """Send one message (and descriptors, which stay open here); False if the other end is gone."""
        if self._closed:
            return False
        data = json.dumps(message, separators=(",", ":")).encode()
        try:
            socket.send_fds(self.sock, [data], list(fds))
        except BlockingIOError:
            # The peer stopped reading more than MAX_MESSAGE ago: it is stuck, which the supervisor's watchdog
            # sees; a control message is never worth blocking the loop for.
            return False
        except OSError:
            self.close()
            return False
        return True

    def _readable(self) -> None:
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, MAX_MESSAGE, MAX_FDS)
        except BlockingIOError:
            return
        except OSError:
            data, fds = b"", []
        if not data:
            self.close()
            return
        try:
            message = json.loads(data)
        except ValueError:
            for fd in fds:
                with contextlib.suppress(OSError):
                    socket.close(fd)
            return
        self._on_message(message, fds)

    def close(self) -> None:
        """Stop reading and close this end."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        self._on_closed()
