"""The LMDB side of records: writing a record's index entries (`apply`), and reading the state sequencing starts
from (`TxnSource`). Both work inside a transaction the caller holds.

`apply` is what indexing, start-up replay, `kefu backup` (on the copy) and `Store.commit` (tools and tests) all
write: for a `Write`, its message under ``messages`` with the idempotency entry and the two expiry keys, the
conversation record and ``user_convs`` when the members change, and its `puts`; for `Cursors`, each cursor if it
moves forward. A replaced conversation keeps the larger of the stored floor and the record's last seq, and its
``user_convs`` lose the members that left (read from the stored record, so a replayed record needs no more).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

import lmdb

from ..engine.messages import StoredMessage, decode_message
from .records import Cursors, Write
from .schema import (
    NEXT_ID_KEY,
    TS_CONV_SEQ,
    U64S,
    ConversationRecord,
    IdempotencyRecord,
    conversation_last_seq,
    decode_conversation,
    decode_idempotency,
    encode_conversation,
    encode_idempotency,
    id_key,
    member_key,
    message_key,
)
from .sequencer import Conversation

__all__ = ["TxnSource", "apply"]

CHUNK: Final = 256
"""Records, or entries per ``putmulti``, between two pauses (at most a millisecond or two of work holding the GIL)."""
PAUSE_S: Final = 50e-6


def pause() -> None:
    """Sleep briefly, so that a thread waiting for the GIL (the event loop, the group commit) takes it now rather
    than after Python's switch interval (5 ms); ``sleep(0)`` would often take it straight back."""
    time.sleep(PAUSE_S)


class UnknownTable(Exception):
    """A logged record names a table that is not registered (a store opened without the desk's tables)."""


def apply(txn: lmdb.Transaction[bytes], db: dict[str, Any], records: Iterable[Write | Cursors]) -> int:
    """Write the index entries of `records`, in order; returns how many messages they stored.

    The entries every message has (four tables) and the cursors (only the highest per key counts) are gathered and
    written with ``putmulti``, in chunks with the GIL offered between them: a batch holds thousands of records, and
    one Python ``put`` each would hold the event loop and the group commit back for as long."""
    rows: dict[str, list[tuple[bytes, bytes]]] = {"messages": [], "idempotency": [], "idem_expiry": [], "expiry": []}
    cursors: dict[bytes, int] = {}
    messages = next_id = 0
    for n, record in enumerate(records, 1):
        if not n % CHUNK:
            pause()
        if type(record) is Write:
            if record.message_raw:
                next_id = max(next_id, _message_rows(record, rows) + 1)
                messages += 1
            if record.membership:
                _put_members(txn, db, record)
            if record.puts:
                _put_records(txn, db, record)
        else:
            assert type(record) is Cursors
            for user, conversation_id, seq in record.updates:
                key = member_key(id_key(user) or b"", conversation_id)
                cursors[key] = max(seq, cursors.get(key, 0))
    for table, items in rows.items():
        _put_all(txn, db[table], items)
    _put_cursors(txn, db["cursors"], cursors)
    if next_id:
        raw = txn.get(NEXT_ID_KEY, db=db["meta"])
        if next_id > (U64S.unpack(raw)[0] if raw else 1):
            txn.put(NEXT_ID_KEY, U64S.pack(next_id), db=db["meta"])
    return messages


def _put_records(txn: lmdb.Transaction[bytes], db: dict[str, Any], w: Write) -> None:
    for table, key, value in w.puts:
        if table not in db:
            raise UnknownTable(f"a logged record writes table {table!r}, which is not registered")
        if value is None:
            txn.delete(key, db=db[table])
        else:
            txn.put(key, value, db=db[table])


def _message_rows(w: Write, rows: dict[str, list[tuple[bytes, bytes]]]) -> int:
    m = w.message if w.message is not None else decode_message(w.message_raw)
    sender = id_key(m.sender)
    assert sender is not None
    idem = sender + b"\0" + m.client_msg_id
    ts = U64S.pack(m.timestamp_ms)
    rows["messages"].append((message_key(m.conversation_id, m.seq), w.message_raw))
    rows["idempotency"].append((idem, encode_idempotency(m)))
    rows["idem_expiry"].append((ts + idem, b""))
    rows["expiry"].append((TS_CONV_SEQ.pack(m.timestamp_ms, m.conversation_id, m.seq), b""))
    return m.server_msg_id


def _put_all(txn: lmdb.Transaction[bytes], handle: Any, items: list[tuple[bytes, bytes]]) -> None:
    """Put `items` in order (a later one of a key wins), a chunk at a time."""
    with txn.cursor(db=handle) as cur:
        for start in range(0, len(items), CHUNK):
            cur.putmulti(items[start : start + CHUNK])
            pause()


def _put_cursors(txn: lmdb.Transaction[bytes], handle: Any, latest: dict[bytes, int]) -> None:
    """Raise each cursor to its latest seq, where that moves it forward."""
    keys = sorted(latest)
    with txn.cursor(db=handle) as cur:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            stored = dict(cur.getmulti(chunk))
            cur.putmulti([
                (key, U64S.pack(latest[key]))
                for key in chunk
                if key not in stored or latest[key] > U64S.unpack(stored[key])[0]
            ])  # fmt: skip
            pause()


def _put_members(txn: lmdb.Transaction[bytes], db: dict[str, Any], w: Write) -> None:
    key = U64S.pack(w.conversation_id)
    raw = txn.get(key, db=db["conversations"])
    floor, gone = w.last_seq, set[str]()
    if raw is not None:
        stored = decode_conversation(raw)
        floor = max(floor, stored.last_seq)
        gone = set(stored.members) - set(w.members)
    for user in gone:
        txn.delete(member_key(id_key(user) or b"", w.conversation_id), db=db["user_convs"])
    for user in w.members:
        txn.put(member_key(id_key(user) or b"", w.conversation_id), b"", db=db["user_convs"])
    txn.put(key, encode_conversation(ConversationRecord(floor, w.created_ms, w.members)), db=db["conversations"])


class TxnSource:
    """The state sequencing starts from, as one LMDB transaction sees it (`sequencer.Source`)."""

    def __init__(self, txn: lmdb.Transaction[bytes], db: dict[str, Any]) -> None:
        self.txn, self.db = txn, db
        self._messages: lmdb.Cursor[bytes] | None = None

    def conversation(self, conversation_id: int) -> Conversation | None:
        raw = self.txn.get(U64S.pack(conversation_id), db=self.db["conversations"])
        if raw is None:
            return None
        if self._messages is None:
            self._messages = self.txn.cursor(db=self.db["messages"])
        record = decode_conversation(raw)
        return Conversation(conversation_last_seq(self._messages, conversation_id, raw), record.members,
                            record.created_ms)  # fmt: skip

    def idempotency(self, key: bytes) -> IdempotencyRecord | None:
        raw = self.txn.get(key, db=self.db["idempotency"])
        return decode_idempotency(raw) if raw is not None else None

    def message(self, conversation_id: int, seq: int) -> StoredMessage | None:
        raw = self.txn.get(message_key(conversation_id, seq), db=self.db["messages"])
        return decode_message(raw) if raw is not None else None

    def next_server_msg_id(self) -> int:
        raw = self.txn.get(NEXT_ID_KEY, db=self.db["meta"])
        return int(U64S.unpack(raw)[0]) if raw else 1
