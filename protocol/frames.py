"""Frames: the header, one dataclass per frame type, and the stream decoder (spec/PROTOCOL.md section 3).

Theory of operation: the byte stream is a sequence of frames, each a 12-byte header and a body. Before the
handshake completes, CLIENT_HELLO, SERVER_HELLO and ERROR travel as plaintext frames; everything else travels
inside RECORD frames, whose body is an AEAD ciphertext of one or more whole inner frames (records.py).

`FrameDecoder.feed` takes any chunk of the stream and returns every complete frame in it, in one pass. It
reads a header as soon as 12 bytes are there and checks it against the decoder's `limits` at once, before any of
the body is buffered: a type the connection's current state does not accept is refused from the header alone, and
so is a length above what that state allows for the type (the connection narrows `limits` until the handshake is
over, so that an unauthenticated peer can make it hold at most a handshake's worth of bytes; section 8). A header
that breaks the limits after other frames of the same chunk is not judged there: `feed` stops before it and sets
`blocked`, the connection handles the frames before it (which may change its state and so its limits), and calls
`feed(b"")` to go on; a header that the old limits allowed and whose body has not all arrived is judged again under
the new ones (`recheck`), so that it is refused from the header then, not once its body is complete. Buffered bytes
live in one bytearray consumed by offset and compacted once per call, so feeding a 1 MiB frame one byte at a time
costs linear time.

Frame-type numbering (section 3.4): 0x00-0x7F are critical (a receiver that does not know one fails with
UNKNOWN_FRAME_TYPE), 0x80-0xFF are ignorable (a receiver that does not know one skips it). A peer sends
a critical type only if the other side's version is known to support it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from typing import Annotated, ClassVar, NamedTuple

from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .wire import (
    U8,
    U16,
    U32,
    U64,
    Bytes8,
    Bytes16,
    Bytes32,
    Fixed16,
    Fixed32,
    Int,
    Seq,
    Str8,
    Str16,
    Truncated,
    WireStruct,
    wire_struct,
)  # fmt: skip

PROTOCOL_VERSION = 1
"""The only version this implementation speaks (header byte 4)."""

# Section 3.1: length u32 | version u8 | type u8 | flags u16 | request_id u32, big-endian.
HEADER = struct.Struct("!IBBHI")
HEADER_LEN = HEADER.size
TYPE_OFFSET = 5
"""Where the type byte sits in an encoded frame (after length u32 and version u8)."""

MAX_BODY = 1 << 20
"""Largest inner frame body, 1 MiB: room for any chat message or attachment reference, and a bound on what
one peer can make the other buffer before a frame is complete."""

MAX_HANDSHAKE_BODY = 4096
"""Largest CLIENT_HELLO or SERVER_HELLO body. Real ones are under 400 bytes; the bound keeps an
unauthenticated peer from making the server buffer more than this."""

MAX_RECORD_PLAINTEXT = MAX_BODY + HEADER_LEN
"""A record's plaintext holds at most one maximal frame, so every frame fits in one record."""

TAG_LEN = 16
MAX_RECORD_BODY = MAX_RECORD_PLAINTEXT + TAG_LEN
"""Largest RECORD frame body: the largest plaintext plus the AEAD tag."""

IGNORABLE_TYPE_MIN = 0x80
"""Frame types at or above this value are skipped by receivers that do not know them."""


class FrameType(IntEnum):
    """Frame type codes (section 3.4)."""

    CLIENT_HELLO = 0x01
    SERVER_HELLO = 0x02
    SERVER_FINISHED = 0x03
    CLIENT_FINISHED = 0x04
    NEW_TICKET = 0x05
    KEY_UPDATE = 0x06
    RECORD = 0x0F
    SEND = 0x10
    SEND_ACK = 0x11
    DELIVER = 0x12
    DELIVER_ACK = 0x13
    SYNC = 0x14
    SYNC_DONE = 0x15
    PING = 0x20
    PONG = 0x21
    ERROR = 0x30
    GOAWAY = 0x31
    CLOSE = 0x32
    AGENT_STATUS = 0x40
    OPEN_CONVERSATION = 0x41
    OPENED = 0x42
    TRANSFER = 0x43
    END_CONVERSATION = 0x44
    WATCH = 0x45
    DRAFT_DECISION = 0x46
    SEARCH = 0x47
    SEARCH_RESULT = 0x48
    QUEUE_POSITION = 0x49
    SENTIMENT = 0x4A
    CONVERSATION_INFO = 0x4B
    RESULT = 0x4F


