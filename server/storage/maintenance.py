"""Retention, backup and statistics of the message store (`kefu.server.storage.store`).

Theory of operation
-------------------
Retention never scans the messages: the ``expiry`` index is ordered by (timestamp_ms, conv, seq), so the oldest
messages are its first keys. `expire_messages` works in batches of at most `EXPIRE_BATCH_MESSAGES` messages (and
`EXPIRE_BATCH_BYTES` of stored values): it reads a batch in a read transaction, writes it to an archive file
(gzip JSON Lines, fsync'd, then linked into place under a name holding the batch's time range, then the directory
fsync'd), and only then deletes those messages and index keys in one write transaction. A crash between the two
steps leaves the messages stored and archived; the next run archives them again into a new file, so an archive
reader deduplicates by ``server_msg_id``. The writer thread waits for at most one batch's write transaction.

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

from ..engine.messages import StoredMessage, decode_message
from . import index
from .files import fsync_path
from .logfile import pinned_for_backup, read_log
from .modes import DIR_MODE, FILE_MODE, private_dir
from .records import Cursors, Write, decode_record
from .schema import (
    CORE_TABLES,
    LOG_ID_KEY,
    LOG_POSITION_KEY,
    MAX_TABLES,
    U64S,
    LogPosition,
    decode_idempotency,
    message_key,
    new_log_id,
)
from .store import Store

LOG_DIR: Final = "log"  # as kefu.server.storage.conversations.LOG_DIR (which imports this module's neighbours)

__all__ = [
    "ExpireStats",
    "backup",
    "expire",
    "expire_messages",
    "purge_idempotency",
    "read_archive",
    "store_stats",
    "write_archive",
]

EXPIRE_BATCH_MESSAGES: Final = 10_000  # deleted per write transaction: tens of ms of the writer's time
EXPIRE_BATCH_BYTES: Final = 32 << 20  # stored values held in memory for one archive file
PURGE_BATCH: Final = 10_000  # idempotency entries deleted per write transaction
_TS_CONV_SEQ = struct.Struct("!QQQ")
_TS = _U64 = struct.Struct("!Q")


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


def _oldest(store: Store, before_ms: int | None, limit: int) -> tuple[list[bytes], list[StoredMessage]]:
    """The first `limit` expiry keys (older than before_ms, if given) and their messages."""
    keys: list[bytes] = []
    messages: list[StoredMessage] = []
    size = 0
    with store.reading() as txn, txn.cursor(store.handle("expiry")) as cur:
        for key in cur.iternext(values=False):
            ts, conv, seq = _TS_CONV_SEQ.unpack(key)
            if (before_ms is not None and ts >= before_ms) or len(keys) >= limit or size >= EXPIRE_BATCH_BYTES:
                break
            keys.append(key)
            raw = txn.get(message_key(conv, seq), db=store.handle("messages"))
            if raw is not None:
                messages.append(decode_message(raw))
                size += len(raw)
    return keys, messages


def _delete(store: Store, txn: lmdb.Transaction[bytes], keys: Sequence[bytes]) -> None:
    messages, expiry, conversations = store.handle("messages"), store.handle("expiry"), store.handle("conversations")
    last: dict[int, int] = {}
    for key in keys:
        _, conv, seq = _TS_CONV_SEQ.unpack(key)
        last[conv] = max(seq, last.get(conv, 0))
    for conv, seq in last.items():  # a conversation's last seq outlives its last messages: raise the record's floor
        raw = txn.get(_U64.pack(conv), db=conversations)
        if raw is not None and _U64.unpack_from(raw)[0] < seq:
            txn.put(_U64.pack(conv), _U64.pack(seq) + raw[_U64.size :], db=conversations)
    for key in keys:
        txn.delete(key[8:], db=messages)  # the expiry key ends with the messages key
        txn.delete(key, db=expiry)


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
        if raw is not None and decode_idempotency(raw).timestamp_ms == _TS.unpack_from(key)[0]:
            txn.delete(key[8:], db=idempotency)
            purged += 1
        txn.delete(key, db=index)
    return len(keys), purged


# --- archives --------------------------------------------------------------------------------------------


def write_archive(archive_dir: Path, messages: Sequence[StoredMessage]) -> Path:
    """Write messages (oldest first) as gzip JSON Lines, durably, under a new name holding their time range."""
    stem = f"messages-{_stamp(messages[0].timestamp_ms)}-{_stamp(messages[-1].timestamp_ms)}"
    tmp = archive_dir / f".{stem}.{os.getpid()}.tmp"
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE), "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
            gz.writelines(json.dumps(_as_json(m), separators=(",", ":")).encode() + b"\n" for m in messages)
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


def read_archive(path: Path) -> Iterator[StoredMessage]:
    """The messages of an archive file, in file order."""
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            o = json.loads(line)
            yield StoredMessage(
                o["conversation_id"], o["seq"], o["server_msg_id"], o["timestamp_ms"], o["sender"],
                bytes.fromhex(o["client_msg_id"]), o["content_type"], base64.b64decode(o["body"]),
                tuple((k, base64.b64decode(v)) for k, v in o["metadata"]),
            )  # fmt: skip


def _as_json(m: StoredMessage) -> dict[str, Any]:
    return {
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "server_msg_id": m.server_msg_id,
        "timestamp_ms": m.timestamp_ms,
        "sender": m.sender,
        "client_msg_id": m.client_msg_id.hex(),
        "content_type": m.content_type,
        "body": base64.b64encode(m.body).decode(),
        "metadata": [[k, base64.b64encode(v).decode()] for k, v in m.metadata],
    }


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y%m%dT%H%M%S") + f".{ms % 1000:03d}Z"


# --- backup and statistics -------------------------------------------------------------------------------


def backup(store: Store, dest: Path) -> None:
    """A consistent compacted copy in ``dest.partial``, fsync'd, then renamed to `dest` (which must not exist).

    The copy holds every record of the write-ahead log too: LMDB copies one snapshot, with the log position it is
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
        _index_log_tail(partial, log_dir, [name for name, _ in store.handles()], map_size)
    fsync_path(partial / "data.mdb")
    fsync_path(partial)
    partial.rename(dest)
    fsync_path(dest.parent)


def _index_log_tail(copy: Path, log_dir: Path, tables: list[str], map_size: int) -> int:
    """Index the log's records after the copy's position into the copy, then give it a new log; returns how many."""
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
            index.apply(txn, db, records)
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
