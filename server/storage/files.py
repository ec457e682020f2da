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


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` is a write refused for want of room (`DISK_FULL`)."""
    return isinstance(exc, OSError) and exc.errno in DISK_FULL


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path (a directory: so that a rename or a new name in it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
