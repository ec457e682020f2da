"""Files at rest are kefu's own: every directory kefu makes is 0700 and every file 0600 (issue #13, point 9).

Theory of operation
-------------------
The data directory holds every message, the apps' verifiers and the server's keys, so no other local user may read
any of it. Three layers, so that none has to be trusted alone:

1. Every kefu process sets its umask to 0077 first thing (`private_umask`: `kefu`'s main and the worker processes;
   the processes they start inherit it). What anything then creates, kefu's code or a library's (LMDB's data.mdb
   and lock.mdb, log segments, archives, backups), is private whatever umask started kefu. systemd's UMask=0077 is
   the same line again, not the only one.
2. The places that create files and directories ask for the private modes explicitly too (`private_dir`, LMDB's
   ``mode``, os.open's mode), so that a library call made under a wider umask (a test, a tool importing kefu) makes
   private files as well.
3. At start, `kefu serve` narrows what an older kefu, a copy or an operator left wider (`tighten`, one warning line
   per path); `kefu check-config` reports the same paths (`too_wide`) and changes nothing.

A mode is "too wide" when any group or other bit is set; the mode wanted keeps the owner's bits and clears the rest
(0755 -> 0700, 0644 -> 0600). Symbolic links are neither followed nor changed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .. import log

__all__ = ["DIR_MODE", "FILE_MODE", "PRIVATE_UMASK", "WideMode", "private_dir", "private_umask", "tighten", "too_wide"]

PRIVATE_UMASK: Final = 0o077
DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
_OTHERS: Final = 0o077
"""The group's and others' permission bits: none may be set on anything under the data directory."""


def private_umask() -> int:
    """Make everything this process (and its children) creates private; returns the previous umask."""
    return os.umask(PRIVATE_UMASK)


def private_dir(path: Path) -> Path:
    """`path` as a directory, made with its missing parents 0700 (mkdir's mode passes through the umask, so each
    one made here is chmod'ed too); directories that exist are left as they are (`tighten` is for them)."""
    path = Path(path)
    missing = []
    at = path
    while not at.exists():
        missing.append(at)
        at = at.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by another process: theirs to set
            continue
        os.chmod(directory, DIR_MODE)
    return path


@dataclass(frozen=True, slots=True)
class WideMode:
    """A path whose mode lets other users in: its mode now and the one wanted."""

    path: Path
    mode: int
    want: int

    def __str__(self) -> str:
        kind = "directory" if stat.S_ISDIR(self.mode) else "file"
        return f"{self.path}: {kind} mode {self.mode & 0o7777:04o}, wanted {self.want:04o}"


def too_wide(root: Path) -> Iterator[WideMode]:
    """Every directory and regular file at or under `root` whose mode has a group or other bit (none if `root` is
    missing). Symbolic links are not followed."""
    root = Path(root)
    try:
        top = root.lstat()
    except FileNotFoundError:
        return
    yield from _check(root, top)
    if not stat.S_ISDIR(top.st_mode):
        return
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(directory) / name
            try:
                yield from _check(path, path.lstat())
            except FileNotFoundError:  # removed meanwhile (a recycled log segment, a temporary file)
                continue


def _check(path: Path, st: os.stat_result) -> Iterator[WideMode]:
    if (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)) and st.st_mode & _OTHERS:
        yield WideMode(path, st.st_mode, stat.S_IMODE(st.st_mode) & DIR_MODE)


def tighten(root: Path) -> list[WideMode]:
    """Narrow every too-wide mode at or under `root` (see `too_wide`), logging one warning per path; a path that
    cannot be changed (another user's) is logged and left. Returns what was found."""
    found = list(too_wide(root))
    for wide in found:
        mode, want = f"{wide.mode & 0o7777:04o}", f"{wide.want:04o}"
        try:
            os.chmod(wide.path, wide.want, follow_symlinks=False)
        except OSError as exc:
            log.warning("files.mode_too_wide", path=str(wide.path), mode=mode, want=want, reason=exc.strerror)
            continue
        log.warning("files.mode_narrowed", path=str(wide.path), mode=mode, now=want)
    return found
