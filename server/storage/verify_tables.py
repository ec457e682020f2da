"""The walk of `kefu verify` through the LMDB tables, run in a child process (`kefu.server.storage.verify`).

Theory of operation
-------------------
The child opens the environment read-only, walks each table it is given with one cursor, in one read transaction
per table, and checks every entry (`CHECKS`): the value opens under the data keys with its (table, key), then
decodes, and agrees with its key and with the entries of other tables it points at. It writes one JSON line per
event on stdout -- ``start`` (a table), ``finding`` (a damaged entry), ``at`` (progress, with the last key read, every
`PROGRESS_EVERY` entries), ``done`` or ``broken`` (the table's end, normal or on an LMDB error) -- and the parent
turns them into the report. LMDB raises on some damaged pages (`lmdb.CorruptedError`, `lmdb.PageNotFoundError`)
and aborts the process on others (an assert() in ``mdb_cursor_next`` or ``mdb_cursor_sibling``; SIGBUS on a page
past the end of the file): the parent sees the child die, reports the table it was in, and starts another child
for the rest (`kefu.server.storage.verify`).

A check that looks an entry up in another table (an idempotency entry's message, an expiry key's message, a
user_convs key's conversation) does so only when that table is "safe": the structural check of the file
(`lmdb.verify`) found nothing wrong in it and no walk of it failed, so the descent cannot meet a damaged page.
A check it cannot make is counted in ``skipped``, never silently passed.
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, Final

import lmdb

from ..engine.messages import StoredMessage, decode_message
from .schema import (
    CONV_SEQ,
    LOG_ID_KEY,
    LOG_POSITION_KEY,
    NEXT_ID_KEY,
    SCHEMA_KEY,
    SEALED_KEY,
    TS_CONV_SEQ,
    U32,
    U64S,
    LogPosition,
    decode_conversation,
    decode_idempotency,
    id_key,
    member_key,
    message_key,
)
from .sealing import Damaged, Sealer, index_entry, key_id_of
from .values import DAMAGED_PREFIX, decode_marks

__all__ = ["CHECKS", "INDEX_TABLES", "PROGRESS_EVERY", "Walker", "describe_key", "store_is_sealed"]

PROGRESS_EVERY: Final = 32
"""Entries between two progress lines: how far back the last key reported may be when LMDB aborts the child. The
walk back from the table's end stops at that key, so up to PROGRESS_EVERY - 1 entries before a damaged page go
unread with it. A line costs ~4 us (written and flushed), ~0.13 us per entry against ~8 us to check one (2 %)."""
INDEX_TABLES: Final = frozenset({"meta", "user_convs", "expiry", "idem_expiry"})
"""The tables whose values are not sealed (SEALING-DESIGN rule 1): meta, and the key-only indexes."""
CLIENT_MSG_ID_BYTES: Final = 16
_TS: Final = struct.Struct("!Q")


def store_is_sealed(txn: lmdb.Transaction[bytes], meta: Any) -> bool:
    """Whether the store's values are sealed (``meta`` key ``sealed``; a store from before sealing is plain)."""
    return meta is not None and txn.get(SEALED_KEY, db=meta) == b"\x01"


def _split_member(key: bytes) -> tuple[str, int] | None:
    """(user, conversation) of a cursors / user_convs key, or None if it is not one."""
    user, sep, rest = key.partition(b"\0")
    if not sep or len(rest) != U64S.size:
        return None
    try:
        name = user.decode()
    except UnicodeDecodeError:
        return None
    return (name, U64S.unpack(rest)[0]) if id_key(name) == user else None


def _split_idem(key: bytes) -> tuple[str, bytes] | None:
    """(sender, client_msg_id) of an idempotency key, or None if it is not one."""
    cut = len(key) - CLIENT_MSG_ID_BYTES - 1
    if cut < 1 or key[cut] != 0:
        return None
    try:
        name = key[:cut].decode()
    except UnicodeDecodeError:
        return None
    return (name, key[cut + 1 :]) if id_key(name) == key[:cut] else None


def _member_words(key: bytes) -> str | None:
    member = _split_member(key)
    return f"user {member[0]!r} conversation {member[1]}" if member else None


def _idem_words(key: bytes) -> str | None:
    idem = _split_idem(key)
    return f"sender {idem[0]!r} client_msg_id {idem[1].hex()}" if idem else None