class FrameTally:
    """Frames received and sent, by frame type byte, for whoever owns the connections (the server's metrics).

    The hot path only bumps a list slot; the owner reads and resets the counts with `take` (the server does so
    once a second), so no lock is taken per frame. One tally is shared by all the connections it is given to.
    """

    __slots__ = ("received", "sent")

    def __init__(self) -> None:
        self.received = [0] * 256
        self.sent = [0] * 256

    def take(self) -> tuple[list[int], list[int]]:
        """The counts since the last call (received, sent), indexed by frame type; both reset to zero."""
        received, sent = self.received, self.sent
        self.received, self.sent = [0] * 256, [0] * 256
        return received, sent


class Flag:
    """Header flag bits (section 3.2). Bits a receiver does not know are ignored."""

    DUPLICATE = 0x0001
    """SEND_ACK: this SEND was a repeat of an already stored message."""
    REDELIVERY = 0x0001
    """DELIVER: this DELIVER may have been sent before (a retry or a SYNC)."""


class PskMode(IntEnum):
    """How a CLIENT_HELLO uses a resumption ticket (section 5.6)."""

    NONE = 0
    PSK_ONLY = 1
    PSK_WITH_ECDHE = 2


class AuthMode(IntEnum):
    """How a CLIENT_FINISHED proves the client (section 5.5)."""

    RESUMED = 0
    APP_SECRET = 1
    CLIENT_KEY = 2


class ContentType(IntEnum):
    """Registered message content types (section 4.1); others are passed through untouched."""

    TEXT = 1
    JSON = 2
    BINARY = 3
    EVENT = 4


class AgentState(IntEnum):
    """AGENT_STATUS values (section 13.3)."""

    ONLINE = 1
    AWAY = 2
    BUSY = 3
    OFFLINE = 4


class ConversationState(IntEnum):
    """A service conversation's lifecycle state (section 13.2)."""

    WAITING = 1
    ASSIGNED = 2
    TRANSFERRED = 3
    CLOSED = 4


class DraftAction(IntEnum):
    """DRAFT_DECISION actions (section 13.8)."""

    APPROVE = 1
    EDIT = 2
    REJECT = 3


@dataclass(slots=True, kw_only=True)
class Frame(WireStruct):
    """Base of every frame: the header fields that are not the length, type or version.

    Frames are slotted but not frozen: a frozen dataclass's __init__ sets each field through
    object.__setattr__, which costs 0.9 us for a DELIVER, a third of the whole record budget. Treat
    received frames as read-only all the same.
    """

    TYPE: ClassVar[FrameType]
    request_id: int = 0
    flags: int = 0


# --- nested structures ----------------------------------------------------------------------------------


@wire_struct
@dataclass(slots=True)
class KeyShareEntry(WireStruct):
    """One ephemeral public key offered in CLIENT_HELLO, tagged with its suite."""

    suite: U16
    key: Bytes16


@wire_struct
@dataclass(slots=True)
class MetaEntry(WireStruct):
    """One optional metadata pair of a message."""

    key: Str8
    value: Bytes16


@wire_struct
@dataclass(slots=True)
class AckEntry(WireStruct):
    """A cumulative acknowledgement: every message of `conversation_id` up to `seq` is received."""

    conversation_id: U64
    seq: U64


SuiteList = Annotated[tuple[int, ...], Seq(1, Int(2))]
ShareList = Annotated[tuple[KeyShareEntry, ...], Seq(1, KeyShareEntry)]
MetaList = Annotated[tuple[MetaEntry, ...], Seq(1, MetaEntry)]
AckList = Annotated[tuple[AckEntry, ...], Seq(2, AckEntry)]


# --- handshake (section 5) ------------------------------------------------------------------------------


