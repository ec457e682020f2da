"""The LMDB side of records: writing a record's index entries (`apply`), and reading the state sequencing starts
from (`TxnSource`). Both work inside a transaction the caller holds.

`apply` is what indexing, start-up replay, `kefu backup` (on the copy) and `Store.commit` (tools and tests) all
write: for a `Write`, its message under ``messages`` with the idempotency entry and the two expiry keys, the
conversation record and ``user_convs`` when the members change, and its `puts`; for `Cursors`, each cursor if it
moves forward. A replaced conversation keeps the larger of the stored floor and the record's last seq, and its
``user_convs`` lose the members that left (read from the stored record, so a replayed record needs no more).

Sealing (spec section 12): a `Write`'s message and puts arrive sealed (the sequencer sealed them) and are stored as
they are; the values built here (conversation records, cursors, idempotency entries) are sealed here, through the
store's `values.Values`. A stored conversation record or cursor that does not open is reported and taken as absent:
the record written over it is whole again (a replaced conversation's leavers then keep their ``user_convs`` keys;
the damage stays marked in ``meta``).

A damaged page (LMDB raises `values.TREE_ERRORS`) is reported as damage of the table read: `TxnSource` raises
`TreeDamaged` naming what it could not read, and the group commit sequences the batch again in a new transaction with
that part `unreadable` (its conversation's SENDs refused, an idempotency entry or a message absent); `apply` raises
`TreeDamaged` too, and the batch fails (a write through a damaged page is not safe: the store must be restored).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import lmdb

from ..engine.messages import StoredMessage
from .records import Cursors, Write
from .schema import (
    NEXT_ID_KEY,
    TS_CONV_SEQ,
    U64S,
    ConversationRecord,
    IdempotencyRecord,
    conversation_last_seq,
    decode_idempotency,
    encode_conversation,
    encode_idempotency,
    id_key,
    member_key,
    message_key,
)
from .sealing import Damaged
from .sequencer import Conversation
from .values import TREE_ERRORS, Values, open_conversation, open_message, tree_damaged

__all__ = ["TreeDamaged", "TxnSource", "apply", "open_cursor"]

Unreadable = tuple[str, object]
"""What a read could not get: ("conversation", id), ("idempotency", key), ("message", key) or ("meta", b"")."""

CHUNK: Final = 256
"""Records, or entries per ``putmulti``, between two pauses (at most a millisecond or two of work holding the GIL)."""
PAUSE_S: Final = 50e-6


def pause() -> None:
    """Sleep briefly, so that a thread waiting for the GIL (the event loop, the group commit) takes it now rather
    than after Python's switch interval (5 ms); ``sleep(0)`` would often take it straight back."""
    time.sleep(PAUSE_S)


class TreeDamaged(Exception):
    """LMDB refused a read of `table` (a damaged page; reported): `what` could not be read."""

    def __init__(self, table: str, what: Unreadable, reason: str) -> None:
        super().__init__(f"{table}: {reason}")
        self.table, self.what = table, what


class UnknownTable(Exception):
    """A logged record names a table that is not registered (a store opened without the desk's tables)."""


def apply(txn: lmdb.Transaction[bytes], db: dict[str, Any], records: Iterable[Write | Cursors], values: Values) -> int:
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
                next_id = max(next_id, _message_rows(record, rows, values) + 1)
                messages += 1
            if record.membership:
                with _tree(values, "conversations", ("conversation", record.conversation_id)):
                    _put_members(txn, db, record, values)
            if record.puts:
                _put_records(txn, db, record)
        else:
            assert type(record) is Cursors
            for user, conversation_id, seq in record.updates:
                key = member_key(id_key(user) or b"", conversation_id)
                cursors[key] = max(seq, cursors.get(key, 0))
    for table, items in rows.items():
        with _tree(values, table, (table, b"")):
            _put_all(txn, db[table], items)
    with _tree(values, "cursors", ("cursors", b"")):
        _put_cursors(txn, db["cursors"], cursors, values)
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