def _timed_idem_words(key: bytes) -> str | None:
    words = _idem_words(key[_TS.size :]) if len(key) > _TS.size else None
    return f"time {_TS.unpack_from(key)[0]} {words}" if words else None


_WORDS: Final[dict[str, Callable[[bytes], str | None]]] = {
    "messages": lambda k: "conversation {} seq {}".format(*CONV_SEQ.unpack(k)) if len(k) == CONV_SEQ.size else None,
    "conversations": lambda k: f"conversation {U64S.unpack(k)[0]}" if len(k) == U64S.size else None,
    "cursors": _member_words,
    "user_convs": _member_words,
    "idempotency": _idem_words,
    "idem_expiry": _timed_idem_words,
    "expiry": lambda k: (
        "time {} conversation {} seq {}".format(*TS_CONV_SEQ.unpack(k)) if len(k) == TS_CONV_SEQ.size else None
    ),
    "meta": lambda k: repr(k.decode(errors="backslashreplace")),
    "apps": lambda k: repr(k.decode(errors="backslashreplace")),
}


def describe_key(table: str, key: bytes) -> str:
    """A key as an operator reads it: "conversation 7 seq 42", "user 'alice' conversation 7", ... (else its hex)."""
    words = _WORDS.get(table)
    return (words(key) if words else None) or key.hex()


class _Bad(Exception):
    """An entry that fails a check: why."""


class _Unopenable(Exception):
    """A sealed value under a data key that was not given: not damage, and not checked (counted in ``missing``)."""


@dataclass(slots=True)
class Walker:
    """Checks entries of one read transaction and writes the events on `out` (see the module docstring)."""

    txn: lmdb.Transaction[bytes]
    db: dict[str, Any]
    sealed: bool
    """False: the store's values are plain (a store made with [storage] seal = false, or from before sealing)."""
    sealer: Sealer | None
    """The data keys given (None: none)."""
    safe: frozenset[str]
    """Tables a lookup may descend into (see the module docstring)."""
    out: IO[str] = field(default_factory=lambda: sys.stdout)
    key_ids: dict[int, int] = field(default_factory=dict)
    """Sealed values per data key id, in the table being walked."""
    missing: dict[int, int] = field(default_factory=dict)
    """Of those, the values under a key id not given, which could not be checked."""
    failed: dict[int, int] = field(default_factory=dict)
    """Of those, the values that did not open (reported)."""
    skipped: int = 0
    """Cross-checks not made (see the module docstring), in the table being walked."""
    read: int = 0
    """Entries read of the table being walked."""
    value_bytes: int = 0

    def emit(self, **event: Any) -> None:
        self.out.write(json.dumps(event, separators=(",", ":")) + "\n")

    def finding(self, table: str, key: bytes, reason: str) -> None:
        self.emit(finding=[table, key.hex(), describe_key(table, key), reason])
        self.out.flush()  # a walk that LMDB aborts later must not take it along

    def walk(self, table: str, *, backward: bool = False, stop: bytes = b"") -> None:
        """Check every entry of `table` (`backward`: from the last key down to just above `stop`), then emit ``done``.
        lmdb.Error propagates: then `end` it as broken."""
        check = CHECKS.get(table, _check_sealed_only)
        self.read = self.value_bytes = self.skipped = 0
        self.key_ids, self.missing, self.failed = {}, {}, {}
        self.emit(start=table, backward=backward, stop=stop.hex())
        self.out.flush()  # the parent must know which table a child that dies before its first progress line was in
        with self.txn.cursor(self.db[table]) as cur:
            entries = (cur.iterprev() if cur.last() else iter(())) if backward else iter(cur)
            for key, value in entries:
                if backward and key <= stop:
                    break
                self.read += 1
                self.value_bytes += len(key) + len(value)
                try:
                    check(self, table, key, value)
                except _Bad as exc:
                    self.finding(table, key, str(exc))
                except _Unopenable:
                    pass
                if not self.read % PROGRESS_EVERY:
                    self.emit(at=table, n=self.read, key=key.hex())
                    self.out.flush()
        self.end(table)

    def end(self, table: str, error: str = "") -> None:
        """The table's last event: what was read of it (``done``, or ``broken`` with LMDB's `error`)."""
        counts = {"n": self.read, "bytes": self.value_bytes, "skipped": self.skipped,
                  "key_ids": {str(k): n for k, n in self.key_ids.items()},
                  "missing": {str(k): n for k, n in self.missing.items()},
                  "failed": {str(k): n for k, n in self.failed.items()}}  # fmt: skip
        if error:
            self.emit(broken=error, **counts)
        else:
            self.emit(done=table, **counts)
        self.out.flush()

    # --- helpers of the checks ------------------------------------------------------------------------------

    def open(self, table: str, key: bytes, value: bytes) -> bytes:
        """The value of a sealed table, opened (or as stored, when the store is not sealed); _Bad if it fails,
        _Unopenable if its data key was not given."""
        if not self.sealed:
            return value
        key_id = key_id_of(value)
        if key_id is not None:
            self.key_ids[key_id] = self.key_ids.get(key_id, 0) + 1
            if self.sealer is None or key_id not in self.sealer.key_ids:
                self.missing[key_id] = self.missing.get(key_id, 0) + 1
                raise _Unopenable
        try:
            return self.opener(table, key, value)
        except Damaged as exc:
            if key_id is not None:
                self.failed[key_id] = self.failed.get(key_id, 0) + 1
            raise _Bad(exc.reason) from None

    def opener(self, table: str, key: bytes, value: bytes) -> bytes:
        """Open a value with the keys given (raises `Damaged`), or pass it through if the store is plain."""
        if not self.sealed:
            return value
        if self.sealer is None:
            entry = index_entry(table, value)  # needs no key
            if entry is None:
                raise Damaged(table, key, "no data keys given")
            return entry
        return self.sealer.open(table, key, value)

    def lookup(self, table: str, key: bytes) -> bytes | bool | None:
        """The raw value of `key` in `table`; None if absent; False if `table` is not safe to descend (counted)."""
        if table not in self.safe or table not in self.db:
            self.skipped += 1
            return False
        return self.txn.get(key, db=self.db[table])

    def message(self, conversation_id: int, seq: int) -> StoredMessage | bool | None:
        """The stored message (conversation, seq): None if absent, False if it cannot be told (table unsafe, or the
        message itself damaged: reported by the walk of messages)."""
        key = message_key(conversation_id, seq)
        raw = self.lookup("messages", key)
        if raw is None or raw is False:
            return raw
        assert isinstance(raw, bytes)
        try:
            return decode_message(self.opener("messages", key, raw))
        except Exception:  # Damaged, or a value that does not decode: the walk of messages reports it
            self.skipped += 1
            return False


