"""The internal frames between the gateways and the core (spec section 14, informative).

Theory of operation: a link is one Unix-domain stream socket between one gateway process and the core process, made by
the supervisor (a socketpair: nothing listens, and nothing outside the two processes can reach it). It is plaintext:
it never leaves the host. Each frame is ``length u32 | type u8 | payload``, the length counting the type and the
payload; the payload is declared once below as a wire structure (section 3.3 encoding). A sender batches: every frame
queued in one event-loop iteration leaves in one write.

A kefu frame carried inside (a SEND, a SYNC, a service request, a frame for a connection) is its own header and body,
exactly as on a client connection, so the core parses it with the protocol's own decoder.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Annotated, Any, Final

from kefu.protocol.errors import ErrorCode, RemoteProtocolError
from kefu.protocol.frames import HEADER, TYPE_OFFSET, Frame, encode, parse_body
from kefu.protocol.wire import U8, U16, U32, U64, Bytes32, Fixed16, Seq, Str8, wire_struct

__all__ = [
    "HEAD",
    "MAX_LINK_FRAME",
    "Admit",
    "Admitted",
    "Closed",
    "CursorAdvance",
    "Fetch",
    "Fetched",
    "FrameFor",
    "Hello",
    "Item",
    "LinkType",
    "Opened",
    "Plan",
    "Publish",
    "Recipient",
    "Restore",
    "Resume",
    "Service",
    "Submit",
    "Submitted",
    "SyncRequest",
    "build",
    "kefu_frame",
    "parse",
]

HEAD: Final = struct.Struct("!IB")
"""length (u32, of type and payload), type (u8)."""
MAX_LINK_FRAME: Final = 64 << 20
"""Largest link frame: a SYNC plan with a full window of the largest messages (256 x 256 KiB) fits with room."""


class LinkType(enum.IntEnum):
    """Link frame types: 0x01-0x3F from a gateway to the core, 0x41-0x7F from the core to a gateway."""

    HELLO = 0x01
    RESTORE = 0x02
    ADMIT = 0x03
    OPENED = 0x04
    CLOSED = 0x05
    SUBMIT = 0x06
    CURSOR = 0x07
    SYNC = 0x08
    FETCH = 0x09
    SERVICE = 0x0A
    SUBMITTED = 0x41
    PUBLISH = 0x42
    FRAME = 0x43
    RESUME = 0x44
    ADMITTED = 0x45
    FETCHED = 0x46


# --- gateway to core --------------------------------------------------------------------------------------


@wire_struct
@dataclass(slots=True)
class Hello:
    """First frame of a link: which gateway this is. RESTORE frames for the connections it holds follow."""

    gateway: U16
    pid: U32


@wire_struct
@dataclass(slots=True)
class Restore:
    """A connection the gateway already holds (after the core restarted): admitted, and ready if `user` is set."""

    sid: U64
    address: Str8
    user: Str8


@wire_struct
@dataclass(slots=True)
class Admit:
    """A new connection from `address` asks to be admitted (answered by ADMITTED)."""

    sid: U64
    address: Str8


@wire_struct
@dataclass(slots=True)
class Opened:
    """The connection finished its handshake as `user`."""

    sid: U64
    user: Str8


@wire_struct
@dataclass(slots=True)
class Closed:
    """The connection is gone."""

    sid: U64


@wire_struct
@dataclass(slots=True)
class Submit:
    """A SEND (`frame`: its header and body) of connection `sid`, read at `t0_ns` (CLOCK_MONOTONIC)."""

    sid: U64
    t0_ns: U64
    frame: Bytes32


@wire_struct
@dataclass(slots=True)
class CursorAdvance:
    """`user` acknowledged every message of the conversation up to `seq`."""

    user: Str8
    conversation_id: U64
    seq: U64


@wire_struct
@dataclass(slots=True)
class SyncRequest:
    """A SYNC (`frame`) of connection `sid`, whose delivery window has `room` free slots."""

    sid: U64
    room: U32
    frame: Bytes32


@wire_struct
@dataclass(slots=True)
class Fetch:
    """Read messages after_seq < seq <= until_seq of a conversation, at most `limit` (answered by FETCHED)."""

    ticket: U64
    conversation_id: U64
    after_seq: U64
    until_seq: U64
    limit: U32


@wire_struct
@dataclass(slots=True)
class Service:
    """A customer-service request (`frame`) of connection `sid`."""

    sid: U64
    frame: Bytes32


# --- core to gateway --------------------------------------------------------------------------------------


@wire_struct
@dataclass(slots=True)
class Submitted:
    """The outcome of a SUBMIT: the fields of its SEND_ACK, and the sender's stored cursor before the message."""

    sid: U64
    cursor: U64
    status: U16
    duplicate: U8
    request_id: U32
    client_msg_id: Fixed16
    conversation_id: U64
    seq: U64
    server_msg_id: U64
    timestamp_ms: U64


