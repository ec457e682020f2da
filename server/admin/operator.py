"""Talking to a running server's operator sockets (`kefu.server.runtime.operator`): one request to every process
that holds client connections.

An operator's change to an app (revoke, retire a client key, end its sessions) is a session order written to the store
with the change itself (`kefu.server.identity.orders`); `poke` then asks every such process to apply it at once. A
process the poke does not reach applies the order within ORDER_POLL_S all the same: a failed poke delays an order, it
never loses it.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..identity.orders import OrderBook
from ..runtime.operator import socket_paths
from ..storage.datadir import holder

__all__ = ["ASK_TIMEOUT_S", "Poke", "ask_all", "poke"]

ASK_TIMEOUT_S = 5.0
"""How long one process may take to answer (it answers from its event loop: milliseconds unless it is stuck)."""
MAX_ANSWER = 64 << 20
"""Largest answer read (MAX_LISTED sessions of one process take a few MB)."""


@dataclass(slots=True)
class Poke:
    """What the processes that hold connections said to an order: sessions ended, and who did not answer."""

    ended: int = 0
    reached: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)
    """Processes that did not answer (they apply the order within ORDER_POLL_S anyway)."""
    running: bool = False
    """A server holds the data directory (whether or not any of its processes answered)."""
    pid: int | None = None
    """The process that holds it, when it says."""


def _ask(path: Path, request: dict[str, Any], timeout: float) -> dict[str, Any]:
    """One request to one operator socket (OSError if it cannot be asked)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = bytearray()
        while not data.endswith(b"\n") and len(data) < MAX_ANSWER:
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    try:
        answer = json.loads(data)
    except ValueError:
        raise OSError(f"{path}: no answer") from None
    if not isinstance(answer, dict):
        raise OSError(f"{path}: unexpected answer")
    return answer


def ask_all(data_dir: Path, request: dict[str, Any], timeout: float) -> tuple[list[dict[str, Any]], list[str]]:
    """Every live process's answer, and the processes whose socket did not answer. Stale sockets (their process is
    gone: nothing listens there) are skipped."""
    answers, failed = [], []
    for path in socket_paths(data_dir):
        try:
            answers.append(_ask(path, request, timeout))
        except (ConnectionRefusedError, FileNotFoundError):
            continue
        except OSError:
            failed.append(path.stem)
    return answers, failed


def poke(config: Any, timeout: float = ASK_TIMEOUT_S, *, after: int | None = None) -> Poke:
    """Ask every process that holds connections to apply the session orders now; with `after` (the orders' generation
    before the command wrote its own), count the sessions the newer orders ended, whether this poke or a process's
    own periodic check applied them."""
    request: dict[str, Any] = {"op": "apply"} if after is None else {"op": "apply", "after": after}
    answers, failed = ask_all(config.data_path, request, timeout)
    reached = sorted(str(a.get("process", "?")) for a in answers)
    held = holder(config.data_path) if not answers and not failed else None  # no socket answered: is one running?
    running = bool(answers or failed) or held is not None
    return Poke(sum(int(a.get("ended", 0)) for a in answers), reached, failed, running, held[0] if held else None)


def orders_generation(store: Any) -> int:
    """The generation of the last session order in `store` (0: none): what a command that writes an order passes to
    `poke` as `after`."""
    return OrderBook.decode(store.app_orders()).generation
