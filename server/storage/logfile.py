"""The write-ahead log's files: records appended to preallocated segments, one fdatasync per group commit.

Theory of operation
-------------------
The log is a directory of segment files named by their number (``0000000000000001.wal``, ...), each
`segment_bytes` long, written out with zeros before first use (so that an fdatasync of an append writes the data
and no file-size or extent metadata) and recycled by renaming once the store has indexed past them. A record is::

    crc u32 | length u32 | lsn u64 | kind u8 | payload[length]

where lsn counts records from 1 and crc is CRC-32 (zlib's) of the previous record's crc followed by the rest of the
header and the payload: the records form a chain (seeded with the log's random id, `schema.LogPosition.first`).
Reading goes record after record from a position (segment, offset, lsn, previous crc) and stops at the first record
that is torn (short, bad checksum), stale (a recycled segment's old content: its lsn and chain do not match) or
foreign (another log's: its chain does not match); no marker is needed. When a group commit's next record does
not fit in the current segment, the writer makes what it wrote durable and goes on at offset 0 of the next segment,
so a reader that finds no valid record where one could be tries the start of the next segment, once. The writer
also starts a new segment every time it is opened, so it never writes behind a torn tail.

A group commit is one pwrite of its records and one fdatasync (two of each when it crosses into a new segment). The
pwrite covers whole pages: it starts at the page holding the first new byte (its earlier bytes rewritten from
memory) and is padded with zeros to the end of the last, so the kernel never reads a page of a recycled segment
before writing it, and never dirties part of one. What it costs the disk is counted that way (`written_bytes`).

Recycling (`SegmentFiles.maintain`, on the indexer's thread) renames a segment wholly before the indexed position
to the next free number (keeping `SPARE_SEGMENTS` ready ahead of the writer; the rest are deleted) and fsyncs the
directory before the writer may use it. A backup in another process (`maintenance.backup`) holds a shared flock on
``backup.lock`` while it copies the store and reads the log after the copy's position; recycling takes that lock
exclusively without waiting and skips its turn while a backup holds it, so a backup never reads a reused segment.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final

from .files import disk_full, fsync_path
from .modes import private_dir
from .schema import LogPosition

__all__ = [
    "HEADER_SIZE",
    "PAGE_SIZE",
    "SPARE_SEGMENTS",
    "LogFull",
    "LogWriter",
    "SegmentFiles",
    "read_log",
    "segment_name",
]

log = logging.getLogger(__name__)

HEADER: Final = struct.Struct("!IIQB")
"""crc, length, lsn, kind."""
HEADER_SIZE: Final = HEADER.size
_CHAINED: Final = struct.Struct("!IIQB")
"""What a record's crc covers before its payload: the previous crc, length, lsn, kind."""
PAGE_SIZE: Final = 4096
"""The unit an fdatasync writes: a partially written page costs a whole one."""
SPARE_SEGMENTS: Final = 2
"""Segments kept ready ahead of the writer: a switch never waits for a 16 MiB zero-fill while one is ready."""
PIN_FILE: Final = "backup.lock"
SUFFIX: Final = ".wal"


def segment_name(number: int) -> str:
    """A segment's file name."""
    return f"{number:016x}{SUFFIX}"


def record_crc(prev_crc: int, lsn: int, kind: int, payload: bytes) -> int:
    """The checksum of a record: over the previous record's, the header's other fields and the payload."""
    return zlib.crc32(payload, zlib.crc32(_CHAINED.pack(prev_crc, len(payload), lsn, kind)))


# --- reading ---------------------------------------------------------------------------------------------------


def _load(directory: Path, number: int) -> bytes | None:
    try:
        return (directory / segment_name(number)).read_bytes()
    except FileNotFoundError:
        return None


def _parse(data: bytes, pos: LogPosition) -> tuple[int, bytes, int] | None:
    """(kind, payload, crc) of the record at `pos` in segment `data`, if it is the valid next one."""
    if pos.offset + HEADER_SIZE > len(data):
        return None
    crc, length, lsn, kind = HEADER.unpack_from(data, pos.offset)
    end = pos.offset + HEADER_SIZE + length
    if lsn != pos.lsn or end > len(data):
        return None
    payload = data[pos.offset + HEADER_SIZE : end]
    return (kind, payload, crc) if record_crc(pos.crc, lsn, kind, payload) == crc else None


