"""The deployment marker: an emptied store is not a fresh install.

Theory of operation
-------------------
LMDB starts a new environment in an empty or missing data.mdb, so before this check a store truncated to 0 bytes,
deleted, or set aside with its directory came back as a brand-new store, with a new development app, every message
and app silently gone. A data directory therefore remembers that it holds a deployment:

- At initialisation (the first open for writing of a new store) a random deployment id is stored in the store's
  ``meta`` table (key ``deployment_id``, 16 bytes), durably, and then written to the marker file
  data_dir/keys/deployment (0600; the id and the creation time, text). Store first, then marker: a crash between
  the two leaves a store whose id the next start writes to the marker.
- A deployment older than the marker gets one at its next start when its store holds anything (apps, messages):
  a new id, stored, then the marker.
- Every open for writing (`kefu serve`, `kefu app ...`, `kefu backup`: `open_checked`, called by
  `kefu.server.wiring.open_store`) compares the two, before and after the store is mapped:

  ==========================  ====================================  =============================================
  marker                      store                                 outcome
  ==========================  ====================================  =============================================
  id X                        missing, 0 bytes                      refused, nothing created
  id X                        id X                                  opened
  id X                        id Y                                  refused: another deployment's store
  id X                        no id, holds data                     a store from before the marker: stamped X
  id X                        no id, empty                          refused (an empty LMDB file was put there)
  none                        id X                                  marker X written (crash at first start,
                                                                    restored store on a new host)
  none                        no id, holds data                     a deployment from before the marker: new id
  none, keys/ticket.key       missing or empty                      refused: a server ran here (it wrote the
                                                                    ticket key) and its store is gone
  none                        missing or empty                      a fresh install: new id, store, marker
  ==========================  ====================================  =============================================

The marker lives in keys/ so that it travels with the keys' backup: a host rebuilt from the keys' backup that is
started before `kefu restore` is refused instead of starting empty. A fresh store with the same server keys is a new
data directory into which only the signing keys (sm2-N.key, ed25519-N.key) are copied.

`kefu restore` (`kefu.server.storage.datadir.restore`) is the operator saying "this is the store now": a backup of
this deployment (or from before the marker) is restored as is; a backup of another deployment is restored too and the
marker rewritten to its id, with a warning naming both ids.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .. import log
from .files import fsync_path
from .modes import FILE_MODE, private_dir
from .preflight import DATA_FILE, OpenRefused

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "DEPLOYMENT_KEY",
    "MARKER_FILE",
    "Deployment",
    "DeploymentMismatch",
    "open_checked",
    "read_marker",
    "write_marker",
]

DEPLOYMENT_KEY: Final = b"deployment_id"
"""``meta`` key of the deployment id in the store."""
MARKER_FILE: Final = "deployment"
"""The marker's name in data_dir/keys."""
KEYS_DIR: Final = "keys"
TICKET_FILE: Final = "ticket.key"
"""Written by every `kefu serve` start (kefu.server.identity.keys): a server ran in this data directory."""
ID_BYTES: Final = 16
_HEADER: Final = (
    "# kefu deployment marker (systemd/OPERATIONS.md, 'The deployment marker'): the store of this data directory\n"
    "# belongs to this deployment. If kefu refuses to start, restore a backup (kefu restore BACKUP); do not delete\n"
    "# this file to make it start: it would start an empty store.\n"
)


