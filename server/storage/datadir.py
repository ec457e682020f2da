"""The data directory's owner lock, and restoring the store from a backup (`kefu restore`).

Theory of operation
-------------------
`kefu serve` holds an exclusive flock(2) on data_dir/kefu.lock for as long as it runs; the kernel drops the lock
when the process exits, however it exits, so a kill -9 leaves no stale lock. The file holds the pid of the holder
(for messages only; the lock is the flock, not the file) and its mtime is when that server started. A second
`kefu serve` and `kefu restore` try the same lock without waiting and refuse while it is held. The commands that
are safe beside a running server (`app add`, `backup`, `keygen`, `key retire`) take no lock; `key retire` only
peeks at it (`holder`).

Restore, under the lock::

    BACKUP/data.mdb --check--> data_dir/store.restoring/data.mdb (copied, fsync'd, checked again)
    data_dir/store    --rename-> data_dir/store.before-restore-<UTC time>    (nothing is deleted)
    data_dir/store.restoring --rename-> data_dir/store, then data_dir fsync'd

The store directory holds the write-ahead log too (store/log/), so the old store is set aside with its log, and the
restored one starts a new log: a backup is indexed completely (`maintenance.backup`). The data directory's
deployment marker (keys/deployment, `kefu.server.storage.deployment`) then names the restored store's deployment: a
backup of another deployment is accepted (restoring is the operator's deliberate act) and logged as a warning naming
both; a backup from before the marker keeps the marker, whose id the next start stamps into the store. A backup is
also checked against LMDB's meta pages (`preflight`) before it is mapped. A crash before the first
rename leaves the store untouched (and a store.restoring the next restore replaces); a crash between the two
renames leaves no store, and running the restore again completes it. Run as root, the new files are given to the
owner of the data directory, so the service user can still open them.

The store directory was once named ``wal`` (it held only LMDB). `migrate_store_dir` renames ``data_dir/wal`` to
``data_dir/store`` when a writer first opens it: one rename, then the directory fsync'd, so a crash leaves either
name and the next start finishes the move. A writer then leaves a small file named ``wal``, which an older kefu
(downgraded onto this data directory) fails to open as its store, instead of starting an empty one there.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .. import log
from .deployment import DEPLOYMENT_KEY, read_marker, write_marker
from .files import disk_full, fsync_path
from .modes import DIR_MODE, FILE_MODE, private_dir
from .preflight import DamagedStore, check_data_file

__all__ = [
    "LOCK_FILE",
    "OLD_STORE_MARKER",
    "BackupInfo",
    "DataDirBusy",
    "DataDirLock",
    "RestoreError",
    "holder",
    "inspect_backup",
    "lock_data_dir",
    "migrate_store_dir",
    "restore",
]

LOCK_FILE = "kefu.lock"
OLD_STORE_DIR = "wal"
OLD_STORE_MARKER: Final = (
    "This data directory's store is in store/ (schema 2, with a write-ahead log). Versions of kefu from before it\n"
    "looked for it here and cannot read it: to go back to one, restore a backup made before the upgrade\n"
    "(systemd/OPERATIONS.md, 'Upgrades that change the store are one-way').\n"
)
"""What a writer leaves under the store's old name (a file where an older kefu expects its store's directory)."""
"""What the store directory was called before it held the write-ahead log."""
DATA_FILE = "data.mdb"
"""The one file of an LMDB environment that `kefu backup` copies (lock.mdb is per-process state)."""


class DataDirBusy(Exception):
    """Another process (a running `kefu serve`, or a restore) holds the data directory."""


class RestoreError(Exception):
    """The backup cannot be restored: missing, unfinished, not a kefu store, or from a newer kefu."""


# --- the lock -------------------------------------------------------------------------------------------


def _give_to_owner_of(path: Path, like: Path) -> None:
    """When running as root, chown `path` to the owner of `like` (the service user must open what root made)."""
    if os.geteuid() == 0:
        want, have = like.stat(), path.stat()
        if (have.st_uid, have.st_gid) != (want.st_uid, want.st_gid):
            os.chown(path, want.st_uid, want.st_gid)


@dataclass(slots=True)
class DataDirLock:
    """A held lock on a data directory; `release()` (or exiting the process) lets it go."""

    path: Path
    fd: int | None

    def release(self) -> None:
        """Drop the lock (the file stays: unlinking lock files races with the next locker)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return text if text.isdigit() else "unknown"


