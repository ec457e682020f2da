"""The operator socket: how `kefu app revoke`, `kefu app retire-key` and `kefu session list/end` reach a running server.

Theory of operation: every process that holds client connections (each gateway worker, or the single-process server)
listens on its own Unix-domain stream socket, ``data_dir/control/<process>.sock``, so a command reaches every gateway
without going through the supervisor or the core, in either mode. A request is one JSON line, the answer one JSON line:

    {"op": "apply", "after": G}      the session orders in the store, at once  -> {"process", "ended", "generation"}
                                     (ended: by the orders after generation G, or by this check without "after")
    {"op": "sessions", "app": ""}    the ready sessions (of one app)           -> {"process", "sessions", "truncated"}

Who may ask: the directory is 0700 and the socket 0600, and the peer's uid (SO_PEERCRED) must be the server's or
root's: the same people who may write the store, which these commands do anyway. Nothing listens on the network. A
poke is only a shortcut: each process also reads the orders every ORDER_POLL_S (`kefu.server.edge.operator`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import struct
from pathlib import Path
from typing import Any, Final

from .. import log as logmod
from ..edge.operator import SessionOrders
from ..storage.modes import FILE_MODE, private_dir

__all__ = ["CONTROL_DIR", "MAX_REQUEST", "OperatorSocket", "socket_path", "socket_paths"]

CONTROL_DIR: Final = "control"
MAX_REQUEST: Final = 4096
"""Largest request line (a request names at most one app)."""
REQUEST_TIMEOUT_S: Final = 5.0
"""How long a connection may take to send its request."""
MAX_SUN_PATH: Final = 107
"""Longest socket path Linux accepts (sun_path is 108 bytes with its terminating NUL)."""
_PEERCRED: Final = struct.Struct("3i")


def socket_path(data_dir: Path, process: str) -> Path:
    """The operator socket of `process` ("server", "gateway-0", ...)."""
    return Path(data_dir) / CONTROL_DIR / f"{process}.sock"


def socket_paths(data_dir: Path) -> list[Path]:
    """Every operator socket in the data directory (some may be stale: their process is gone)."""
    directory = Path(data_dir) / CONTROL_DIR
    return sorted(directory.glob("*.sock")) if directory.is_dir() else []


class OperatorSocket:
    """One process's operator socket, answering for its `SessionOrders`."""

    def __init__(self, path: Path, orders: SessionOrders) -> None:
        self.path = path
        self._orders = orders
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen (a stale socket of a previous process is replaced); a path too long for a socket is logged and
        skipped: the orders still arrive within ORDER_POLL_S, but `kefu session list` cannot reach this process."""
        if len(os.fsencode(self.path)) > MAX_SUN_PATH:
            logmod.warning("operator.path_too_long", path=str(self.path), limit=MAX_SUN_PATH)
            return
        private_dir(self.path.parent)
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path), limit=MAX_REQUEST)
        os.chmod(self.path, FILE_MODE)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not _trusted(writer):
                return
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                line = await reader.readline()
            writer.write(json.dumps(self.answer(json.loads(line))).encode() + b"\n")
            await writer.drain()
        except (ValueError, TimeoutError, OSError) as exc:
            logmod.warning("operator.bad_request", path=str(self.path), reason=repr(exc))
        finally:
            writer.close()

    def answer(self, request: Any) -> dict[str, Any]:
        """The answer to one request."""
        op = request.get("op") if isinstance(request, dict) else None
        if op == "apply":
            after = request.get("after")
            if isinstance(after, int) and not isinstance(after, bool):
                ended = self._orders.ended_after(after)  # what the orders after `after` ended, whoever applied them
            else:
                ended = self._orders.check()
            return {"process": self._orders.name, "ended": ended, "generation": self._orders.generation}
        if op == "sessions":
            return self._orders.listing(str(request.get("app") or ""))
        return {"process": self._orders.name, "error": f"unknown op {op!r}"}

    def close(self) -> None:
        """Stop listening and remove the socket."""
        if self._server is not None:
            self._server.close()
            self._server = None
            with contextlib.suppress(OSError):
                self.path.unlink()


def _trusted(writer: asyncio.StreamWriter) -> bool:
    """The peer runs as this process's user or as root (the socket's mode says the same; this is the second lock)."""
    sock = writer.get_extra_info("socket")
    _pid, uid, _gid = _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))
    if uid in (0, os.geteuid()):
        return True
    logmod.warning("operator.refused", uid=uid)
    return False
