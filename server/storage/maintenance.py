"""Retention, backup and statistics of the message store (`kefu.server.storage.store`).

Theory of operation
-------------------
Retention never scans the messages: the ``expiry`` index is ordered by (timestamp_ms, conv, seq), so the oldest
messages are its first keys. `expire_messages` works in batches of at most `EXPIRE_BATCH_MESSAGES` messages (and
`EXPIRE_BATCH_BYTES` of stored values): it reads a batch in a read transaction, writes it to an archive file
(gzip JSON Lines, fsync'd, then linked into place under a name holding the batch's time range, then the directory
fsync'd), and only then deletes those messages and index keys in one write transaction. A crash between the two
steps leaves the messages stored and archived; the next run archives them again into a new file, so an archive
reader deduplicates by (conversation, seq). The writer thread waits for at most one batch's write transaction.

Archives stay sealed (spec section 12.3): a line is ``{"key": hex, "value": base64}``, the ``messages`` key and
value exactly as the table holds them, so reading one needs the data key it names (`read_archive`), and nothing
in the file is opened or sealed again on the way. A conversation's record whose floor retention raises is opened and
sealed again; one that does not open is left as it is (reported). Backups copy the sealed values as they are.

The byte budget counts live pages (``used_bytes`` in `store_stats`), which shrink as messages are deleted; the
file itself never shrinks (LMDB reuses its free pages), a compacting `backup` does. Idempotency entries are
purged in the same batched way through ``idem_expiry``; an entry is deleted only if its timestamp is the one the
index key names (a later message may have reused the client_msg_id after the window).
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import math
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import lmdb

from ..engine.messages import StoredMessage, encode_message
from . import index
from .files import fsync_path
from .logfile import pinned_for_backup, read_log
from .modes import DIR_MODE, FILE_MODE, private_dir
from .records import Cursors, Write, decode_record
from .schema import (
    CONV_SEQ,
    CORE_TABLES,
    LOG_DIR,
    LOG_ID_KEY,
    LOG_POSITION_KEY,
    MAX_TABLES,
    U64S,
    LogPosition,
    decode_idempotency,
    encode_conversation,
    message_key,
    new_log_id,
)
from .sealing import Damaged
from .store import Store
from .values import Values, open_conversation, open_message, placeholder

__all__ = [
    "ExpireStats",
    "backup",
    "expire",
    "expire_messages",
    "purge_idempotency",
    "read_archive",
    "read_archive_values",
    "store_stats",
    "write_archive",
]

EXPIRE_BATCH_MESSAGES: Final = 10_000  # deleted per write transaction: tens of ms of the writer's time
EXPIRE_BATCH_BYTES: Final = 32 << 20  # stored values held in memory for one archive file
PURGE_BATCH: Final = 10_000  # idempotency entries deleted per write transaction
_TS_CONV_SEQ = struct.Struct("!QQQ")
_TS = _U64 = struct.Struct("!Q")

Archived = tuple[bytes, bytes, int]
"""One archived message: its ``messages`` key, its value as stored (sealed), its timestamp_ms (from ``expiry``)."""


@dataclass(frozen=True, slots=True)
class ExpireStats:
    """What one `Store.expire` did."""

    messages_expired: int  # archived, then deleted
    archives: tuple[Path, ...]  # the archive files written, oldest first
    idempotency_purged: int  # idempotency entries older than the window, deleted


def expire(
    store: Store, *, now_ms: int, max_age_s: int | None, max_bytes: int | None, archive_dir: Path
) -> ExpireStats:
    """Archive, then delete, messages older than max_age_s and the oldest while used_bytes > max_bytes.

    Also purges idempotency entries older than the store's idempotency window.
    """
    with store.maintenance_lock:
        expired, archives = expire_messages(store, now_ms, max_age_s, max_bytes, Path(archive_dir))
        purged = purge_idempotency(store, now_ms - store.idempotency_window_ms)
    return ExpireStats(expired, archives, purged)


def expire_messages(
    store: Store, now_ms: int, max_age_s: int | None, max_bytes: int | None, archive_dir: Path
) -> tuple[int, tuple[Path, ...]]:
    """Archive then delete old messages; returns (messages expired, archive files written)."""
    private_dir(archive_dir)
    before_ms = now_ms - max_age_s * 1000 if max_age_s is not None else -1  # -1: nothing is too old
    expired, archives = 0, list[Path]()
    while True:
        keys, messages = _oldest(store, before_ms, EXPIRE_BATCH_MESSAGES)
        if not keys and max_bytes is not None:
            stats = store_stats(store)
            if (excess := stats["used_bytes"] - max_bytes) > 0:
                per_message = stats["used_bytes"] / max(1, stats["messages_entries"])
                keys, messages = _oldest(store, None, min(EXPIRE_BATCH_MESSAGES, math.ceil(excess / per_message)))
        if not keys:
            return expired, tuple(archives)
        if messages:
            archives.append(write_archive(archive_dir, messages))
        store.writing(lambda txn: _delete(store, txn, keys))  # noqa: B023 - called before the next iteration
        expired += len(messages)


def _oldest(store: Store, before_ms: int | None, limit: int) -> tuple[list[bytes], list[Archived]]:
    """The first `limit` expiry keys (older than before_ms, if given) and their messages, as stored."""
    keys: list[bytes] = []
    messages: list[Archived] = []
    size = 0
    with store.reading() as txn, txn.cursor(store.handle("expiry")) as cur:
        for key in cur.iternext(values=False):
            ts, conv, seq = _TS_CONV_SEQ.unpack(key)
            if (before_ms is not None and ts >= before_ms) or len(keys) >= limit or size >= EXPIRE_BATCH_BYTES:
                break
            keys.append(key)
            raw = txn.get(message_key(conv, seq), db=store.handle("messages"))
            if raw is not None:
                messages.append((key[8:], raw, ts))
                size += len(raw)
    return keys, messages


def _delete(store: Store, txn: lmdb.Transaction[bytes], keys: Sequence[bytes]) -> None:
    messages, expiry, conversations = store.handle("messages"), store.handle("expiry"), store.handle("conversations")
    last: dict[int, int] = {}
    for key in keys:
        _, conv, seq = _TS_CONV_SEQ.unpack(key)
        last[conv] = max(seq, last.get(conv, 0))
    for conv, seq in last.items():  # a conversation's last seq outlives its last messages: raise the record's floor
        _raise_floor(store.values, txn, conversations, conv, seq)
    for key in keys:
        txn.delete(key[8:], db=messages)  # the expiry key ends with the messages key
        txn.delete(key, db=expiry)


def _raise_floor(values: Values, txn: lmdb.Transaction[bytes], conversations: Any, conv: int, seq: int) -> None:
    """Raise a conversation record's floor (last_seq) to `seq`, sealed again; one that does not open stays as it is
    (reported: its conversation is refused anyway)."""
    key = _U64.pack(conv)
    raw = txn.get(key, db=conversations)
    if raw is None:
        return
    try:
        record = open_conversation(values, key, raw)
    except Damaged:
        return
    if record.last_seq < seq:
        record.last_seq = seq
        txn.put(key, values.seal("conversations", key, encode_conversation(record)), db=conversations)


def purge_idempotency(store: Store, before_ms: int) -> int:
    """Delete idempotency entries with timestamp_ms <= before_ms; returns how many."""
    total = 0
    while True:
        seen, purged = store.writing(lambda txn: _purge_batch(store, txn, before_ms))
        total += purged
        if seen < PURGE_BATCH:
            return total


def _purge_batch(store: Store, txn: lmdb.Transaction[bytes], before_ms: int) -> tuple[int, int]:
    idempotency, index = store.handle("idempotency"), store.handle("idem_expiry")
    with txn.cursor(index) as cur:
        keys = list(itertools.islice(itertools.takewhile(
            lambda k: _TS.unpack_from(k)[0] <= before_ms, cur.iternext(values=False)), PURGE_BATCH))  # fmt: skip
    purged = 0
    for key in keys:
        raw = txn.get(key[8:], db=idempotency)
        if raw is not None and _entry_time(store.values, key[8:], raw) in (_TS.unpack_from(key)[0], None):
            txn.delete(key[8:], db=idempotency)
            purged += 1
        txn.delete(key, db=index)
    return len(keys), purged


def _entry_time(values: Values, key: bytes, raw: bytes) -> int | None:
    """An idempotency entry's timestamp_ms; None if it does not open (reported; absent already, so purged)."""
    try:
        return int(decode_idempotency(values.open("idempotency", key, raw)).timestamp_ms)
    except Damaged:
        return None


