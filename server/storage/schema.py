"""The store's layout (schema version 3), declared once: table names, keys and stored values.

Integers are unsigned big-endian; ``user`` and ``app_id`` are UTF-8 without 0x00, at most 255 bytes, so
``user + 0x00`` is an unambiguous key prefix. Values named like ``StoredMessage`` are `wire_struct` declarations
(spec/PROTOCOL.md section 3.3 encoding). Section 12.1 of the spec has the table of every key.

Version 2 added the write-ahead log: ``meta`` keys ``log_id`` and ``log_position`` say which log the tables were
indexed from and how far. A version-1 store is upgraded when first opened for writing (it had no log: a fresh one
starts); a kefu that knows only version 1 refuses a version-2 store rather than ignore a log it cannot replay.

Version 3 seals the values at rest (`kefu.server.storage.sealing`, spec section 12): every value of ``messages``,
``conversations``, ``cursors``, ``idempotency``, ``apps``, ``audit`` and the registered tables is a sealed value of
its encoding below, bound to its table and key; ``meta`` and the key-only indexes (``user_convs``, ``expiry``,
``idem_expiry``) are not sealed. ``meta`` key ``sealed`` (1 or 0) says whether the values are sealed: fixed when the
store is made ([storage] seal). The log's WRITE records changed layout with it (`records.Kind`). A version-2 store is
upgraded when first opened for writing (`Store`): its log tail replayed with the old layout, its values sealed in
place (`kefu.server.storage.reseal.migrate`), then a new log.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, NamedTuple, TypeVar

import lmdb

from kefu.protocol.wire import U64, Seq, Text, Truncated, WireStruct, to_construct, wire_struct

from ..engine.messages import MAX_ID_BYTES

__all__ = [
    "CORE_TABLES",
    "LOG_DIR",
    "LOG_ID_KEY",
    "LOG_POSITION_KEY",
    "MAX_MEMBERS",
    "MAX_TABLES",
    "NEXT_ID_KEY",
    "SCHEMA_KEY",
    "SCHEMA_VERSION",
    "SEALED_KEY",
    "ConversationRecord",
    "IdempotencyRecord",
    "LogPosition",
    "Members",
    "conversation_last_seq",
    "decode_conversation",
    "decode_idempotency",
    "encode_conversation",
    "encode_idempotency",
    "id_key",
    "last_message_seq",
    "member_key",
    "message_key",
    "new_log_id",
]

SCHEMA_VERSION: Final = 3
CORE_TABLES: Final = (
    "meta", "messages", "conversations", "cursors", "user_convs", "idempotency", "idem_expiry", "expiry", "apps",
    "audit",
)  # fmt: skip
"""The named dbs of delivery itself (and ``audit``, the tamper-evident audit trail: `kefu.server.storage.audit`); the
layers above register their own (`Store(tables=...)`)."""
MAX_TABLES: Final = 32
"""Named dbs an environment may hold (LMDB's max_dbs: a small fixed table in the environment's header)."""
MAX_MEMBERS: Final = 0xFFFF  # the members list has a u16 count

SCHEMA_KEY: Final = b"schema_version"
NEXT_ID_KEY: Final = b"next_server_msg_id"
LOG_ID_KEY: Final = b"log_id"
LOG_POSITION_KEY: Final = b"log_position"
SEALED_KEY: Final = b"sealed"
"""``meta``: b"\x01" if the values are sealed, b"\x00" if plain (schema 3; fixed when the store is made)."""
LOG_DIR: Final = "log"
"""The write-ahead log's directory, inside the store's: a backup, a restore or a migration moves them together."""
U32 = struct.Struct("!I")
U64S = struct.Struct("!Q")
CONV_SEQ = struct.Struct("!QQ")
TS_CONV_SEQ = struct.Struct("!QQQ")
_POSITION = struct.Struct("!QQQI")
U64_LIMIT: Final = 1 << 64


class _NameItem:
    """`Seq` item codec: one user id as utf8<u8>, held as a plain str."""

    CONSTRUCT = to_construct(Text(1))

    @staticmethod
    def _wire_parse(b: bytes, o: int, end: int) -> tuple[str, int]:
        if o >= end or o + 1 + b[o] > end:
            raise Truncated
        n = b[o]
        try:
            return b[o + 1 : o + 1 + n].decode(), o + 1 + n
        except UnicodeDecodeError:
            raise Truncated from None

    @staticmethod
    def _wire_build(name: str) -> bytes:
        raw = name.encode()
        return bytes((len(raw),)) + raw


Members = Annotated[tuple[str, ...], Seq(2, _NameItem)]


@wire_struct
@dataclass(slots=True)
class ConversationRecord(WireStruct):
    """The ``conversations`` value. `last_seq` (a floor) must stay the first field: retention rewrites only it."""

    last_seq: U64
    created_ms: U64
    members: Members


@wire_struct
@dataclass(slots=True)
class IdempotencyRecord(WireStruct):
    """The ``idempotency`` value. Built straight from a `StoredMessage`, whose field names it shares."""

    conversation_id: U64
    seq: U64
    server_msg_id: U64
    timestamp_ms: U64


T = TypeVar("T")


def _decoder(cls: type[T]) -> Callable[[bytes], T]:
    parse = cls._wire_parse  # type: ignore[attr-defined]

    def decode(raw: bytes) -> T:
        return parse(raw, 0, len(raw))[0]  # type: ignore[no-any-return]

    return decode


decode_conversation = _decoder(ConversationRecord)
decode_idempotency = _decoder(IdempotencyRecord)
encode_conversation: Callable[[ConversationRecord], bytes] = ConversationRecord._wire_build
encode_idempotency: Callable[[Any], bytes] = IdempotencyRecord._wire_build


class LogPosition(NamedTuple):
    """Where the log continues after a record: the next record's segment, offset in it and lsn, and the checksum
    of the record before it (the chain, spec section 12.2). Stored in ``meta`` as ``log_position``."""

    segment: int
    offset: int
    lsn: int
    crc: int

    def encode(self) -> bytes:
        return _POSITION.pack(*self)

    @classmethod
    def decode(cls, raw: bytes) -> LogPosition:
        return cls(*_POSITION.unpack(raw))

    @classmethod
    def first(cls, log_id: int) -> LogPosition:
        """The start of a new log: no segment yet (0), lsn 1, the chain seeded with the log's id."""
        return cls(0, 0, 1, zlib.crc32(U64S.pack(log_id)))