# --- the checks, one per table --------------------------------------------------------------------------------


def _decode(what: str, decode: Callable[[bytes], Any], raw: bytes) -> Any:
    try:
        return decode(raw)
    except Exception as exc:  # Truncated, UnicodeDecodeError, struct.error: what the decoders raise on bad input
        raise _Bad(f"the {what} does not decode ({type(exc).__name__})") from None


def _check_messages(w: Walker, table: str, key: bytes, value: bytes) -> None:
    if len(key) != CONV_SEQ.size:
        raise _Bad(f"a key of {len(key)} bytes, not {CONV_SEQ.size}")
    m: StoredMessage = _decode("message", decode_message, w.open(table, key, value))
    conversation_id, seq = CONV_SEQ.unpack(key)
    if (m.conversation_id, m.seq) != (conversation_id, seq):
        raise _Bad(f"holds conversation {m.conversation_id} seq {m.seq}, not its key's")
    if id_key(m.sender) is None and m.sender:
        raise _Bad(f"sender {m.sender!r} is not a valid id")
    if w.lookup("expiry", TS_CONV_SEQ.pack(m.timestamp_ms, conversation_id, seq)) is None:
        raise _Bad(f"no expiry key (time {m.timestamp_ms}): retention would never archive it")


def _check_conversations(w: Walker, table: str, key: bytes, value: bytes) -> None:
    if len(key) != U64S.size:
        raise _Bad(f"a key of {len(key)} bytes, not {U64S.size}")
    record = _decode("conversation record", decode_conversation, w.open(table, key, value))
    (conversation_id,) = U64S.unpack(key)
    for user in record.members:
        user_key = id_key(user)
        if user_key is None:
            raise _Bad(f"member {user!r} is not a valid id")
        if w.lookup("user_convs", member_key(user_key, conversation_id)) is None:
            raise _Bad(f"member {user!r} has no user_convs key: the conversation is missing from their list")


def _check_cursors(w: Walker, table: str, key: bytes, value: bytes) -> None:
    if _split_member(key) is None:
        raise _Bad("not a user\\0conversation key")
    if len(w.open(table, key, value)) != U64S.size:
        raise _Bad("the cursor is not a u64")