def read_log(directory: Path, start: LogPosition) -> Iterator[tuple[int, bytes, LogPosition]]:
    """(kind, payload, position after it) of every valid record from `start` on, in order."""
    pos = start
    data = _load(directory, pos.segment) if pos.segment else None
    jumped = False
    while True:
        found = _parse(data, pos) if data is not None else None
        if found is None:
            if jumped:
                return
            data = _load(directory, pos.segment + 1)
            if data is None:
                return
            pos, jumped = LogPosition(pos.segment + 1, 0, pos.lsn, pos.crc), True
            continue
        kind, payload, crc = found
        pos, jumped = LogPosition(pos.segment, pos.offset + HEADER_SIZE + len(payload), pos.lsn + 1, crc), False
        yield kind, payload, pos


# --- the directory -----------------------------------------------------------------------------------------------


class SegmentFiles:
    """The log directory: opening, preallocating and recycling segments (thread-safe)."""

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self.directory, self.segment_bytes = Path(directory), segment_bytes
        self._lock = threading.Lock()
        self.prealloc_bytes = 0
        """Zeros written to make new segments (not per message: recycled segments need none)."""
        new = not self.directory.exists()
        private_dir(self.directory)
        if new:
            fsync_path(self.directory.parent)

    def numbers(self) -> list[int]:
        """The segment numbers present, ascending."""
        out = []
        for path in self.directory.glob("*" + SUFFIX):
            with contextlib.suppress(ValueError):
                out.append(int(path.name[: -len(SUFFIX)], 16))
        return sorted(out)

    def open(self, number: int) -> int:
        """A read-write fd on segment `number`, full size; made (zero-filled, durably named) if missing."""
        path = self.directory / segment_name(number)
        with self._lock:
            if not path.exists():
                self._install(self._zero_filled(number), number)
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            size = os.fstat(fd).st_size
            if size < self.segment_bytes:  # cut short (by hand, or a smaller segment setting before)
                self._fill(fd, size, self.segment_bytes)
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def maintain(self, indexed: LogPosition, current: int) -> None:
        """Recycle or delete the segments wholly before `indexed`; top the spares after `current` up."""
        old = [n for n in self.numbers() if n < indexed.segment]
        if old:
            with self._pinned() as free:
                if free:
                    self._recycle(old, current)
        while len([n for n in self.numbers() if n > current]) < SPARE_SEGMENTS:
            number = max([current, *self.numbers()]) + 1
            tmp = self._zero_filled(number)
            with self._lock:
                if (self.directory / segment_name(number)).exists():
                    tmp.unlink()
                    continue
                self._install(tmp, number)

    def _recycle(self, old: list[int], current: int) -> None:
        with self._lock:
            present = self.numbers()
            spares = len([n for n in present if n > current])
            top = max([current, *present])
            for number in old:
                path = self.directory / segment_name(number)
                if spares < SPARE_SEGMENTS and path.stat().st_size == self.segment_bytes:
                    top += 1
                    path.rename(self.directory / segment_name(top))
                    spares += 1
                else:
                    path.unlink()
            fsync_path(self.directory)

    @contextlib.contextmanager
    def _pinned(self) -> Iterator[bool]:
        """Whether no backup is reading the log (exclusive, without waiting), held for the block."""
        fd = os.open(self.directory / PIN_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def _zero_filled(self, number: int) -> Path:
        tmp = self.directory / f".{segment_name(number)}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            self._fill(fd, 0, self.segment_bytes)
            os.fsync(fd)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a half-made segment (a full disk) would hold the room it got for nothing
            raise
        finally:
            os.close(fd)
        return tmp

    def _fill(self, fd: int, start: int, end: int) -> None:
        """Write zeros a page per call: the page cache then holds the file in single pages, so an append dirties
        (and the kernel counts, in /proc write_bytes) only the pages it writes, not a large folio around them."""
        zeros = bytes(PAGE_SIZE)
        offset = start
        while offset < end:
            offset += os.pwrite(fd, zeros[: min(PAGE_SIZE - offset % PAGE_SIZE, end - offset)], offset)
        self.prealloc_bytes += end - start

    def _install(self, tmp: Path, number: int) -> None:
        tmp.rename(self.directory / segment_name(number))
        fsync_path(self.directory)


@contextlib.contextmanager
def pinned_for_backup(directory: Path) -> Iterator[None]:
    """Hold off recycling in `directory` (shared flock on its pin file, waiting for a recycling in progress)."""
    if not directory.is_dir():
        yield
        return
    fd = os.open(directory / PIN_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


# --- writing -------------------------------------------------------------------------------------------------------


class LogFull(OSError):
    """The log has no segment to write the batch in and none can be made (the disk is full): nothing of the batch was
    written, and the log is as it was. Not fatal: a later append tries again."""


class LogWriter:
    """Appends group commits to the log. One thread at a time (the group commit's writer thread).

    `sync` is the fdatasync it calls (os.fdatasync; a test may hold it). An OSError from `append` other than `LogFull`
    means the log's state on disk is unknown: the caller must not append again (`GroupCommitter` treats it as fatal).

    A full disk: every segment a batch needs is opened (made, when it is not a spare) before any of the batch is
    written, so a segment that cannot be made refuses the whole batch (`LogFull`) and writes nothing. A writer opened
    on a full disk without a spare segment starts without one and makes it at its first append (or refuses it).
    """

    def __init__(self, files: SegmentFiles, after: LogPosition) -> None:
        """Open for appending after `after` (the end of what replay found): a new segment, continuing its chain."""
        self.files = files
        self.max_record = files.segment_bytes - HEADER_SIZE
        """The largest payload a record may have."""
        self.segment, self.lsn, self.crc = after.segment + 1, after.lsn, after.crc
        self.offset = 0
        self.written_bytes = 0
        """Page-granular bytes made durable by appends (what the disk writes for them)."""
        self.sync: Callable[[int], None] = os.fdatasync
        self._page = b""  # the current page's bytes before `offset` (rewritten with the next append)
        self._ahead: list[int] = []  # the next segments' fds, opened before a batch that reaches them is written
        try:
            self._fd = files.open(self.segment)
        except OSError as exc:
            if not disk_full(exc):
                raise
            self._fd = -1
            log.warning("log segment %d cannot be made (%s): SENDs are refused until there is room", self.segment, exc)

    @property
    def position(self) -> LogPosition:
        """Where the next record goes."""
        return LogPosition(self.segment, self.offset, self.lsn, self.crc)

    def fileno(self) -> int:
        """The current segment's file descriptor."""
        return self._fd

    def append(self, records: Sequence[tuple[int, bytes]]) -> int:
        """Write (kind, payload) records durably; returns the lsn of the first. Raises OSError (LogFull: nothing
        written)."""
        self._open_ahead(records)
        first = self.lsn
        buf = bytearray(self._page)
        for kind, payload in records:
            if self.offset + HEADER_SIZE + len(payload) > self.files.segment_bytes:
                self._write(buf)
                self._next_segment()
                buf = bytearray()
            self.crc = record_crc(self.crc, self.lsn, kind, payload)
            buf += HEADER.pack(self.crc, len(payload), self.lsn, kind)
            buf += payload
            self.offset += HEADER_SIZE + len(payload)
            self.lsn += 1
        self._write(buf)
        return first

    def _write(self, buf: bytearray) -> None:
        """Write `buf` (from the start of the page holding the first new byte to `offset`) as whole pages, padded
        with zeros, and fdatasync: no write ever makes the kernel read a page first, and none dirties part of one."""
        if len(buf) == len(self._page):
            return
        start = self.offset - len(buf)
        tail = len(buf) % PAGE_SIZE
        self._page = bytes(buf[len(buf) - tail :])
        if tail:
            buf += bytes(PAGE_SIZE - tail)
        view = memoryview(buf)
        done = 0
        while done < len(buf):
            done += os.pwrite(self._fd, view[done:], start + done)
        self.sync(self._fd)
        self.written_bytes += len(buf)

    def _open_ahead(self, records: Sequence[tuple[int, bytes]]) -> None:
        """Open the current segment, if the writer has none, and every next one the batch reaches; LogFull if one
        cannot be made for want of room (nothing is written then)."""
        offset, needed = self.offset, 0
        for _, payload in records:
            if len(payload) > self.max_record:
                raise ValueError(f"log record of {len(payload)} bytes: more than a segment holds")
            if offset + HEADER_SIZE + len(payload) > self.files.segment_bytes:
                needed, offset = needed + 1, 0
            offset += HEADER_SIZE + len(payload)
        try:
            if self._fd < 0:
                self._fd = self.files.open(self.segment)
            while len(self._ahead) < needed:
                self._ahead.append(self.files.open(self.segment + 1 + len(self._ahead)))
        except OSError as exc:
            if disk_full(exc):
                raise LogFull(exc.errno, f"no room for log segment {self.segment + 1 + len(self._ahead)}") from exc
            raise

    def _next_segment(self) -> None:
        fd = self._ahead.pop(0) if self._ahead else self.files.open(self.segment + 1)
        os.close(self._fd)
        self._fd, self.segment, self.offset, self._page = fd, self.segment + 1, 0, b""

    def close(self) -> None:
        """Close the current segment (appends are durable already)."""
        for fd in (self._fd, *self._ahead):
            with contextlib.suppress(OSError):
                os.close(fd)
