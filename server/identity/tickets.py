"""Resumption tickets claimed once per host, whichever gateway process a client resumes on, and across restarts
(spec section 5.6).

Theory of operation: the protocol core claims a ticket's id when its binder verifies (`TicketGuard.claim`). The claims
must be shared by every gateway process, synchronously (the handshake state machine asks and waits), survive a gateway
that is killed mid-claim, and survive a restart of the server: ticket-sealing keys rotate at every start but the
previous one still opens tickets (a ticket survives one restart), so a claim must last as long as its ticket, not as
long as the process. A small LMDB environment in the data directory (``ticket-claims/``, 0700, its files 0600) does
all of it: a claim is one write transaction (get, put; about 10 us), LMDB's writer lock serialises two gateways
claiming the same ticket (exactly one wins), that lock is a robust mutex the kernel releases when its holder dies, and
the environment is a file that outlives the processes. Both `kefu serve` modes use it (workers and single-process).

At start (`open_claims`) expired claims are purged, and nothing else: the claims of tickets still valid are kept.
An environment that cannot be read (damaged by a power loss, see below) is deleted and a new one made, with a warning:
the tickets still valid may then be resumed once more, the same window a lost claim opens.

The environment is not synced (sync=False, metasync=False). A claim is written to the page cache by the transaction's
commit, and the page cache belongs to the kernel, not to the process: a kill -9, a crash or a restart of kefu loses
no claim. Only a power loss or a kernel crash can take back the claims not yet written back (the kernel's writeback
delay, about 30 s), each of which could then let one ticket resume twice within its lifetime. Syncing would close
that window at the cost of one fdatasync per claim under the writer lock, which caps resumptions per second at the
disk's sync rate in exactly the reconnect storm after a restart that tickets exist for.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
import time
from pathlib import Path
from typing import Final

import lmdb

from kefu.protocol.tickets import TicketGuard

from .. import log
from ..storage.files import disk_full
from ..storage.modes import FILE_MODE, private_dir
from ..storage.preflight import reserve_lock_file

__all__ = ["CLAIMS_DIR", "PURGE_INTERVAL_S", "SharedTicketGuard", "claims_path", "open_claims", "purge_forever"]

CLAIMS_DIR: Final = "ticket-claims"
OLD_RUN_DIR: Final = "run"
"""Where the claims were kept (emptied at every start) before they outlived restarts: removed at start."""
MAP_SIZE: Final = 256 << 20
"""Room for TicketGuard.MAX_ENTRIES claims (a 16-byte key and an 8-byte expiry each, with LMDB's overhead)."""
PURGE_INTERVAL_S: Final = 60.0
"""How often a running server forgets expired claims (a claim is 40 bytes or so: a minute of them is little)."""
_EXPIRES = struct.Struct("!d")


def claims_path(data_dir: Path) -> Path:
    """The claims environment of the server on `data_dir`."""
    return Path(data_dir) / CLAIMS_DIR


def _open_env(path: Path, *, create: bool) -> lmdb.Environment:
    if create:
        reserve_lock_file(path)  # a full disk is then an OSError here, not a SIGBUS in LMDB
    return lmdb.open(str(path), map_size=MAP_SIZE, sync=False, metasync=False, create=create, mode=FILE_MODE)


def open_claims(data_dir: Path, *, now: float | None = None) -> Path:
    """The claims environment of `data_dir`, made if missing, its expired claims purged (once per server start,
    before any gateway opens it); one that cannot be read is made afresh."""
    shutil.rmtree(Path(data_dir) / OLD_RUN_DIR / CLAIMS_DIR, ignore_errors=True)
    with contextlib.suppress(OSError):
        (Path(data_dir) / OLD_RUN_DIR).rmdir()  # only if empty: kefu kept nothing else there
    path = private_dir(claims_path(data_dir))
    now = time.time() if now is None else now
    try:
        guard = SharedTicketGuard(path, create=True)
        try:
            guard.purge(now=now)
        finally:
            guard.close()
    except lmdb.Error as exc:
        if disk_full(exc):  # the claims are intact, only the purge found no room: keep them (a reset would lose them)
            log.warning("tickets.claims_not_purged", path=str(path), reason=str(exc))
            return path
        log.warning("tickets.claims_reset", path=str(path), reason=str(exc))
        shutil.rmtree(path)
        private_dir(path)
        _open_env(path, create=True).close()
    return path


class SharedTicketGuard(TicketGuard):
    """A `TicketGuard` whose claims every gateway process of the host shares."""

    def __init__(self, path: Path, *, create: bool = False) -> None:
        """Open the claims at `path` (made by `open_claims`; `create` only there)."""
        super().__init__()
        self._env = _open_env(path, create=create)

    def claim(self, ticket_id: bytes, expires_at: float, *, now: float) -> bool:
        """True the first time `ticket_id` is claimed on this host before it expires; False afterwards (and, failing
        closed, when the table is full even after purging or cannot be read: the client then makes a full
        handshake)."""
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
            except lmdb.Error as exc:  # a damaged environment: fail closed, the next start makes a new one
                log.error("tickets.claim_failed", reason=str(exc))
                return False
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


async def purge_forever(guard: SharedTicketGuard) -> None:
    """Forget expired claims every PURGE_INTERVAL_S, in a thread (a purge reads every claim)."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(PURGE_INTERVAL_S)
        await loop.run_in_executor(None, lambda: guard.purge(now=time.time()))
