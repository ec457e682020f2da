"""What the write-ahead log holds: one record per stored SendRequest, one per group commit's cursor advances.

A record is everything its index entries are derived from, and nothing that a reader of the log could not rebuild:
a `Write` carries the stored message (its bytes as the ``messages`` table keeps them: sealed, `sealing`), what
indexing needs of it in clear (its server_msg_id, timestamp, sender and client_msg_id: ids and times, no content),
the conversation's last seq after it, a membership change (a creation or a replacement of the members) and the
`puts` of the registered tables (their values sealed too); the idempotency entry and the two expiry keys follow
from those. A `Cursors` record carries the cumulative acknowledgements the group commit logged, one per (user,
conversation). spec/PROTOCOL.md section 12.2 lays them out.

Kinds: WRITE (3) is the sealed layout of schema 3. WRITE_V2 (1), schema 2's layout with the message and the puts in
clear, is only read: at the upgrade of a version-2 store, whose log tail is replayed before its values are sealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Final

from kefu.protocol.wire import U8, U64, Bytes8, Bytes16, Bytes32, Seq, Str8, WireStruct, wire_struct

from ..engine.messages import StoredMessage, decode_message
from .schema import Members

__all__ = [
    "CREATED",
    "REPLACED",
    "UNCHANGED",
    "Cursors",
    "Kind",
    "Put",
    "Write",
    "decode_record",
    "encode_cursors",
    "encode_write",
    "encode_write_v2",
]

UNCHANGED: Final = 0
CREATED: Final = 1
REPLACED: Final = 2
"""`Write.membership`: the members are as before, the record creates the conversation, or it replaces them."""

Put = tuple[str, bytes, bytes | None]
"""(registered table, key, value; None deletes the key)."""


class Kind(IntEnum):
    """The record kinds of the log (spec section 12.2)."""

    WRITE_V2 = 1
    """Schema 2's WRITE, message and puts in clear: read only, to replay an old log at the upgrade."""
    CURSORS = 2
    WRITE = 3


@dataclass(slots=True)
class Write:
    """One stored SendRequest. `message_raw` and the values of `puts` are as stored (sealed, unless the store is
    plain); the message's index fields (`server_msg_id`, `timestamp_ms`, `sender`, `client_msg_id`; its seq is
    `last_seq`) are in clear. Known to the writer only, never logged: `message` (the message in clear, which the
    overlay serves), `clear_puts` (the puts before sealing, likewise) and `previous` (the members before a
    replacement: indexing reads them from the store instead)."""

    conversation_id: int
    last_seq: int
    membership: int
    created_ms: int
    members: tuple[str, ...]
    message: StoredMessage | None
    message_raw: bytes
    puts: tuple[Put, ...]
    previous: tuple[str, ...] = ()
    server_msg_id: int = 0
    timestamp_ms: int = 0
    sender: str = ""
    client_msg_id: bytes = b""
    clear_puts: tuple[Put, ...] = ()


@dataclass(slots=True)
class Cursors:
    """The cursor advances of one group commit: (user, conversation_id, seq), at most one per (user, conversation)."""

    updates: tuple[tuple[str, int, int], ...]


# --- the payloads, declared once -------------------------------------------------------------------------------


@wire_struct
@dataclass(slots=True)
class _PutEntry(WireStruct):
    table: Str8
    key: Bytes16
    deleted: U8
    value: Bytes32


@wire_struct
@dataclass(slots=True)
class _WritePayload(WireStruct):
    """Kind WRITE (3): the message and the puts' values sealed; the message's index fields in clear."""

    conversation_id: U64
    last_seq: U64
    membership: U8
    created_ms: U64
    members: Members
    server_msg_id: U64
    timestamp_ms: U64
    sender: Str8
    client_msg_id: Bytes8
    message: Bytes32
    puts: Annotated[tuple[_PutEntry, ...], Seq(2, _PutEntry)]