def _message_rows(w: Write, rows: dict[str, list[tuple[bytes, bytes]]], values: Values) -> int:
    sender = id_key(w.sender)
    assert sender is not None
    idem = sender + b"\0" + w.client_msg_id
    ts = U64S.pack(w.timestamp_ms)
    entry = encode_idempotency(IdempotencyRecord(w.conversation_id, w.last_seq, w.server_msg_id, w.timestamp_ms))
    rows["messages"].append((message_key(w.conversation_id, w.last_seq), w.message_raw))
    rows["idempotency"].append((idem, values.seal("idempotency", idem, entry)))
    rows["idem_expiry"].append((ts + idem, b""))
    rows["expiry"].append((TS_CONV_SEQ.pack(w.timestamp_ms, w.conversation_id, w.last_seq), b""))
    return w.server_msg_id


def _put_all(txn: lmdb.Transaction[bytes], handle: Any, items: list[tuple[bytes, bytes]]) -> None:
    """Put `items` in order (a later one of a key wins), a chunk at a time."""
    with txn.cursor(db=handle) as cur:
        for start in range(0, len(items), CHUNK):
            cur.putmulti(items[start : start + CHUNK])
            pause()


def _put_cursors(txn: lmdb.Transaction[bytes], handle: Any, latest: dict[bytes, int], values: Values) -> None:
    """Raise each cursor to its latest seq, where that moves it forward (over a stored one that does not open too)."""
    keys = sorted(latest)
    with txn.cursor(db=handle) as cur:
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start : start + CHUNK]
            stored = dict(cur.getmulti(chunk))
            cur.putmulti([
                (key, values.seal("cursors", key, U64S.pack(latest[key])))
                for key in chunk
                if key not in stored or latest[key] > open_cursor(values, key, stored[key])
            ])  # fmt: skip
            pause()


def open_cursor(values: Values, key: bytes, stored: bytes) -> int:
    """A stored cursor's seq; 0 if it does not open (reported): acknowledged messages are delivered again."""
    try:
        return int(U64S.unpack(values.open("cursors", key, stored))[0])
    except Damaged:
        return 0
    except Exception:  # opened, but not a u64
        values.damaged("cursors", key, f"{len(stored)} bytes, not a cursor")
        return 0


def _put_members(txn: lmdb.Transaction[bytes], db: dict[str, Any], w: Write, values: Values) -> None:
    key = U64S.pack(w.conversation_id)
    raw = txn.get(key, db=db["conversations"])
    floor, gone = w.last_seq, set[str]()
    if raw is not None:
        try:
            stored = open_conversation(values, key, raw)
        except Damaged:  # reported (and marked); rewritten whole below
            pass
        else:
            floor = max(floor, stored.last_seq)
            gone = set(stored.members) - set(w.members)
    for user in gone:
        txn.delete(member_key(id_key(user) or b"", w.conversation_id), db=db["user_convs"])
    for user in w.members:
        txn.put(member_key(id_key(user) or b"", w.conversation_id), b"", db=db["user_convs"])
    record = encode_conversation(ConversationRecord(floor, w.created_ms, w.members))
    txn.put(key, values.seal("conversations", key, record), db=db["conversations"])


@contextmanager
def _tree(values: Values, table: str, what: Unreadable) -> Iterator[None]:
    """Turn LMDB's refusal of a read of `table` into a reported `TreeDamaged`."""
    try:
        yield
    except TREE_ERRORS as exc:
        raise _damaged(values, table, what, exc) from exc


def _damaged(values: Values, table: str, what: Unreadable, exc: BaseException) -> TreeDamaged:
    key = what[1] if isinstance(what[1], bytes) else U64S.pack(int(what[1]))  # type: ignore[call-overload]
    return TreeDamaged(table, what, tree_damaged(values.report, table, key, exc).reason)