@wire_struct
@dataclass(slots=True)
class ClientHello(Frame):
    """Section 5.2. `binder` is the last field: it is computed over the frame up to its length byte."""

    TYPE = FrameType.CLIENT_HELLO
    random: Fixed32
    suites: SuiteList
    key_shares: ShareList
    keepalive_ms: U32
    psk_mode: U8
    ticket: Bytes16
    obfuscated_age: U32
    binder: Bytes8


@wire_struct
@dataclass(slots=True)
class ServerHello(Frame):
    """Section 5.3. `key_share` is empty when a ticket is accepted in PSK_ONLY mode."""

    TYPE = FrameType.SERVER_HELLO
    random: Fixed32
    suite: U16
    key_share: Bytes16
    psk_accepted: U8
    keepalive_ms: U32


@wire_struct
@dataclass(slots=True)
class ServerFinished(Frame):
    """Section 5.4, encrypted under the server handshake key. Key fields are empty after resumption."""

    TYPE = FrameType.SERVER_FINISHED
    key_type: U16
    public_key: Bytes16
    signature: Bytes16
    verify_data: Bytes8


@wire_struct
@dataclass(slots=True)
class ClientFinished(Frame):
    """Section 5.5, encrypted under the client handshake key."""

    TYPE = FrameType.CLIENT_FINISHED
    app_id: Str8
    auth_mode: U8
    key_type: U16
    public_key: Bytes16
    proof: Bytes16
    verify_data: Bytes8


@wire_struct
@dataclass(slots=True)
class NewTicket(Frame):
    """Section 5.6: a single-use resumption ticket, opaque to the client."""

    TYPE = FrameType.NEW_TICKET
    lifetime_s: U32
    age_add: U32
    nonce: Bytes8
    ticket: Bytes16


@wire_struct
@dataclass(slots=True)
class KeyUpdate(Frame):
    """Section 6.4: the sender's next record uses its next traffic key."""

    TYPE = FrameType.KEY_UPDATE
    update_requested: U8


# --- delivery (section 4) -------------------------------------------------------------------------------


@wire_struct
@dataclass(slots=True)
class Send(Frame):
    """Section 4.1: a client submits a message; idempotent on (sender, client_msg_id)."""

    TYPE = FrameType.SEND
    client_msg_id: Fixed16
    conversation_id: U64
    content_type: U16
    body: Bytes32
    metadata: MetaList = ()


@wire_struct
@dataclass(slots=True)
class SendAck(Frame):
    """Section 4.2: the message is durable (status OK) or refused (an error code)."""

    TYPE = FrameType.SEND_ACK
    client_msg_id: Fixed16
    status: U16
    server_msg_id: U64
    conversation_id: U64
    seq: U64
    timestamp_ms: U64


@wire_struct
@dataclass(slots=True)
class Deliver(Frame):
    """Section 4.3: one message of a conversation, in sequence order."""

    TYPE = FrameType.DELIVER
    conversation_id: U64
    seq: U64
    server_msg_id: U64
    timestamp_ms: U64
    client_msg_id: Fixed16
    content_type: U16
    sender: Str8
    body: Bytes32
    metadata: MetaList = ()


@wire_struct
@dataclass(slots=True)
class DeliverAck(Frame):
    """Section 4.4: cumulative acknowledgements, one per conversation."""

    TYPE = FrameType.DELIVER_ACK
    acks: AckList


@wire_struct
@dataclass(slots=True)
class Sync(Frame):
    """Section 4.5: send again every message with after_seq < seq <= until_seq (0 = latest)."""

    TYPE = FrameType.SYNC
    conversation_id: U64
    after_seq: U64
    until_seq: U64
    limit: U32


@wire_struct
@dataclass(slots=True)
class SyncDone(Frame):
    """Section 4.5: the end of one SYNC's DELIVERs; `more` = 1 when `limit` cut it short."""

    TYPE = FrameType.SYNC_DONE
    conversation_id: U64
    last_seq: U64
    more: U8


@wire_struct
@dataclass(slots=True)
class Ping(Frame):
    """Section 4.6: keepalive probe; the peer answers PONG with the same opaque value."""

    TYPE = FrameType.PING
    opaque: U64


