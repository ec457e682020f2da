"""A store's values at rest: sealed on the way in, opened on the way out, and what becomes of one that does not open.

Theory of operation
-------------------
Every value of a sealed table (spec section 12.1: messages, conversations, cursors, idempotency, apps, audit and the
tables of the layers above) goes through `Values`: `seal(table, key, value)` where it is written, `open(table, key,
stored)` where it is read. With sealing off ([storage] seal = false, fixed when the store was made) both hand the bytes
through. A value that does not open (`sealing.Damaged`: flipped bits, a value copied under another key or into
another table, a data key this store does not have) is never served and never fatal: `open` reports it and raises
`Damaged`, and each reader puts in its place what spec section 12 ("Damage found on read") says:

    messages        an EVENT message from the system sender at the same (conversation, seq): `placeholder`
    conversations   the conversation is refused (a SEND gets STORAGE_UNAVAILABLE); positions use its messages
    cursors         0: the stream is delivered again, and clients deduplicate
    idempotency     absent: a retried SEND is stored again (a possible duplicate beats a silent loss)
    apps            absent: the app does not authenticate
    the desk's      absent

A report (`DamageReport`) is (a) a log line ``storage.damaged`` with the table, the record's key in hex and the
reason, at most one per table every `LOG_INTERVAL_S` (the next one says how many were left out), (b) a count per
table, handed to `on_damaged` (the metric kefu_storage_damaged_records_total{table}), and (c) for messages and
conversations, a mark in ``meta`` that `kefu verify` and `kefu status` show (`on_mark`; the store writes it):

    "damaged" || conversation u64   ->   seq u64, ...   (ascending; 0 stands for the conversation record itself)

A value that opens but does not decode (a layout this build does not know, or a plain store's flipped bits) is
reported the same way (`open_message`, `open_conversation`).

A damaged B-tree page is found by LMDB, not by the tag: a read of the table raises one of `TREE_ERRORS`
(MDB_CORRUPTED, MDB_PAGE_NOTFOUND, MDB_CURSOR_FULL, then MDB_BAD_TXN for the rest of the transaction). Its readers
report it here too (`tree_damaged`: table, the key asked for, "the B-tree is damaged (LMDB: ...)"), with the same log
line, count and marks, and raise `store.StorageDamaged`: the request that needed the page is refused, nothing else.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import lmdb

from kefu.protocol.frames import SYSTEM_SENDER, ContentType

from .. import log as logmod
from ..engine.messages import StoredMessage, decode_message
from .schema import CONV_SEQ, U64S, ConversationRecord, decode_conversation
from .sealing import Damaged, Sealer

__all__ = [
    "CONVERSATION_ITSELF",
    "DAMAGED_PREFIX",
    "LOG_INTERVAL_S",
    "DamageReport",
    "Values",
    "add_mark",
    "damaged_key",
    "decode_marks",
    "open_conversation",
    "open_message",
    "placeholder",
    "tree_damaged",
]

LOG_INTERVAL_S: Final = 10.0
"""At most one ``storage.damaged`` line per table this often: a damaged conversation read by every reconnecting
client must not flood the journal, and the first line of each burst says everything an operator needs."""
DAMAGED_PREFIX: Final = b"damaged"
"""``meta`` keys of the damage marks: this prefix and a conversation id."""
CONVERSATION_ITSELF: Final = 0
"""The seq a mark lists for the conversation record itself (message seqs start at 1)."""
TREE_ERRORS: Final = (
    lmdb.CorruptedError,
    lmdb.PageNotFoundError,
    lmdb.CursorFullError,
    lmdb.BadTxnError,
    lmdb.PageFullError,
)
"""What LMDB raises on a read through a damaged page (kefu verify's measurements): damage of the table read, never a
bug of the caller. Not here: MapResizedError, ReadersFullError (handled where transactions begin), a closed store."""
MARKED: Final = ("messages", "conversations")
"""The tables whose damage is marked in ``meta`` (their keys start with the conversation id)."""


def damaged_key(conversation_id: int) -> bytes:
    """The ``meta`` key of a conversation's damage marks."""
    return DAMAGED_PREFIX + U64S.pack(conversation_id)


def decode_marks(raw: bytes) -> list[int]:
    """The seqs of a mark's value (0: the conversation record itself)."""
    return [U64S.unpack_from(raw, i)[0] for i in range(0, len(raw) - len(raw) % 8, 8)]


def add_mark(txn: lmdb.Transaction[bytes], meta: Any, conversation_id: int, seq: int) -> None:
    """Add `seq` to the damage marks of a conversation, in a write transaction (`meta`: the ``meta`` handle)."""
    key = damaged_key(conversation_id)
    seqs = set(decode_marks(txn.get(key, db=meta) or b""))
    if seq not in seqs:
        txn.put(key, b"".join(U64S.pack(s) for s in sorted({*seqs, seq})), db=meta)


def placeholder(conversation_id: int, seq: int) -> StoredMessage:
    """What a reader gets in place of a damaged message: an EVENT from the system sender at the same place, so that
    the stream stays gapless (spec section 4.10 item 5) and the client is told."""
    body = json.dumps({"event": "damaged", "conversation_id": conversation_id, "seq": seq}, separators=(",", ":"))
    return StoredMessage(
        conversation_id, seq, 0, 0, SYSTEM_SENDER, bytes(16), int(ContentType.EVENT), body.encode(), ()
    )


class DamageReport:
    """Reports damaged values: the log line (rate-limited per table), the count, the metric's hook, the marks.
    Thread-safe."""

    def __init__(
        self,
        *,
        on_mark: Callable[[int, int], None] | None = None,
        interval_s: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counts: dict[str, int] = {}
        """Damaged values found by this process, per table."""
        self.on_damaged: Callable[[str], None] | None = None
        """Called with the table of every report (the metric; set by whoever builds the metrics)."""
        self.on_mark = on_mark
        self._interval, self._clock = interval_s, clock
        self._lock = threading.Lock()
        self._quiet: dict[str, tuple[float, int]] = {}  # table -> (when its last line was logged, reports left out)

    def add_counts(self, counts: dict[str, int]) -> None:
        """Count damage another process found and logged (the indexer's, with its answers): counts and metric."""
        with self._lock:
            for table, n in counts.items():
                self.counts[table] = self.counts.get(table, 0) + n
        if self.on_damaged is not None:
            for table, n in counts.items():
                for _ in range(max(0, min(n, 1 << 20))):
                    self.on_damaged(table)

    def __call__(self, damaged: Damaged) -> None:
        table = damaged.table
        now = self._clock()
        with self._lock:
            self.counts[table] = self.counts.get(table, 0) + 1
            logged, left_out = self._quiet.get(table, (-self._interval, 0))
            due = now - logged >= self._interval
            self._quiet[table] = (now, 0) if due else (logged, left_out + 1)
        if due:
            logmod.warning(
                "storage.damaged", table=table, record=damaged.key.hex(), reason=damaged.reason, left_out=left_out
            )
        if self.on_damaged is not None:
            self.on_damaged(table)
        if self.on_mark is not None and table in MARKED and len(damaged.key) >= 8:
            seq = CONV_SEQ.unpack(damaged.key)[1] if len(damaged.key) == CONV_SEQ.size else CONVERSATION_ITSELF
            self.on_mark(U64S.unpack_from(damaged.key)[0], seq)


def tree_damaged(report: DamageReport, table: str, key: bytes, exc: BaseException) -> Damaged:
    """Report a read of `table` (at `key`, or where it began) that LMDB refused (`TREE_ERRORS`); the `Damaged` to
    chain."""
    damaged = Damaged(table, key, f"the B-tree is damaged (LMDB: {type(exc).__name__}: {exc})")
    report(damaged)
    return damaged


class Values:
    """Seals and opens one store's values (`sealer` None: plain values), reporting what does not open."""

    __slots__ = ("report", "sealer")

    def __init__(self, sealer: Sealer | None, report: DamageReport) -> None:
        self.sealer, self.report = sealer, report

    def seal(self, table: str, key: bytes, value: bytes) -> bytes:
        """`value` as stored under (`table`, `key`)."""
        return value if self.sealer is None else self.sealer.seal(table, key, value)

    def open(self, table: str, key: bytes, stored: bytes) -> bytes:
        """The value stored under (`table`, `key`); reports and raises `Damaged` if it does not open."""
        if self.sealer is None:
            return stored
        try:
            return self.sealer.open(table, key, stored)
        except Damaged as exc:
            self.report(exc)
            raise

    def damaged(self, table: str, key: bytes, reason: str) -> Damaged:
        """Report a value that opened but is not what its table holds; the exception to raise."""
        exc = Damaged(table, key, reason)
        self.report(exc)
        return exc


def open_message(values: Values, key: bytes, stored: bytes) -> StoredMessage:
    """The message stored under ``messages`` `key`; `Damaged` (reported) if it does not open or decode, or is not
    the message of that key."""
    raw = values.open("messages", key, stored)
    try:
        message = decode_message(raw)
    except Exception as exc:  # Truncated, UnicodeDecodeError: not a message this build can read
        raise values.damaged("messages", key, f"does not decode: {exc!r}") from None
    if CONV_SEQ.pack(message.conversation_id, message.seq) != key:
        raise values.damaged("messages", key, "holds another conversation's or seq's message")
    return message


def open_conversation(values: Values, key: bytes, stored: bytes) -> ConversationRecord:
    """The ``conversations`` record under `key`; `Damaged` (reported) if it does not open or decode."""
    raw = values.open("conversations", key, stored)
    try:
        return decode_conversation(raw)
    except Exception as exc:
        raise values.damaged("conversations", key, f"does not decode: {exc!r}") from None