class TxnSource:
    """The state sequencing starts from, as one LMDB transaction sees it (`sequencer.Source`). `unreadable`: what
    an earlier try of the batch found damaged pages under (`TreeDamaged`): not read again."""

    def __init__(
        self,
        txn: lmdb.Transaction[bytes],
        db: dict[str, Any],
        values: Values,
        unreadable: frozenset[Unreadable] = frozenset(),
    ) -> None:
        self.txn, self.db, self.values, self.unreadable = txn, db, values, unreadable
        self._messages: lmdb.Cursor[bytes] | None = None

    def conversation(self, conversation_id: int) -> Conversation | None:
        key = U64S.pack(conversation_id)
        what = ("conversation", conversation_id)
        if what in self.unreadable:
            raise Damaged("conversations", key, "a damaged page (reported)")  # the sequencer refuses it
        table = "conversations"
        try:  # a try, not a `with _tree(...)`: this runs per SEND of an uncached conversation (2 us a with)
            raw = self.txn.get(key, db=self.db[table])
            if raw is None:
                return None
            record = open_conversation(self.values, key, raw)  # Damaged: the sequencer refuses the conversation
            table = "messages"
            if self._messages is None:
                self._messages = self.txn.cursor(db=self.db[table])
            last_seq = conversation_last_seq(self._messages, conversation_id, record.last_seq)
        except TREE_ERRORS as exc:
            raise _damaged(self.values, table, what, exc) from exc
        return Conversation(last_seq, record.members, record.created_ms)

    def idempotency(self, key: bytes) -> IdempotencyRecord | None:
        what = ("idempotency", key)
        if what in self.unreadable:  # as an entry that does not open: absent
            return None
        try:  # per SEND: see `conversation`
            raw = self.txn.get(key, db=self.db["idempotency"])
        except TREE_ERRORS as exc:
            raise _damaged(self.values, "idempotency", what, exc) from exc
        if raw is None:
            return None
        try:
            record = decode_idempotency(self.values.open("idempotency", key, raw))
        except Damaged:  # reported: taken as absent, so the SEND is stored (again, perhaps)
            return None
        except Exception:
            self.values.damaged("idempotency", key, f"{len(raw)} bytes, not an idempotency entry")
            return None
        mismatch = self._mismatch(key, record)
        if mismatch:  # reported, and taken as absent as above
            self.values.damaged("idempotency", key, mismatch)
            return None
        return record

    def _mismatch(self, key: bytes, record: IdempotencyRecord) -> str:
        """What in an idempotency entry disagrees with the records it repeats ("" if nothing): an entry carries no
        tag of its own (`sealing.INDEXED_TABLES`), so this is how its damage is found. Read only at a hit, a retried
        SEND: its ``idem_expiry`` key, the message it names, and the conversation if retention deleted the message."""
        conversation_id, seq = record.conversation_id, record.seq
        with _tree(self.values, "idem_expiry", ("idempotency", key)):
            if self.txn.get(U64S.pack(record.timestamp_ms) + key, db=self.db["idem_expiry"]) is None:
                return f"no idem_expiry key at its time {record.timestamp_ms}"
        mkey = message_key(conversation_id, seq)
        with _tree(self.values, "messages", ("message", mkey)):
            stored = self.txn.get(mkey, db=self.db["messages"])
        if stored is not None:
            return self._other_message(key, record, mkey, stored)
        try:  # deleted by retention (or never there): the conversation must reach that seq
            conversation = self.conversation(conversation_id)
        except Damaged:  # reported; its SENDs are refused anyway
            return ""
        if conversation is None or seq > conversation.last_seq:
            return f"names conversation {conversation_id} seq {seq}, which was never stored"
        return ""

    def _other_message(self, key: bytes, record: IdempotencyRecord, mkey: bytes, stored: bytes) -> str:
        """How the stored message `mkey` is not the one the idempotency entry `key` names ("" if it is, or if it
        does not open: then it is reported as the message's damage, and the entry cannot be checked against it)."""
        try:
            message = open_message(self.values, mkey, stored)
        except Damaged:
            return ""
        sender = id_key(message.sender)
        if (
            sender is None
            or sender + b"\0" + message.client_msg_id != key
            or (message.server_msg_id != record.server_msg_id)
        ):
            return (f"names conversation {record.conversation_id} seq {record.seq}, which holds another message "
                    f"({message.server_msg_id})")  # fmt: skip
        return ""

    def message(self, conversation_id: int, seq: int) -> StoredMessage | None:
        key = message_key(conversation_id, seq)
        what = ("message", key)
        if what in self.unreadable:
            return None
        with _tree(self.values, "messages", what):
            raw = self.txn.get(key, db=self.db["messages"])
        if raw is None:
            return None
        try:
            return open_message(self.values, key, raw)
        except Damaged:  # reported: a duplicate's answer is rebuilt from its idempotency entry
            return None

    def next_server_msg_id(self) -> int:
        with _tree(self.values, "meta", ("meta", NEXT_ID_KEY)):
            raw = self.txn.get(NEXT_ID_KEY, db=self.db["meta"])
        return int(U64S.unpack(raw)[0]) if raw else 1
