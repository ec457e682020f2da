"""What the write-ahead log holds: one record per stored SendRequest, one per group commit's cursor advances.

A record is everything its index entries are derived from, and nothing that a reader of the log could not rebuild:
a `Write` carries the stored message (its bytes as the ``messages`` table keeps them), the conversation's last seq
after it, a membership change (a creation or a replacement of the members) and the `puts` of the registered tables;
the idempotency entry and the two expiry keys follow from the message. A `Cursors` record carries the cumulative
acknowledgements the group commit logged, one per (user, conversation). spec/PROTOCOL.md section 12.2 lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Final

from kefu.protocol.wire import U8, U64, Bytes16, Bytes32, Seq, Str8, WireStruct, wire_struct

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
]

UNCHANGED: Final = 0
CREATED: Final = 1
REPLACED: Final = 2
"""`Write.membership`: the members are as before, the record creates the conversation, or it replaces them."""

Put = tuple[str, bytes, bytes | None]
"""(registered table, key, value; None deletes the key)."""


class Kind(IntEnum):
    """The record kinds of the log (spec section 12.2)."""

    WRITE = 1
    CURSORS = 2


@dataclass(slots=True)
class Write:
    """One stored SendRequest. `previous` (the members before a replacement) is known to the writer only: it is not
    logged, and indexing reads it from the store instead."""

    conversation_id: int
    last_seq: int
    membership: int
    created_ms: int
    members: tuple[str, ...]
    message: StoredMessage | None
    message_raw: bytes
    puts: tuple[Put, ...]
    previous: tuple[str, ...] = ()


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
    payload = _WritePayload(w.conversation_id, w.last_seq, w.membership, w.created_ms, w.members, w.message_raw, puts)
    return _WritePayload._wire_build(payload)  # type: ignore[no-any-return]


def encode_cursors(c: Cursors) -> bytes:
    """The payload of a CURSORS record."""
    entries = tuple(_CursorEntry(user, conv, seq) for user, conv, seq in c.updates)
    return _CursorsPayload._wire_build(_CursorsPayload(entries))  # type: ignore[no-any-return]


def decode_record(kind: int, payload: bytes) -> Write | Cursors:
    """A record from its kind and payload (ValueError if they do not parse: a record from a newer kefu)."""
    try:
        if kind == Kind.WRITE:
            p = _WritePayload._wire_parse(payload, 0, len(payload))[0]
            message = decode_message(p.message) if p.message else None
            puts = tuple((e.table, e.key, None if e.deleted else e.value) for e in p.puts)
            return Write(
                p.conversation_id, p.last_seq, p.membership, p.created_ms, tuple(p.members), message, p.message,
                puts,
            )  # fmt: skip
        if kind == Kind.CURSORS:
            c = _CursorsPayload._wire_parse(payload, 0, len(payload))[0]
            return Cursors(tuple((e.user, e.conversation_id, e.seq) for e in c.updates))
    except Exception as exc:  # Truncated, UnicodeDecodeError: the checksum matched, so a newer layout
        raise ValueError(f"log record of kind {kind} does not parse: {exc!r}") from None
    raise ValueError(f"unknown log record kind {kind}: written by a newer kefu?")
