"""Resumption tickets claimed once per host, whichever gateway process a client resumes on (spec section 5.6).

Theory of operation: the protocol core claims a ticket's id when its binder verifies (`TicketGuard.claim`). With
several gateway processes the claims must be shared, synchronously (the handshake state machine asks and waits), and
survive a gateway that is killed mid-claim. A small LMDB environment does all three: a claim is one write
transaction (get, put; about 10 us), LMDB's writer lock serialises two gateways claiming the same ticket (exactly one
wins), and that lock is a robust mutex the kernel releases when its holder dies.

The environment is not synced (a claim that a power loss takes back can only let one ticket resume twice) and is
made afresh by the supervisor at every start: tickets are sealed under keys that rotate at every start (a ticket
survives one restart), so this is the same window as a single process's memory of claims had.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path
from typing import Final

import lmdb

from kefu.protocol.tickets import TicketGuard

__all__ = ["CLAIMS_DIR", "SharedTicketGuard", "reset_claims"]

CLAIMS_DIR: Final = "ticket-claims"
MAP_SIZE: Final = 256 << 20
"""Room for TicketGuard.MAX_ENTRIES claims (a 16-byte key and an 8-byte expiry each, with LMDB's overhead)."""
_EXPIRES = struct.Struct("!d")


def reset_claims(run_dir: Path) -> Path:
    """A fresh, empty claims environment under `run_dir` (the supervisor, before any gateway starts)."""
    path = run_dir / CLAIMS_DIR
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o700)
    lmdb.open(str(path), map_size=MAP_SIZE, sync=False, metasync=False).close()
    return path


class SharedTicketGuard(TicketGuard):
    """A `TicketGuard` whose claims every gateway process of the host shares."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._env = lmdb.open(str(path), map_size=MAP_SIZE, sync=False, metasync=False, create=False)

    def claim(self, ticket_id: bytes, expires_at: float, *, now: float) -> bool:
        """True the first time `ticket_id` is claimed on this host before it expires; False afterwards (and, failing
        closed, when the table is full even after purging: the client then makes a full handshake)."""
        for attempt in range(2):
            try:
                with self._env.begin(write=True) as txn:
                    raw = txn.get(ticket_id)
                    if raw is not None and _EXPIRES.unpack(raw)[0] > now:
                        return False
                    txn.put(ticket_id, _EXPIRES.pack(expires_at))
                    return True
            except lmdb.MapFullError:
                if attempt:
                    return False
                self.purge(now=now)
        return False

    def purge(self, *, now: float) -> None:
        """Forget claims whose tickets have expired."""
        with self._env.begin(write=True) as txn, txn.cursor() as cur:
            expired = [key for key, value in cur if _EXPIRES.unpack(value)[0] <= now]
            for key in expired:
                txn.delete(key)

    def __len__(self) -> int:
        return int(self._env.stat()["entries"])

    def close(self) -> None:
        """Close the environment."""
        self._env.close()
