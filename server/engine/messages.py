"""The values the delivery engine trades with its message log: what a SEND asks to store, what storing it gave, a
stored message, and a cumulative acknowledgement.

They belong to the engine, not to storage: the engine defines what it needs of a message log (`ports.MessageLog`),
and the storage layer implements that with these values. `StoredMessage` is declared as a wire structure (spec
section 3.3 encoding) because it crosses two boundaries as bytes: the store keeps it as a ``messages`` value, and the
core hands it to the gateways over their link (spec section 14).

Like the protocol's frames, these are slotted dataclasses but not frozen: a frozen dataclass's __init__ sets each field
through object.__setattr__ (about 1 us for a StoredMessage against 0.2 us), and several are made for every message.
Treat them as read-only all the same. The same holds for the store's records (`kefu.server.storage.records`,
`schema`) and the link frames (`kefu.server.link.frames`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, NamedTuple

from kefu.protocol.frames import MetaEntry
from kefu.protocol.wire import U16, U64, Bytes32, Fixed16, Seq, Str8, wire_struct

__all__ = [
    "MAX_ID_BYTES",
    "CursorUpdate",
    "Metadata",
    "Outgoing",
    "SendRequest",
    "SendResult",
    "StoredMessage",
    "decode_message",
    "encode_message",
]

MAX_ID_BYTES = 255
"""User and app ids are utf8<u8> on the wire (DELIVER.sender, CLIENT_FINISHED.app_id)."""


class _MetaPairItem:
    """`Seq` item codec: one metadata pair laid out as `MetaEntry`, held as a plain ``(key, value)`` tuple."""

    CONSTRUCT = MetaEntry.CONSTRUCT

    @staticmethod
    def _wire_parse(b: bytes, o: int, end: int) -> tuple[tuple[str, bytes], int]:
        entry, o = MetaEntry._wire_parse(b, o, end)
        return (entry.key, entry.value), o

    @staticmethod
    def _wire_build(pair: tuple[str, bytes]) -> bytes:
        return MetaEntry._wire_build(MetaEntry(*pair))  # type: ignore[no-any-return]


Metadata = Annotated[tuple[tuple[str, bytes], ...], Seq(1, _MetaPairItem)]
"""A message's metadata as (key, value) pairs, laid out as SEND's list<u8> of MetaEntry."""


@wire_struct
@dataclass(slots=True)
class StoredMessage:
    """One stored message, as SEND_ACK and DELIVER describe it.

    conversation_id and seq are in the store's key too: the value is self-describing for backups, archives, the log
    and the link.
    """

    conversation_id: U64
    seq: U64
    server_msg_id: U64
    timestamp_ms: U64
    sender: Str8
    client_msg_id: Fixed16
    content_type: U16
    body: Bytes32
    metadata: Metadata


def decode_message(raw: bytes) -> StoredMessage:
    """A `StoredMessage` from its encoding."""
    return StoredMessage._wire_parse(raw, 0, len(raw))[0]  # type: ignore[attr-defined, no-any-return]


def encode_message(message: StoredMessage) -> bytes:
    """The encoding of a `StoredMessage`."""
    return StoredMessage._wire_build(message)  # type: ignore[attr-defined, no-any-return]


@dataclass(slots=True)
class SendRequest:
    """One SEND to store. `create_members`: if the conversation does not exist, create it with sender + these.

    The layers above delivery (the customer-service desk) add: `system` (the sender need not be a member, and is not
    added by a creation), `set_members` (replace the members after this message; the result's members, who get the
    message, are the old and the new ones), and `puts` ((table, key, value or None to delete) in a table that layer
    registered with the store, written only if the message is).
    """

    sender: str
    client_msg_id: bytes
    conversation_id: int
    content_type: int
    body: bytes
    metadata: tuple[tuple[str, bytes], ...]
    create_members: tuple[str, ...] = ()
    system: bool = False
    set_members: tuple[str, ...] | None = None
    puts: tuple[tuple[str, bytes, bytes | None], ...] = ()
    silent: bool = False
    """Store no message: only `set_members` and `puts` (the conversation must exist); the result has no message."""


@dataclass(slots=True)
class SendResult:
    """The outcome of one SendRequest. `status` is an ErrorCode value; `message` and `members` are set when OK.

    `duplicate`: (sender, client_msg_id) was stored before and `message` is that original message.
    """

    status: int
    duplicate: bool
    message: StoredMessage | None
    members: tuple[str, ...]


@dataclass(slots=True)
class CursorUpdate:
    """A cumulative ack: `user` has received every message of the conversation up to `seq`."""

    user: str
    conversation_id: int
    seq: int


class Outgoing(NamedTuple):
    """A stored message ready to go out: its DELIVER frame (header and body, as `frames.encode` makes it, no flags,
    request_id 0), encoded once by the core however many devices and gateways it goes to."""

    conversation_id: int
    seq: int
    frame: bytes