@wire_struct
@dataclass(slots=True)
class Pong(Frame):
    """Section 4.6."""

    TYPE = FrameType.PONG
    opaque: U64


@wire_struct
@dataclass(slots=True)
class Error(Frame):
    """Section 4.7: an error code (spec/errors.toml) and a human-readable reason."""

    TYPE = FrameType.ERROR
    code: U16
    reason: Str16


@wire_struct
@dataclass(slots=True)
class Goaway(Frame):
    """Section 4.8: the server is draining; reconnect after the delay with the given backoff."""

    TYPE = FrameType.GOAWAY
    code: U16
    reconnect_delay_ms: U32
    backoff_initial_ms: U32
    backoff_max_ms: U32
    jitter_permille: U16
    reason: Str16


@wire_struct
@dataclass(slots=True)
class Close(Frame):
    """Section 4.9: the sender will send nothing more (a clean close, like TLS close_notify)."""

    TYPE = FrameType.CLOSE
    code: U16
    reason: Str16


# --- customer service (section 13) ---------------------------------------------------------------------

SERVICE_BASE = 1 << 62
"""Section 13.2: service conversations get ids from here up; a client never creates one at or above it."""
STAFF_BIT = 1 << 63
"""Section 13.2: the staff channel of service conversation c (its owner and watching supervisors: whispers, AI
drafts, tags) is conversation c | STAFF_BIT; the visitor is never a member of it."""
SYSTEM_SENDER = "#kefu"
"""Section 13.2: the sender of system messages; app ids cannot start with '#'."""


def staff_channel(conversation_id: int) -> int:
    """The staff channel of a service conversation (section 13.2)."""
    return conversation_id | STAFF_BIT


def is_staff_channel(conversation_id: int) -> bool:
    """Whether `conversation_id` is a staff channel (section 13.2)."""
    return bool(conversation_id & STAFF_BIT)


@wire_struct
@dataclass(slots=True)
class AgentStatus(Frame):
    """Section 13.3: an agent sets its own status (AgentState); answered by RESULT."""

    TYPE = FrameType.AGENT_STATUS
    status: U8


@wire_struct
@dataclass(slots=True)
class OpenConversation(Frame):
    """Section 13.4: a visitor (or an integration, for `customer`) asks for service; answered by OPENED.

    Idempotent on (opener, customer, client_ref): a repeat gets the same conversation.
    """

    TYPE = FrameType.OPEN_CONVERSATION
    client_ref: Fixed16
    customer: Str8
    group: Str8
    attributes: MetaList
    first_message: Bytes32


@wire_struct
@dataclass(slots=True)
class Opened(Frame):
    """Section 13.4: the conversation, its state, and its queue position (0 when assigned)."""

    TYPE = FrameType.OPENED
    conversation_id: U64
    state: U8
    group: Str8
    agent: Str8
    position: U32


@wire_struct
@dataclass(slots=True)
class Transfer(Frame):
    """Section 13.6: hand a conversation to an agent (`to_agent`) or a group (`to_group`); answered by RESULT.

    `expect_owner`, when not empty, makes it a compare-and-set: refused with CONFLICT unless that agent owns the
    conversation when the server handles the request (of two racing transfers, exactly one wins)."""

    TYPE = FrameType.TRANSFER
    conversation_id: U64
    expect_owner: Str8
    to_agent: Str8
    to_group: Str8
    note: Str16


@wire_struct
@dataclass(slots=True)
class EndConversation(Frame):
    """Section 13.2: close a service conversation; answered by RESULT."""

    TYPE = FrameType.END_CONVERSATION
    conversation_id: U64
    reason: Str16


@wire_struct
@dataclass(slots=True)
class Watch(Frame):
    """Section 13.7: a supervisor starts (on=1) or stops (on=0) watching a conversation; answered by RESULT."""

    TYPE = FrameType.WATCH
    conversation_id: U64
    on: U8


@wire_struct
@dataclass(slots=True)
class DraftDecision(Frame):
    """Section 13.8: the owning agent approves, edits (with `text`) or rejects an AI draft; answered by RESULT
    whose seq is the visitor-visible message's (0 for a rejection)."""

    TYPE = FrameType.DRAFT_DECISION
    conversation_id: U64
    draft_seq: U64
    action: U8
    text: Bytes32