@wire_struct
@dataclass(slots=True)
class Recipient:
    """A member with connections on the gateway, and its stored cursor in the conversation."""

    user: Str8
    cursor: U64


@wire_struct
@dataclass(slots=True)
class Item:
    """A message of a conversation ready to go out: its seq and its DELIVER (header and body)."""

    seq: U64
    frame: Bytes32


@wire_struct
@dataclass(slots=True)
class Publish:
    """A durable message (seq `seq` of the conversation, its DELIVER in `frame`) for the gateway's connections of
    `recipients`, except connection `origin` (0: none)."""

    origin: U64
    t0_ns: U64
    conversation_id: U64
    seq: U64
    frame: Bytes32
    recipients: Annotated[tuple[Recipient, ...], Seq(2, Recipient)]


@wire_struct
@dataclass(slots=True)
class FrameFor:
    """A kefu frame (header and body) for connection `sid`."""

    sid: U64
    frame: Bytes32


@wire_struct
@dataclass(slots=True)
class Plan:
    """One stream a SYNC resumes: after `after_seq`, up to `last_seq`, with its first messages."""

    conversation_id: U64
    after_seq: U64
    last_seq: U64
    items: Annotated[tuple[Item, ...], Seq(4, Item)]


@wire_struct
@dataclass(slots=True)
class Resume:
    """The core's answer to a resuming SYNC of connection `sid`."""

    sid: U64
    request_id: U32
    conversation_id: U64
    plans: Annotated[tuple[Plan, ...], Seq(4, Plan)]


@wire_struct
@dataclass(slots=True)
class Admitted:
    """The verdict on an ADMIT: `code` 0 admits, else the wire code of the refusal."""

    sid: U64
    code: U16


@wire_struct
@dataclass(slots=True)
class Fetched:
    """The answer to a FETCH: messages of one conversation."""

    ticket: U64
    conversation_id: U64
    items: Annotated[tuple[Item, ...], Seq(4, Item)]


_TYPES: dict[type, LinkType] = {
    Hello: LinkType.HELLO, Restore: LinkType.RESTORE, Admit: LinkType.ADMIT, Opened: LinkType.OPENED,
    Closed: LinkType.CLOSED, Submit: LinkType.SUBMIT, CursorAdvance: LinkType.CURSOR, SyncRequest: LinkType.SYNC,
    Fetch: LinkType.FETCH, Service: LinkType.SERVICE, Submitted: LinkType.SUBMITTED, Publish: LinkType.PUBLISH,
    FrameFor: LinkType.FRAME, Resume: LinkType.RESUME, Admitted: LinkType.ADMITTED, Fetched: LinkType.FETCHED,
}  # fmt: skip
CLASSES: dict[int, Any] = {int(t): cls for cls, t in _TYPES.items()}
"""Link frame classes by type."""


def build(frame: Any) -> bytes:
    """A link frame's bytes: head and payload."""
    payload: bytes = frame._wire_build(frame)
    return HEAD.pack(len(payload) + 1, _TYPES[type(frame)]) + payload


def parse(frame_type: int, payload: bytes) -> Any:
    """A link frame from its type and payload (ValueError if the type is unknown or the payload does not parse)."""
    cls = CLASSES.get(frame_type)
    if cls is None:
        raise ValueError(f"unknown link frame type 0x{frame_type:02x}")
    try:
        frame, _ = cls._wire_parse(payload, 0, len(payload))
    except Exception as exc:
        raise ValueError(f"malformed {cls.__name__}: {exc!r}") from None
    return frame


def kefu_frame(raw: bytes) -> Frame:
    """A kefu frame carried in a link frame: its header and body, parsed by the protocol's own decoder."""
    length, _version, frame_type, flags, request_id = HEADER.unpack_from(raw)
    if len(raw) != HEADER.size + length or raw[TYPE_OFFSET] != frame_type:
        raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME, "carried frame length")
    return parse_body(frame_type, raw[HEADER.size :], flags=flags, request_id=request_id)


def carry(frame: Frame) -> bytes:
    """A kefu frame's header and body, to carry in a link frame."""
    return encode(frame)