def lock_data_dir(data_dir: Path) -> DataDirLock:
    """Take data_dir/kefu.lock exclusively, without waiting; DataDirBusy if another process holds it."""
    data_dir = Path(data_dir)
    path = data_dir / LOCK_FILE
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise DataDirBusy(
            f"{data_dir} is in use by another kefu process (pid {pid}): stop it first (systemctl stop kefu)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    if created:
        _give_to_owner_of(path, data_dir)
    mine = f"{os.getpid()}\n".encode()
    try:  # over the old pid, then cut to length: the file keeps its block, which a full disk could not give back
        os.pwrite(fd, mine, 0)  # also sets the mtime: when this holder started
        os.ftruncate(fd, len(mine))
    except OSError as exc:
        if not disk_full(exc):
            os.close(fd)
            raise
        os.utime(fd)  # the pid is for messages only (the lock is the flock): on a full disk, the start time still
        log.warning("datadir.pid_not_written", path=str(path), reason=exc.strerror)
    return DataDirLock(path, fd)


def holder(data_dir: Path) -> tuple[int | None, float] | None:
    """(pid or None, start time) of the process holding data_dir's lock; None when nobody holds it."""
    path = Path(data_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            return (int(pid) if pid.isdigit() else None), os.fstat(fd).st_mtime
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def migrate_store_dir(store_path: Path, *, readonly: bool = False) -> Path:
    """The directory to open for the store at `store_path`: its old name's (data_dir/wal) is renamed to it first,
    durably, unless `readonly` (then the old one is read where it is). A writer then leaves a small file under the
    old name (`OLD_STORE_MARKER`), so that a kefu from before the move, started on this data directory by a
    downgrade, fails to open its store there instead of beginning an empty one."""
    store_path = Path(store_path)
    old = store_path.with_name(OLD_STORE_DIR)
    if old.is_dir() and not store_path.exists():
        if readonly:
            return old
        old.rename(store_path)
        fsync_path(store_path.parent)
    if not readonly and not old.exists() and store_path.parent.is_dir():
        with contextlib.suppress(OSError):  # a guard for downgrades, not needed to serve
            fd = os.open(old, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
            with os.fdopen(fd, "w") as marker:
                marker.write(OLD_STORE_MARKER)
    return store_path


# --- restore --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BackupInfo:
    """What `inspect_backup` found in a backup."""

    path: Path
    schema_version: int
    entries: dict[str, int]
    """Entries per database (messages, apps, ...)."""
    size_bytes: int
    deployment: str | None = None
    """The deployment id stored in the backup (`kefu.server.storage.deployment`); None in a backup from before it."""


def inspect_backup(backup: Path) -> BackupInfo:
    """Open `backup` read-only (creating nothing in it) and check that it is a kefu store this build can serve."""
    import lmdb  # noqa: PLC0415 - the server extra, needed only here

    from .schema import CORE_TABLES, MAX_TABLES, SCHEMA_KEY, SCHEMA_VERSION  # noqa: PLC0415

    backup = Path(backup)
    if backup.name.endswith(".partial"):
        raise RestoreError(f"{backup} is an unfinished backup (kefu backup renames it when complete)")
    data = backup / DATA_FILE
    if not data.is_file():
        raise RestoreError(f"{backup}: no {DATA_FILE}: not a directory made by kefu backup")
    try:
        check_data_file(data)  # a backup cut short is refused here rather than mapped (SIGBUS)
    except DamagedStore as exc:
        raise RestoreError(str(exc)) from None
    try:
        env = lmdb.open(str(backup), readonly=True, lock=False, subdir=True, max_dbs=MAX_TABLES)
    except lmdb.Error as exc:
        raise RestoreError(f"{backup}: not an LMDB environment: {exc}") from None
    try:
        with env.begin() as txn:
            handles = {}
            for name in CORE_TABLES:
                with contextlib.suppress(lmdb.NotFoundError):
                    handles[name] = env.open_db(name.encode(), txn=txn, create=False)
            raw = txn.get(SCHEMA_KEY, db=handles["meta"]) if "meta" in handles else None
            if raw is None or len(raw) != 4:
                raise RestoreError(f"{backup}: no schema version: not a kefu store")
            version = struct.unpack("!I", raw)[0]
            if version > SCHEMA_VERSION:
                raise RestoreError(f"{backup}: schema version {version}, newer than {SCHEMA_VERSION}: upgrade kefu")
            entries = {name: int(txn.stat(db)["entries"]) for name, db in handles.items()}
            deployment = txn.get(DEPLOYMENT_KEY, db=handles["meta"])
    except lmdb.Error as exc:
        raise RestoreError(f"{backup}: cannot be read: {exc}") from None
    finally:
        env.close()
    return BackupInfo(backup, version, entries, data.stat().st_size, deployment.hex() if deployment else None)


def _set_aside_name(store_path: Path, now: float) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    candidates = (store_path.with_name(f"{store_path.name}.before-restore-{stamp}{s}") for s in _suffixes())
    return next(p for p in candidates if not p.exists())


def _suffixes() -> Iterator[str]:
    yield ""
    n = 1
    while True:
        yield f"-{n}"
        n += 1


def _stage(backup: Path, staging: Path, data_dir: Path) -> BackupInfo:
    """Copy the backup's data file into `staging`, durably, give it to the data dir's owner, and check the copy."""
    if staging.exists():
        shutil.rmtree(staging)  # left by an interrupted restore
    staging.mkdir(mode=DIR_MODE)
    staging.chmod(DIR_MODE)
    copy = staging / DATA_FILE
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)  # O_EXCL: never clobber
    with (backup / DATA_FILE).open("rb") as src, os.fdopen(fd, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())
    copy.chmod(FILE_MODE)
    fsync_path(staging)
    for path in (copy, staging):
        _give_to_owner_of(path, data_dir)
    return inspect_backup(staging)


def restore(
    backup: Path,
    data_dir: Path,
    store_path: Path,
    *,
    now: float | None = None,
    check: Callable[[Path], None] | None = None,
) -> tuple[BackupInfo, Path | None]:
    """Replace the store at `store_path` by the backup; returns (what was restored, where the old store went).

    Refuses (DataDirBusy) while a server holds the data directory, and (RestoreError) a backup that is not a
    complete kefu store of a schema this build knows. The current store is renamed aside, never deleted.
    """
    data_dir, store_path = Path(data_dir), Path(store_path)
    private_dir(data_dir)
    with lock_data_dir(data_dir):
        inspect_backup(backup)
        migrate_store_dir(store_path)  # an old data_dir/wal is set aside under the new name
        info = _stage(Path(backup), store_path.with_name(store_path.name + ".restoring"), data_dir)
        if check is not None:  # the staged copy verified (kefu.server.admin.verify.restore_check); raises RestoreError
            check(store_path.with_name(store_path.name + ".restoring"))
        aside = None
        if store_path.exists():
            aside = _set_aside_name(store_path, time.time() if now is None else now)
            store_path.rename(aside)
        store_path.with_name(store_path.name + ".restoring").rename(store_path)
        fsync_path(store_path.parent)
        _adopt_deployment(data_dir, info.deployment)
    return BackupInfo(Path(backup), info.schema_version, info.entries, info.size_bytes, info.deployment), aside


def _adopt_deployment(data_dir: Path, restored: str | None) -> None:
    """After a restore, the marker names the restored store's deployment (`kefu.server.storage.deployment`): a backup
    of another deployment is restored on purpose, and said so; one from before the marker is stamped at the next
    start with the marker's id."""
    if restored is None:
        return
    marker = read_marker(data_dir)
    if marker is not None and marker.id == restored:
        return
    write_marker(data_dir, restored)
    if marker is not None:
        note = "the backup restored is of another deployment: this data directory now holds that one"
        log.warning("deployment.replaced", deployment=restored, was=marker.id, note=note)