def new_log_id() -> int:
    """A random identity for a new log, so that a record of another log never chains to this one."""
    return int.from_bytes(os.urandom(8), "big") or 1


def message_key(conversation_id: int, seq: int) -> bytes:
    """The ``messages`` key."""
    return CONV_SEQ.pack(conversation_id, seq)


def conversation_last_seq(cur: lmdb.Cursor[bytes], conversation_id: int, floor: int | None) -> int:
    """A conversation's last seq from the `floor` of its ``conversations`` record (None: it does not exist, 0) and
    `cur`, a cursor on ``messages``: the larger of the floor and the seq of its last stored message."""
    if floor is None:
        return 0
    return max(floor, last_message_seq(cur, conversation_id))


def last_message_seq(cur: lmdb.Cursor[bytes], conversation_id: int) -> int:
    """The seq of the conversation's last key in ``messages`` (`cur` is a cursor on it); 0 if it has none."""
    if cur.set_range(CONV_SEQ.pack(conversation_id, U64_LIMIT - 1)):
        found = cur.key()
        if CONV_SEQ.unpack(found)[0] == conversation_id:
            return U64_LIMIT - 1
        if not cur.prev():
            return 0
    elif not cur.last():
        return 0
    conv, seq = CONV_SEQ.unpack(cur.key())
    return seq if conv == conversation_id else 0


def id_key(name: str) -> bytes | None:
    """The UTF-8 key of a user or app id, or None if the id is empty, too long or holds 0x00."""
    try:
        raw = name.encode()
    except UnicodeEncodeError:
        return None
    return raw if 0 < len(raw) <= MAX_ID_BYTES and b"\0" not in raw else None


def member_key(user: bytes, conversation_id: int) -> bytes:
    """The ``cursors`` and ``user_convs`` key of a user's (id_key) conversation."""
    return user + b"\0" + U64S.pack(conversation_id)
