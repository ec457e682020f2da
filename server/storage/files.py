"""Small durable-file helpers shared by the store, its maintenance and the key files."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Final

__all__ = ["DISK_FULL", "disk_full", "fsync_path"]

DISK_FULL: Final = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
"""The errors of a write that found no room: the file system is full, the user's quota is, or the file may not grow
(RLIMIT_FSIZE). What was there before the write is intact; trying again once there is room can succeed."""


_DISK_FULL_TEXT: Final = tuple(os.strerror(code) for code in DISK_FULL)


LOW_ROOM_BYTES: Final = 1 << 20
"""Free space under which a write error of unclear cause is taken for a full disk (`disk_full` with `where`)."""


def disk_full(exc: BaseException, where: Path | None = None) -> bool:
    """Whether `exc` is a write refused for want of room (`DISK_FULL`): an OSError with one of those errnos, or an
    error that reports one only in its text (LMDB's: ``lmdb.DiskError("mdb_txn_commit: No space left on device")``).
    With `where`, also any error while the file system holding `where` has less than LOW_ROOM_BYTES free: LMDB reports
    a write cut short by a full disk as an I/O error."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL:
        return True
    if not isinstance(exc, OSError) and str(exc).endswith(_DISK_FULL_TEXT):
        return True
    if where is None:
        return False
    try:
        room = os.statvfs(where)
    except OSError:
        return False
    return room.f_bavail * room.f_frsize < LOW_ROOM_BYTES


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path (a directory: so that a rename or a new name in it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