# --- archives --------------------------------------------------------------------------------------------


def write_archive(archive_dir: Path, messages: Sequence[Archived]) -> Path:
    """Write messages (oldest first: (key, value as stored, timestamp_ms)) as gzip JSON Lines, durably, under a new
    name holding their time range."""
    stem = f"messages-{_stamp(messages[0][2])}-{_stamp(messages[-1][2])}"
    tmp = archive_dir / f".{stem}.{os.getpid()}.tmp"
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE), "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.writelines(
                b'{"key":"%s","value":"%s"}\n' % (key.hex().encode(), base64.b64encode(value))
                for key, value, _ in messages
            )
        raw.flush()
        os.fsync(raw.fileno())
    try:
        for n in itertools.count():
            path = archive_dir / f"{stem}{f'-{n}' if n else ''}.jsonl.gz"
            try:
                os.link(tmp, path)  # never replaces an earlier archive
                break
            except FileExistsError:
                continue
    finally:
        tmp.unlink()
    fsync_path(archive_dir)
    return path


def read_archive_values(path: Path) -> Iterator[tuple[bytes, bytes]]:
    """The (``messages`` key, value as stored) of an archive file, in file order, nothing opened (a line of an
    archive from before sealing, with the message in clear, is given as its encoding)."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            if "value" in o:
                yield bytes.fromhex(o["key"]), base64.b64decode(o["value"])
            else:
                m = _from_json(o)
                yield message_key(m.conversation_id, m.seq), encode_message(m)


def read_archive(path: Path, values: Values) -> Iterator[StoredMessage]:
    """The messages of an archive file, in file order, opened with `values` (the store's, or
    ``Values(sealer_of(data_dir, ...), DamageReport())``); one that does not open is reported and an EVENT takes its
    place, as in a read of the store (`values.placeholder`)."""
    for key, value in read_archive_values(path):
        try:
            yield open_message(values, key, value)
        except Damaged:
            yield placeholder(*CONV_SEQ.unpack(key))


def _from_json(o: dict[str, Any]) -> StoredMessage:
    """A message of an archive line from before sealing."""
    return StoredMessage(
        o["conversation_id"], o["seq"], o["server_msg_id"], o["timestamp_ms"], o["sender"],
        bytes.fromhex(o["client_msg_id"]), o["content_type"], base64.b64decode(o["body"]),
        tuple((k, base64.b64decode(v)) for k, v in o["metadata"]),
    )  # fmt: skip


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y%m%dT%H%M%S") + f".{ms % 1000:03d}Z"


# --- backup and statistics -------------------------------------------------------------------------------


def backup(store: Store, dest: Path) -> None:
    """A consistent compacted copy in ``dest.partial``, fsync'd, then renamed to `dest` (which must not exist).

    The copy's values are sealed as the store's are (copied as they are): restoring it needs the data keys they
    name. The copy holds every record of the write-ahead log too: LMDB copies one snapshot, with the log position it is
    indexed up to, then the log's records after that position are indexed into the copy, and the copy is given a new,
    empty log (a restore starts from it alone). While this runs, the server does not recycle log segments
    (`logfile.pinned_for_backup`), so the records after the snapshot's position are all still there. The copy may
    also hold the group commit that was being written at that instant (a record is read once complete, whether or
    not its fdatasync returned yet): a message whose SEND was not yet acknowledged, as if its acknowledgement was
    lost.
    """
    if dest.exists():
        raise FileExistsError(dest)
    partial = dest.with_name(dest.name + ".partial")
    private_dir(partial.parent)
    partial.mkdir(mode=DIR_MODE)  # FileExistsError if an interrupted backup left one: never mixed with a new copy
    os.chmod(partial, DIR_MODE)
    log_dir = store.path / LOG_DIR
    with pinned_for_backup(log_dir):
        with store.guard.shared(long=True):
            store.env.copy(str(partial), compact=True)
            os.chmod(partial / "data.mdb", FILE_MODE)  # LMDB makes the copy 0666 less the umask
            map_size = int(store.env.info()["map_size"])
        _index_log_tail(partial, log_dir, [name for name, _ in store.handles()], map_size, store.values)
    fsync_path(partial / "data.mdb")
    fsync_path(partial)
    partial.rename(dest)
    fsync_path(dest.parent)


def _index_log_tail(copy: Path, log_dir: Path, tables: list[str], map_size: int, store_values: Values) -> int:
    """Index the log's records after the copy's position into the copy, then give it a new log; returns how many.
    The records' values are sealed already; what indexing builds is sealed with `store_values`, as in the store."""
    env = lmdb.open(str(copy), subdir=True, lock=False, max_dbs=MAX_TABLES, map_size=map_size, mode=FILE_MODE)
    try:
        with env.begin() as txn:
            meta = env.open_db(b"meta", txn=txn, create=False)
            raw = txn.get(LOG_POSITION_KEY, db=meta)
        position = LogPosition.decode(raw) if raw is not None else None
        records: list[Write | Cursors] = []
        if position is not None:
            records = [decode_record(kind, payload) for kind, payload, _ in read_log(log_dir, position)]
        size = sum(len(w.message_raw) for w in records if type(w) is Write)
        env.set_mapsize(max(map_size, (copy / "data.mdb").stat().st_size) + 2 * size + (64 << 20))
        with env.begin(write=True) as txn:
            db = {name: env.open_db(name.encode(), txn=txn) for name in (*CORE_TABLES, *tables)}
            index.apply(txn, db, records, store_values)
            log_id = new_log_id()
            txn.put(LOG_ID_KEY, U64S.pack(log_id), db=db["meta"])
            txn.put(LOG_POSITION_KEY, LogPosition.first(log_id).encode(), db=db["meta"])
        env.sync(True)
    finally:
        env.close()
    return len(records)


def store_stats(store: Store, written: Callable[[], dict[str, int]] | None = None) -> dict[str, int]:
    """map_size_bytes, high_water_bytes (file pages ever used), used_bytes (live pages), readers, <db>_entries;
    with `written` (`Conversations.counters`), what the write path wrote: log_written_bytes, index_written_bytes,
    messages_logged, ... (see there)."""
    psize = store.page_size
    info = store.env.info()
    out = {"map_size_bytes": info["map_size"], "high_water_bytes": (info["last_pgno"] + 1) * psize}
    out["readers"] = info["num_readers"]
    pages = 0
    with store.reading() as txn:
        for name, stat in [("", store.env.stat()), *((name, txn.stat(db)) for name, db in store.handles())]:
            pages += stat["branch_pages"] + stat["leaf_pages"] + stat["overflow_pages"]
            if name:
                out[f"{name}_entries"] = stat["entries"]
    out["used_bytes"] = pages * psize
    if written is not None:
        out.update(written())
    return out