@wire_struct
@dataclass(slots=True)
class Search(Frame):
    """Section 13.9: an agent searches the text of its past and present conversations; answered by SEARCH_RESULT."""

    TYPE = FrameType.SEARCH
    query: Str16
    limit: U16


@wire_struct
@dataclass(slots=True)
class SearchHit(WireStruct):
    """One message that matched a SEARCH."""

    conversation_id: U64
    seq: U64
    timestamp_ms: U64
    snippet: Str16


HitList = Annotated[tuple[SearchHit, ...], Seq(2, SearchHit)]


@wire_struct
@dataclass(slots=True)
class SearchResult(Frame):
    """Section 13.9: the hits, newest first; `more` = 1 when the limit or the scan bound cut it short."""

    TYPE = FrameType.SEARCH_RESULT
    hits: HitList
    more: U8


@wire_struct
@dataclass(slots=True)
class QueuePosition(Frame):
    """Section 13.5: a waiting conversation's place in its group's queue (1 = next); 0 when it left the queue."""

    TYPE = FrameType.QUEUE_POSITION
    conversation_id: U64
    group: Str8
    position: U32
    waiting: U32


@wire_struct
@dataclass(slots=True)
class Sentiment(Frame):
    """Section 13.10: the score of a visitor message, 0 (negative) to 1000 (positive), for the agents."""

    TYPE = FrameType.SENTIMENT
    conversation_id: U64
    seq: U64
    score_permille: U16


@wire_struct
@dataclass(slots=True)
class ConversationInfo(Frame):
    """Section 13.11: ask for a conversation's record (state, owner, participants, tags, routing trace)."""

    TYPE = FrameType.CONVERSATION_INFO
    conversation_id: U64


@wire_struct
@dataclass(slots=True)
class Result(Frame):
    """Section 13.1: the answer to a service request: status (an error code, 0 = OK), the conversation and a
    seq where the request made a message, and `detail`, UTF-8 JSON described per request."""

    TYPE = FrameType.RESULT
    status: U16
    conversation_id: U64
    seq: U64
    detail: Bytes32


FRAME_CLASSES: dict[int, type[Frame]] = {
    cls.TYPE: cls
    for cls in (
        ClientHello, ServerHello, ServerFinished, ClientFinished, NewTicket, KeyUpdate, Send, SendAck,
        Deliver, DeliverAck, Sync, SyncDone, Ping, Pong, Error, Goaway, Close,
        AgentStatus, OpenConversation, Opened, Transfer, EndConversation, Watch, DraftDecision, Search,
        SearchResult, QueuePosition, Sentiment, ConversationInfo, Result,
    )
}  # fmt: skip
"""Every frame type with a body structure (RECORD's body is ciphertext and has none)."""

SERVICE_REQUESTS: frozenset[type[Frame]] = frozenset(
    {AgentStatus, OpenConversation, Transfer, EndConversation, Watch, DraftDecision, Search, ConversationInfo}
)
"""Customer-service requests a client sends (section 13); each is answered with the same request_id."""
SERVICE_PUSHES: frozenset[type[Frame]] = frozenset({Opened, SearchResult, QueuePosition, Sentiment, Result})
"""Customer-service frames the server sends."""


def _body_limit(frame_type: int) -> int:
    if frame_type in (FrameType.CLIENT_HELLO, FrameType.SERVER_HELLO):
        return MAX_HANDSHAKE_BODY
    if frame_type == FrameType.RECORD:
        return MAX_RECORD_BODY
    return MAX_BODY


BODY_LIMITS: tuple[int, ...] = tuple(_body_limit(t) for t in range(256))
"""Largest body per frame type, checked against the header before the body is buffered."""


# --- encoding and decoding ------------------------------------------------------------------------------


def encode(frame: Frame) -> bytes:
    """The header and body of `frame`."""
    try:
        body: bytes = frame._wire_build(frame)
        return HEADER.pack(len(body), PROTOCOL_VERSION, frame.TYPE, frame.flags, frame.request_id) + body
    except struct.error as exc:
        raise LocalProtocolError(f"cannot encode {type(frame).__name__}: {exc}") from None