def _check_idempotency(w: Walker, table: str, key: bytes, value: bytes) -> None:
    idem = _split_idem(key)
    if idem is None:
        raise _Bad("not a sender\\0client_msg_id key")
    record = _decode("idempotency entry", decode_idempotency, w.open(table, key, value))
    m = w.message(record.conversation_id, record.seq)
    if isinstance(m, StoredMessage) and (m.sender, m.client_msg_id, m.server_msg_id) != (
        idem[0], idem[1], record.server_msg_id,
    ):  # fmt: skip
        raise _Bad(
            f"points at conversation {record.conversation_id} seq {record.seq}, which is message "
            f"{m.server_msg_id} from {m.sender!r} with client_msg_id {m.client_msg_id.hex()}"
        )
    if w.lookup("idem_expiry", _TS.pack(record.timestamp_ms) + key) is None:
        raise _Bad(f"no idem_expiry key (time {record.timestamp_ms}): it would never be purged")


def _check_user_convs(w: Walker, table: str, key: bytes, value: bytes) -> None:
    member = _split_member(key)
    if member is None or value:
        raise _Bad("not a user\\0conversation key with an empty value")
    ckey = U64S.pack(member[1])
    raw = w.lookup("conversations", ckey)
    if raw is None:
        raise _Bad(f"conversation {member[1]} does not exist")
    if isinstance(raw, bytes):
        try:
            record = decode_conversation(w.opener("conversations", ckey, raw))
        except Exception:  # damaged: the walk of conversations reports it
            w.skipped += 1
            return
        if member[0] not in record.members:
            raise _Bad(f"{member[0]!r} is not a member of conversation {member[1]}")


def _check_expiry(w: Walker, table: str, key: bytes, value: bytes) -> None:
    """The message it names exists. Its time is not compared here (that would open every message again): each
    message's own key is checked from ``messages``, and equal counts (`verify._counts`) leave no second key."""
    if len(key) != TS_CONV_SEQ.size or value:
        raise _Bad("not a time|conversation|seq key with an empty value")
    if w.lookup("messages", key[_TS.size :]) is None:
        _, conversation_id, seq = TS_CONV_SEQ.unpack(key)
        raise _Bad(f"conversation {conversation_id} seq {seq} is not stored (archived and deleted, or lost)")


def _check_idem_expiry(w: Walker, table: str, key: bytes, value: bytes) -> None:
    if len(key) <= _TS.size or value or _split_idem(key[_TS.size :]) is None:
        raise _Bad("not a time|sender\\0client_msg_id key with an empty value")
    if w.lookup("idempotency", key[_TS.size :]) is None:
        raise _Bad("its idempotency entry does not exist")


_META_SIZES: Final = {SCHEMA_KEY: U32.size, NEXT_ID_KEY: U64S.size, LOG_ID_KEY: U64S.size}


def _check_meta(w: Walker, table: str, key: bytes, value: bytes) -> None:
    if key in _META_SIZES and len(value) != _META_SIZES[key]:
        raise _Bad(f"{len(value)} bytes, not {_META_SIZES[key]}")
    if key == LOG_POSITION_KEY:
        _decode("log position", LogPosition.decode, value)
    if key in (LOG_POSITION_KEY, LOG_ID_KEY):
        w.emit(meta=key.decode(), value=value.hex())
    elif key.startswith(DAMAGED_PREFIX) and len(key) == len(DAMAGED_PREFIX) + U64S.size:
        w.emit(marked=U64S.unpack_from(key, len(DAMAGED_PREFIX))[0], seqs=decode_marks(value))


def _check_sealed_only(w: Walker, table: str, key: bytes, value: bytes) -> None:
    """apps and the registered tables of the layers above: what they hold is theirs; the tag proves it intact."""
    w.open(table, key, value)


CHECKS: Final[dict[str, Callable[[Walker, str, bytes, bytes], None]]] = {
    "meta": _check_meta,
    "messages": _check_messages,
    "conversations": _check_conversations,
    "idempotency": _check_idempotency,
    "cursors": _check_cursors,
    "user_convs": _check_user_convs,
    "expiry": _check_expiry,
    "idem_expiry": _check_idem_expiry,
}
"""The check of each core table; every other table (apps, the registered ones) only opens (`_check_sealed_only`)."""