class DeploymentMismatch(OpenRefused):
    """The data directory shows an existing deployment and the store is missing, empty or another's: not opened."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """What the marker says."""

    id: str
    """32 hex digits."""
    created: str
    """UTC, ISO 8601."""


def marker_path(data_dir: Path) -> Path:
    """data_dir/keys/deployment."""
    return Path(data_dir) / KEYS_DIR / MARKER_FILE


def read_marker(data_dir: Path) -> Deployment | None:
    """The marker of `data_dir`, None if there is none. DeploymentMismatch if it is there but unreadable."""
    path = marker_path(data_dir)
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise DeploymentMismatch(f"{path}: the deployment marker cannot be read ({exc})") from None
    fields = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line and not line.startswith("#"))
    found = fields.get("id", "")
    if len(found) != 2 * ID_BYTES or any(c not in "0123456789abcdef" for c in found):
        raise DeploymentMismatch(f"{path}: the deployment marker holds no valid id: {_WHAT_TO_DO}")
    return Deployment(found, fields.get("created", "?"))


def write_marker(data_dir: Path, deployment_id: str) -> Deployment:
    """Write (or replace) the marker, durably: a temporary file fsync'd, renamed into place, the directory fsync'd."""
    directory = private_dir(Path(data_dir) / KEYS_DIR)
    made = Deployment(deployment_id, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    tmp = directory / f".{MARKER_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(f"{_HEADER}id = {made.id}\ncreated = {made.created}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, directory / MARKER_FILE)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(directory)
    return made


_WHAT_TO_DO = (
    "to bring this deployment's data back, restore a backup (kefu restore BACKUP, systemd/OPERATIONS.md); for a new, "
    "empty deployment, move the data directory aside and start with a new one"
)


def open_checked(data_dir: Path, store_path: Path, open_store: Callable[[], Store]) -> Store:
    """`open_store()` (the store at `store_path`, for writing), refused with DeploymentMismatch when the data
    directory's marker and the store disagree (the table in the module docstring); a marker written when missing."""
    data_dir = Path(data_dir)
    marker = read_marker(data_dir)
    data = Path(store_path) / DATA_FILE
    if not _has_data_file(data):
        _refuse_missing(data_dir, f"{data} is {'empty (0 bytes)' if data.exists() else 'missing'}", marker)
    store = open_store()
    try:
        _reconcile(data_dir, data, marker, store)
    except BaseException:
        store.close()
        raise
    return store


def _has_data_file(data: Path) -> bool:
    try:
        return data.stat().st_size > 0
    except FileNotFoundError:
        return False


def _refuse_missing(data_dir: Path, what: str, marker: Deployment | None) -> None:
    """A missing or empty store is a new one only where no deployment was; `what` says how it was found."""
    if marker is not None:
        raise DeploymentMismatch(
            f"{what}, but {marker_path(data_dir)} says this data directory holds deployment {marker.id} "
            f"(created {marker.created}): its messages and apps are not there. Refusing to start an empty store in "
            f"its place: {_WHAT_TO_DO}"
        )
    ticket = Path(data_dir) / KEYS_DIR / TICKET_FILE
    if ticket.exists():
        raise DeploymentMismatch(
            f"{what}, but a server ran in this data directory before ({ticket} exists) and its store is "
            f"gone. Refusing to start an empty store in its place: {_WHAT_TO_DO}"
        )


def _reconcile(data_dir: Path, data: Path, marker: Deployment | None, store: Store) -> None:
    stored = _stored_id(store)
    if marker is not None and stored is not None and stored != marker.id:
        raise DeploymentMismatch(
            f"{data} belongs to deployment {stored}, but {marker_path(data_dir)} says this data directory holds "
            f"deployment {marker.id} (created {marker.created}): the store was replaced by another deployment's. "
            f"Refusing to serve it: {_WHAT_TO_DO} (kefu restore also accepts another deployment's backup, on purpose)"
        )
    if stored is None:
        if not _holds_data(store):
            _refuse_missing(data_dir, f"{data} is an empty store (no app, no message)", marker)
        stored = marker.id if marker is not None else secrets.token_hex(ID_BYTES)
        store.writing(lambda txn: txn.put(DEPLOYMENT_KEY, bytes.fromhex(stored), db=store.handle("meta")))
        log.event("deployment.stamped", deployment=stored, store=str(data))
    if marker is None:
        made = write_marker(data_dir, stored)
        log.event("deployment.marker_written", deployment=made.id, path=str(marker_path(data_dir)))


def _stored_id(store: Store) -> str | None:
    with store.reading() as txn:
        raw = txn.get(DEPLOYMENT_KEY, db=store.handle("meta"))
    return raw.hex() if raw is not None and len(raw) == ID_BYTES else None


def _holds_data(store: Store) -> bool:
    """Any entry in a table other than ``meta`` (an app, a message, a conversation, a desk record)."""
    with store.reading() as txn:
        return any(txn.stat(handle)["entries"] for name, handle in store.handles() if name != "meta")