def encode_body(frame: Frame) -> bytes:
    """The body of `frame` alone."""
    body: bytes = frame._wire_build(frame)
    return body


def parse_body(frame_type: int, body: bytes, *, flags: int = 0, request_id: int = 0) -> Frame:
    """Parse a body of a known type; MALFORMED_FRAME if it does not fit. Trailing bytes are ignored."""
    return _parse(FRAME_CLASSES[frame_type], body, flags, request_id)


def _parse(cls: type[Frame], body: bytes, flags: int, request_id: int) -> Frame:
    try:
        if flags or request_id:
            frame, _ = cls._wire_parse(body, 0, len(body), request_id=request_id, flags=flags)
        else:
            # Both header fields are at their dataclass defaults: passing no keywords builds the same frame
            # and skips the keyword dict (0.2 us of a DELIVER's 1.2 us parse).
            frame, _ = cls._wire_parse(body, 0, len(body))
    except Truncated:
        raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME, f"{cls.__name__} body does not parse") from None
    return frame  # type: ignore[no-any-return]


class RawFrame(NamedTuple):
    """A frame split from the stream but not parsed: what records need (the header is the AAD)."""

    frame_type: int
    flags: int
    request_id: int
    header: bytes
    body: bytes


_new_raw_frame = partial(tuple.__new__, RawFrame)
"""RawFrame from one tuple of its five fields, without the generated Python __new__ (0.1 us a frame)."""


NOT_ACCEPTED = -1
"""A `limits` entry for a frame type refused from its header alone (the state does not accept it)."""


def check_header(length: int, version: int, frame_type: int, limits: tuple[int, ...] = BODY_LIMITS) -> None:
    """Reject a header before its body is read (sections 3.1 and 8)."""
    if version != PROTOCOL_VERSION:
        raise RemoteProtocolError(ErrorCode.UNSUPPORTED_VERSION, f"version {version}")
    limit = limits[frame_type]
    if limit == NOT_ACCEPTED:
        raise RemoteProtocolError(ErrorCode.UNEXPECTED_FRAME, f"type 0x{frame_type:02x} not accepted here")
    if length > limit:
        raise RemoteProtocolError(ErrorCode.FRAME_TOO_LARGE, f"type 0x{frame_type:02x} declares {length} bytes")


class FrameDecoder:
    """Splits a byte stream into RawFrames; accepts any chunking; never copies quadratically.

    `limits` is the largest body per frame type (NOT_ACCEPTED: refused from the header); the connection sets it
    per state. `blocked` is true when the last `feed` stopped before a header that broke the limits after other
    frames: feed b"" once those are handled."""

    __slots__ = ("_buf", "_need", "blocked", "limits")

    def __init__(self, limits: tuple[int, ...] = BODY_LIMITS) -> None:
        self._buf = bytearray()
        self._need = HEADER_LEN
        self.limits = limits
        self.blocked = False

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buf)

    def clear(self) -> None:
        """Drop what is buffered (the connection is over: nothing more will be read from it)."""
        self._buf = bytearray()
        self._need = HEADER_LEN
        self.blocked = False

    def recheck(self) -> None:
        """Judge the header of the incomplete frame held, if all of it is there, under the current `limits`: the
        connection calls it after handling frames that changed its state (and so its limits) while that header, read
        under the old ones, waits for its body. Raises RemoteProtocolError as `feed` would have."""
        buf = self._buf
        if len(buf) >= HEADER_LEN:
            length, version, frame_type, _, _ = HEADER.unpack_from(buf, 0)
            if version != PROTOCOL_VERSION or length > self.limits[frame_type]:
                check_header(length, version, frame_type, self.limits)

    def feed(self, data: bytes) -> list[RawFrame]:
        """Every complete frame that `data` completes, in order. Raises RemoteProtocolError."""
        buf = self._buf
        self.blocked = False
        if buf:
            buf += data
            if len(buf) < self._need:
                return []
            view: bytes | bytearray = buf
        else:
            view = data
        frames: list[RawFrame] = []
        pos, self._need = _split(view, frames, self.limits)
        self.blocked = self._need == 0
        if self.blocked:
            self._need = HEADER_LEN
        if buf:
            del buf[:pos]
        elif pos < len(data):
            buf += data[pos:]
        return frames


