"""`kefu verify`'s checks of the files beside the LMDB environment: the write-ahead log and the archives.

Theory of operation
-------------------
**The log.** What the store has not indexed yet is only in the log: the records after ``meta`` ``log_position``.
They are read as replay reads them (`logfile.read_log`: a chain of CRCs from that position), each decoded and each
sealed value inside opened with its (table, key). Where the chain stops is normally the end of what was written (a
torn tail after a crash is normal too: nothing was acknowledged from it). It is damage when something the writer
did write is found beyond the stop: a record with a later lsn that chains to the record after it (found by
searching the rest of the log for the next lsns' bytes), or a segment shorter than its siblings (segments are
preallocated whole) or cut inside a record. Then every acknowledged write after the stop is lost to replay.
Beside a running server the tail moves, and a read may catch an append half-written (a page of it copied in, an
earlier one not yet): a stop is damage only if, read again after a pause, the same record still fails.

**The archives** (`maintenance.write_archive`): gzip JSON Lines; a file whose gzip stream or checksum is broken, a
line that is not JSON or not a message, and a sealed message that does not open with its (conversation, seq) are
each reported with the file and line.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from ..engine.messages import decode_message
from .logfile import HEADER, HEADER_SIZE, PAGE_SIZE, SUFFIX, pinned_for_backup, read_log, record_crc, segment_name
from .records import Write, decode_record
from .schema import CONV_SEQ, LogPosition, message_key
from .sealing import Damaged, Sealer, key_id_of
from .verify_report import Report
from .verify_tables import describe_key

__all__ = ["check_archives", "check_log", "log_pinned", "open_counted"]

LOOKAHEAD: Final = 64
"""Later lsns searched for beyond a stop in the chain: a damaged run of more records than this is missed."""
REREAD_PAUSE_S: Final = 0.05
"""How long a stop in the chain is given to complete before it is read again (an append in progress)."""
LIVE_TAIL_S: Final = 5.0
"""How long a tail that keeps growing (a busy server's) is followed before the check of the log ends."""


@contextlib.contextmanager
def log_pinned(log_dir: Path) -> Iterator[None]:
    """Hold off the server's recycling of log segments while the check reads them (nothing if it cannot)."""
    try:
        pin = pinned_for_backup(log_dir)
        pin.__enter__()
    except OSError:  # a read-only copy: nobody recycles there
        yield
        return
    try:
        yield
    finally:
        pin.__exit__(None, None, None)


def _segments(log_dir: Path) -> dict[int, int]:
    """Segment number -> size in bytes."""
    out = {}
    for path in log_dir.glob("*" + SUFFIX):
        with contextlib.suppress(ValueError, OSError):
            out[int(path.name[: -len(SUFFIX)], 16)] = path.stat().st_size
    return out


def check_log(log_dir: Path, report: Report, sealer: Sealer | None) -> None:
    """Check the log records after the report's indexed position (see the module docstring)."""
    start = LogPosition.decode(report.log_position)
    end = _read_chain(log_dir, start, report, sealer)
    deadline = time.monotonic() + LIVE_TAIL_S
    while (broken := _beyond(log_dir, end)) is not None:
        time.sleep(REREAD_PAUSE_S)  # a running server's append may have been read half-written: read it again
        after = _read_chain(log_dir, end, report, sealer)
        if after == end:  # the same record still fails: damage, not an append in progress
            where, why = broken
            report.add("log", b"", _where(end), f"the chain of records stops here ({why}), but {where}: the "
                       "writes logged after this point cannot be replayed")  # fmt: skip
            break
        if time.monotonic() > deadline:  # a busy server's tail keeps moving: checked as far as it was followed
            break
        end = after
    sizes = _segments(log_dir)
    full = max(sizes.values(), default=0)
    for number, size in sorted(sizes.items()):
        if number >= start.segment and (size < full or size % PAGE_SIZE):
            report.add("log", b"", segment_name(number), f"cut short: {size} bytes, where segments are {full}")


def _where(pos: LogPosition) -> str:
    return f"{segment_name(pos.segment)} offset {pos.offset} lsn {pos.lsn}"


def _read_chain(log_dir: Path, start: LogPosition, report: Report, sealer: Sealer | None) -> LogPosition:
    """Check every record of the chain from `start`; returns the position after the last one."""
    pos = start
    for kind, payload, after in read_log(log_dir, start):
        report.records += 1
        report.bytes_read += HEADER_SIZE + len(payload)
        where = _where(LogPosition(after.segment, after.offset - HEADER_SIZE - len(payload), after.lsn - 1, 0))
        try:
            record = decode_record(kind, payload)
        except ValueError as exc:
            report.add("log", b"", where, str(exc))
        else:
            if type(record) is Write:
                _check_write(record, kind, where, report, sealer)
        pos = after
    return pos


def _check_write(w: Write, kind: int, where: str, report: Report, sealer: Sealer | None) -> None:
    """The sealed values of a WRITE record open with their (table, key); its message agrees with the clear fields."""
    if w.message is not None or not report.sealed:  # a plain record (a store without sealing, or schema 2's layout)
        return
    values = [("messages", message_key(w.conversation_id, w.last_seq), w.message_raw)] if w.message_raw else []
    values += [(table, key, value) for table, key, value in w.puts if value is not None]
    for table, key, value in values:
        try:
            plain = open_counted(report, sealer, table, key, value)
        except Damaged as exc:
            report.add("log", key, f"{where}: {table}", exc.reason)
            continue
        if plain is not None and table == "messages":
            try:
                m = decode_message(plain)
            except Exception as exc:  # what the decoder raises on bad input
                report.add("log", key, f"{where}: messages", f"the message does not decode ({type(exc).__name__})")
                continue
            if (m.server_msg_id, m.sender, m.client_msg_id) != (w.server_msg_id, w.sender, w.client_msg_id):
                report.add("log", key, f"{where}: messages", "the sealed message disagrees with the record's fields")


def open_counted(report: Report, sealer: Sealer | None, table: str, key: bytes, value: bytes) -> bytes | None:
    """A sealed value opened and counted under its data key id; None if that key was not given (counted as
    missing); raises `Damaged`."""
    key_id = key_id_of(value)
    if key_id is not None:
        report.key_ids[key_id] = report.key_ids.get(key_id, 0) + 1
        if sealer is None or key_id not in sealer.key_ids:
            report.missing_keys[key_id] = report.missing_keys.get(key_id, 0) + 1
            return None
    if sealer is None:
        raise Damaged(table, key, "not a sealed value")
    try:
        return sealer.open(table, key, value)
    except Damaged:
        if key_id is not None:
            report.failed_keys[key_id] = report.failed_keys.get(key_id, 0) + 1
        raise


def _beyond(log_dir: Path, end: LogPosition) -> tuple[str, str] | None:
    """(what was found beyond `end`, why the chain stopped there), if anything the writer wrote is beyond it."""
    why = _why_stopped(log_dir, end)
    for number in sorted(n for n in _segments(log_dir) if n >= end.segment):
        data = (log_dir / segment_name(number)).read_bytes()
        data = data[: len(data.rstrip(b"\0"))]  # zeros hold no record (and make the search slow)
        found = _find_later(data, end.offset if number == end.segment else 0, end.lsn + 1, end.lsn + LOOKAHEAD)
        if found is not None:
            offset, lsn = found
            return f"a valid record with lsn {lsn} follows in {segment_name(number)} at offset {offset}", why
    if why.startswith("a record cut"):
        return "the segment ends inside the record", why
    return None


def _why_stopped(log_dir: Path, end: LogPosition) -> str:
    try:
        data = (log_dir / segment_name(end.segment)).read_bytes() if end.segment else b""
    except FileNotFoundError:
        return "its segment is missing"
    if end.offset + HEADER_SIZE > len(data):
        return "the segment ends"
    _, length, lsn, _ = HEADER.unpack_from(data, end.offset)
    if lsn != end.lsn:
        return "no record follows" if not any(data[end.offset : end.offset + HEADER_SIZE]) else f"lsn {lsn} found"
    if end.offset + HEADER_SIZE + length > len(data):
        return f"a record cut by the end of its segment: {length} bytes declared, {len(data) - end.offset} left"
    return "the record's checksum does not match"


def _find_later(data: bytes, start: int, low: int, high: int) -> tuple[int, int] | None:
    """(offset, lsn) of the first record at or after `start` with low <= lsn <= high whose successor chains to it (so
    that it is no chance match). Searched by the lsn's first seven bytes, which the lsns of the range share (or two
    values of them do)."""
    best: tuple[int, int] | None = None
    for prefix in sorted({(lsn >> 8).to_bytes(7, "big") for lsn in (low, high)}):
        at = data.find(prefix, start + 8)
        while at != -1 and (best is None or at - 8 < best[0]):
            offset = at - 8
            lsn = int.from_bytes(data[at : at + 8], "big")
            if low <= lsn <= high and _chains(data, offset, lsn):
                best = (offset, lsn)
                break
            at = data.find(prefix, at + 1)
    return best


def _chains(data: bytes, offset: int, lsn: int) -> bool:
    """Whether the record at `offset` (lsn `lsn`) is followed by the record lsn + 1, chained to it by its checksum."""
    if offset + HEADER_SIZE > len(data):
        return False
    crc, length, _, _ = HEADER.unpack_from(data, offset)
    nxt = offset + HEADER_SIZE + length
    if nxt + HEADER_SIZE > len(data):
        return False
    crc2, length2, lsn2, kind2 = HEADER.unpack_from(data, nxt)
    payload = data[nxt + HEADER_SIZE : nxt + HEADER_SIZE + length2]
    return bool(lsn2 == lsn + 1 and len(payload) == length2 and record_crc(crc, lsn2, kind2, payload) == crc2)


# --- archives -----------------------------------------------------------------------------------------------


def check_archives(archive_dir: Path, report: Report, sealer: Sealer | None) -> None:
    """Check every archive file in `archive_dir` (see the module docstring)."""
    if not archive_dir.is_dir():
        report.add("archive", b"", str(archive_dir), "not a directory")
        return
    for path in sorted(archive_dir.glob("*.jsonl.gz")):
        _check_archive(path, report, sealer)


def _check_archive(path: Path, report: Report, sealer: Sealer | None) -> None:
    line_no = 0
    try:
        with gzip.open(path, "rb") as f:
            for line_no, line in enumerate(f, 1):
                report.records += 1
                report.bytes_read += len(line)
                why = _archive_line(line, report, sealer)
                if why:
                    report.add("archive", b"", f"{path.name} line {line_no}", why)
    except (OSError, EOFError, zlib.error) as exc:  # gzip: BadGzipFile, a CRC or length mismatch, a cut stream
        report.add("archive", b"", f"{path.name} after line {line_no}", f"the gzip stream is damaged: {exc}")


def _archive_line(line: bytes, report: Report, sealer: Sealer | None) -> str | None:
    """Why an archive line is damaged, or None. A line is ``{"key": hex, "value": base64}`` (the ``messages`` key
    and value as the table held them: sealed in a sealed store), or a plain message from before sealing."""
    try:
        o: Any = json.loads(line)
        if "key" not in o:  # an archive from before sealing: the message's fields in clear
            return None if {"conversation_id", "seq", "body", "sender"} <= set(o) else "not a message line"
        key, value = bytes.fromhex(o["key"]), base64.b64decode(o["value"], validate=True)
        if len(key) != CONV_SEQ.size:
            raise ValueError(f"a key of {len(key)} bytes")
    except (ValueError, KeyError, TypeError) as exc:
        return f"not a message line ({exc})"
    where = describe_key("messages", key)
    try:
        plain = open_counted(report, sealer, "messages", key, value) if report.sealed else value
        m = decode_message(plain) if plain is not None else None
    except Damaged as exc:
        return f"{where}: {exc.reason}"
    except Exception as exc:  # a message that does not decode
        return f"{where}: does not decode ({type(exc).__name__})"
    if m is not None and (m.conversation_id, m.seq) != CONV_SEQ.unpack(key):
        return f"{where}: holds conversation {m.conversation_id} seq {m.seq}"
    return None