@wire_struct
@dataclass(slots=True)
class _WritePayloadV2(WireStruct):
    """Kind WRITE_V2 (1), schema 2: the message and the puts in clear."""

    conversation_id: U64
    last_seq: U64
    membership: U8
    created_ms: U64
    members: Members
    message: Bytes32
    puts: Annotated[tuple[_PutEntry, ...], Seq(2, _PutEntry)]


@wire_struct
@dataclass(slots=True)
class _CursorEntry(WireStruct):
    user: Str8
    conversation_id: U64
    seq: U64


@wire_struct
@dataclass(slots=True)
class _CursorsPayload(WireStruct):
    updates: Annotated[tuple[_CursorEntry, ...], Seq(4, _CursorEntry)]


def encode_write(w: Write) -> bytes:
    """The payload of a WRITE record."""
    puts = tuple(_PutEntry(t, k, int(v is None), v or b"") for t, k, v in w.puts)
    payload = _WritePayload(
        w.conversation_id, w.last_seq, w.membership, w.created_ms, w.members, w.server_msg_id, w.timestamp_ms,
        w.sender, w.client_msg_id, w.message_raw, puts,
    )  # fmt: skip
    return _WritePayload._wire_build(payload)  # type: ignore[no-any-return]


def encode_write_v2(w: Write) -> bytes:
    """The payload of a schema-2 WRITE_V2 record (message and puts in clear): for tests of the upgrade only."""
    puts = tuple(_PutEntry(t, k, int(v is None), v or b"") for t, k, v in w.puts)
    payload = _WritePayloadV2(w.conversation_id, w.last_seq, w.membership, w.created_ms, w.members, w.message_raw, puts)
    return _WritePayloadV2._wire_build(payload)  # type: ignore[no-any-return]


def encode_cursors(c: Cursors) -> bytes:
    """The payload of a CURSORS record."""
    entries = tuple(_CursorEntry(user, conv, seq) for user, conv, seq in c.updates)
    return _CursorsPayload._wire_build(_CursorsPayload(entries))  # type: ignore[no-any-return]


def decode_record(kind: int, payload: bytes) -> Write | Cursors:
    """A record from its kind and payload (ValueError if they do not parse: a record from a newer kefu). A WRITE's
    `message` is None: its message is sealed, and indexing needs only its index fields."""
    try:
        if kind == Kind.WRITE:
            p = _WritePayload._wire_parse(payload, 0, len(payload))[0]
            return Write(
                p.conversation_id, p.last_seq, p.membership, p.created_ms, tuple(p.members), None, p.message,
                _puts(p.puts), (), p.server_msg_id, p.timestamp_ms, p.sender, p.client_msg_id,
            )  # fmt: skip
        if kind == Kind.CURSORS:
            c = _CursorsPayload._wire_parse(payload, 0, len(payload))[0]
            return Cursors(tuple((e.user, e.conversation_id, e.seq) for e in c.updates))
        if kind == Kind.WRITE_V2:
            return _decode_v2(payload)
    except Exception as exc:  # Truncated, UnicodeDecodeError: the checksum matched, so a newer layout
        raise ValueError(f"log record of kind {kind} does not parse: {exc!r}") from None
    raise ValueError(f"unknown log record kind {kind}: written by a newer kefu?")


def _puts(entries: tuple[_PutEntry, ...]) -> tuple[Put, ...]:
    return tuple((e.table, e.key, None if e.deleted else e.value) for e in entries)


def _decode_v2(payload: bytes) -> Write:
    p = _WritePayloadV2._wire_parse(payload, 0, len(payload))[0]
    puts = _puts(p.puts)
    w = Write(p.conversation_id, p.last_seq, p.membership, p.created_ms, tuple(p.members), None, p.message, puts)
    w.clear_puts = puts
    if p.message:
        m = w.message = decode_message(p.message)
        w.server_msg_id, w.timestamp_ms, w.sender, w.client_msg_id = (
            m.server_msg_id, m.timestamp_ms, m.sender, m.client_msg_id
        )  # fmt: skip
    return w