def _split(view: bytes | bytearray, frames: list[RawFrame], limits: tuple[int, ...]) -> tuple[int, int]:
    """Append the whole frames at the start of `view` to `frames`.

    Returns where the first incomplete frame starts and how many bytes from there complete it; 0 bytes when
    splitting stopped before a header that breaks `limits` after other frames (judged once those are handled).
    """
    pos = 0
    end = len(view)
    unpack = HEADER.unpack_from
    while end - pos >= HEADER_LEN:
        length, version, frame_type, flags, request_id = unpack(view, pos)
        if version != PROTOCOL_VERSION or length > limits[frame_type]:
            if frames:
                return pos, 0
            check_header(length, version, frame_type, limits)
        stop = pos + HEADER_LEN + length
        if stop > end:
            return pos, stop - pos
        header, body = view[pos : pos + HEADER_LEN], view[pos + HEADER_LEN : stop]
        if type(view) is not bytes:  # slices of the bytearray buffer are copied out as bytes
            header, body = bytes(header), bytes(body)
        frames.append(_new_raw_frame((frame_type, flags, request_id, header, body)))
        pos = stop
    return pos, HEADER_LEN


def decode_inner(plaintext: bytes) -> list[tuple[Frame | None, int, int]]:
    """Split and parse a record's plaintext in one pass: (frame, start, stop) per frame, where frame is None for an
    unknown ignorable type and plaintext[start:stop] is the whole encoded frame.

    RECORD_FRAGMENT if the plaintext is empty, ends inside a frame or nests a RECORD. Bodies are parsed in place,
    without RawFrame objects or copies (this is the hot receive path).
    """
    out: list[tuple[Frame | None, int, int]] = []
    append = out.append
    pos = 0
    end = len(plaintext)
    unpack = HEADER.unpack_from
    classes = FRAME_CLASSES
    cls: type[Frame] | None = None
    try:  # one handler for the whole loop: a Truncated names the class being parsed
        while end - pos >= HEADER_LEN:
            length, version, frame_type, flags, request_id = unpack(plaintext, pos)
            if version != PROTOCOL_VERSION or length > BODY_LIMITS[frame_type]:
                check_header(length, version, frame_type)
            stop = pos + HEADER_LEN + length
            if stop > end:
                break
            cls = classes.get(frame_type)
            if cls is None:
                if frame_type == FrameType.RECORD:
                    raise RemoteProtocolError(ErrorCode.RECORD_FRAGMENT, "RECORD inside a record")
                if frame_type < IGNORABLE_TYPE_MIN:
                    raise RemoteProtocolError(ErrorCode.UNKNOWN_FRAME_TYPE, f"frame type 0x{frame_type:02x}")
                append((None, pos, stop))
            elif flags or request_id:
                append(
                    (
                        cls._wire_parse(plaintext, pos + HEADER_LEN, stop, request_id=request_id, flags=flags)[0],
                        pos,
                        stop,
                    )
                )
            else:
                append((cls._wire_parse(plaintext, pos + HEADER_LEN, stop)[0], pos, stop))
            pos = stop
    except Truncated:
        name = cls.__name__ if cls is not None else "frame"
        raise RemoteProtocolError(ErrorCode.MALFORMED_FRAME, f"{name} body does not parse") from None
    if pos != end or not out:
        raise RemoteProtocolError(ErrorCode.RECORD_FRAGMENT, "record ends inside a frame or is empty")
    return out


def decode_frame(raw: RawFrame) -> Frame | None:
    """Parse a raw frame; None for an unknown ignorable type; UNKNOWN_FRAME_TYPE for an unknown critical one."""
    frame_type, flags, request_id, _, body = raw
    cls = FRAME_CLASSES.get(frame_type)
    if cls is not None:
        return _parse(cls, body, flags, request_id)
    if frame_type >= IGNORABLE_TYPE_MIN:
        return None
    raise RemoteProtocolError(ErrorCode.UNKNOWN_FRAME_TYPE, f"frame type 0x{frame_type:02x}")
