"""The connection: one state machine per role, driven by bytes and time (spec/PROTOCOL.md section 7).

Theory of operation — the five verbs:

- ``receive_data(b)`` feeds bytes from the socket (``b""`` = end of stream). It never raises for anything
  the peer sent: a bad input becomes a ``ConnectionTerminated`` event and an ERROR frame queued for the peer.
- ``events_received()`` returns and clears the events since the last call.
- ``data_to_send()`` returns and clears the bytes to write: every frame queued since the last call, sealed
  into as few records as possible (one AEAD seal per batch).
- ``get_timer()`` / ``handle_timer(now)``: the deadline the adapter must arm, and what happens when it fires
  (handshake deadline, keepalive).

Every (role, state, frame type) the machine accepts is a row of `TRANSITIONS`; anything else is answered
with UNEXPECTED_FRAME naming all three. A frame that changes the receive key (SERVER_FINISHED,
CLIENT_FINISHED, KEY_UPDATE) must be the last frame of its record.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from enum import Enum
from typing import Any, NoReturn

from .codes import FATAL_CODES
from .crypto import SUITES, Suite
from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .events import ConnectionClosed, ConnectionTerminated, Event, HandshakeComplete
from .frames import (
    BODY_LIMITS,
    FRAME_CLASSES,
    HEADER_LEN,
    MAX_HANDSHAKE_BODY,
    MAX_RECORD_BODY,
    MAX_RECORD_PLAINTEXT,
    NOT_ACCEPTED,
    SERVICE_PUSHES,
    SERVICE_REQUESTS,
    TAG_LEN,
    TYPE_OFFSET,
    Close,
    Error,
    Frame,
    FrameDecoder,
    FrameTally,
    FrameType,
    Goaway,
    KeyUpdate,
    Ping,
    Pong,
    RawFrame,
    decode_frame,
    decode_inner,
    encode,
)  # fmt: skip
from .records import Direction

HANDSHAKE_TIMEOUT_S = 10.0
"""A handshake not finished in 10 s is dropped: generous for a far client, short enough that half-open
handshakes cannot pile up."""

MAX_EVENTS_BUFFERED = 100_000
"""Bound on events held between two events_received() calls (an adapter drains after every chunk)."""


class Role(Enum):
    """Which end of the connection this is."""

    CLIENT = "client"
    SERVER = "server"


class State(Enum):
    """Connection states (section 7.1)."""

    START = "start"
    WAIT_SERVER_HELLO = "wait-server-hello"
    WAIT_SERVER_FINISHED = "wait-server-finished"
    WAIT_CLIENT_FINISHED = "wait-client-finished"
    CONNECTED = "connected"
    CLOSING = "closing"
    """This side sent CLOSE; frames from the peer are still read until its CLOSE or the end."""
    CLOSED = "closed"


CLIENT_SENDS = frozenset(
    {FrameType.SEND, FrameType.DELIVER_ACK, FrameType.SYNC, FrameType.PING, FrameType.PONG,
     FrameType.ERROR, FrameType.CLOSE}
    | {cls.TYPE for cls in SERVICE_REQUESTS}
)  # fmt: skip
SERVER_SENDS = frozenset(
    {FrameType.SEND_ACK, FrameType.DELIVER, FrameType.SYNC_DONE, FrameType.PING, FrameType.PONG,
     FrameType.ERROR, FrameType.GOAWAY, FrameType.CLOSE, FrameType.NEW_TICKET}
    | {cls.TYPE for cls in SERVICE_PUSHES}
)  # fmt: skip
SENDS = {Role.CLIENT: CLIENT_SENDS, Role.SERVER: SERVER_SENDS}
"""What each role may send with `send()` once connected."""

RECEIVES = {Role.CLIENT: SERVER_SENDS | {FrameType.KEY_UPDATE}, Role.SERVER: CLIENT_SENDS | {FrameType.KEY_UPDATE}}
"""What each role accepts once connected: what the peer may send, plus KEY_UPDATE (sent by the core itself)."""

KEEPALIVE_TICKS = 4
"""Keepalive checks per interval. A check that saw traffic resets the count, so silence is measured to a
quarter interval: the client pings after between 0.75 and 1 interval without sending, and either side
fails after between 1.25 and 1.5 intervals without receiving."""

PLAINTEXT_TYPES = frozenset({FrameType.CLIENT_HELLO, FrameType.SERVER_HELLO, FrameType.ERROR, FrameType.GOAWAY})
"""The only frames that travel outside records: ERROR only before the handshake completes, GOAWAY only as the
server's refusal of a CLIENT_HELLO (section 5.9)."""

_HANDSHAKE_ROWS: dict[tuple[Role, State, int], str] = {
    (Role.SERVER, State.START, FrameType.CLIENT_HELLO): "_on_client_hello",
    (Role.CLIENT, State.WAIT_SERVER_HELLO, FrameType.SERVER_HELLO): "_on_server_hello",
    (Role.CLIENT, State.WAIT_SERVER_FINISHED, FrameType.SERVER_FINISHED): "_on_server_finished",
    (Role.SERVER, State.WAIT_CLIENT_FINISHED, FrameType.CLIENT_FINISHED): "_on_client_finished",
    (Role.CLIENT, State.WAIT_SERVER_HELLO, FrameType.GOAWAY): "_on_refused",
}
_SPECIAL = {
    FrameType.ERROR: "_on_error",
    FrameType.CLOSE: "_on_close",
    FrameType.PING: "_on_ping",
    FrameType.KEY_UPDATE: "_on_key_update",
    FrameType.NEW_TICKET: "_on_new_ticket",
}


def _build_transitions() -> dict[tuple[Role, State, int], str]:
    table: dict[tuple[Role, State, int], str] = dict(_HANDSHAKE_ROWS)
    handshaking = (
        State.START,
        State.WAIT_SERVER_HELLO,
        State.WAIT_SERVER_FINISHED,
        State.WAIT_CLIENT_FINISHED,
    )
    for role in Role:
        for state in handshaking:
            table[(role, state, FrameType.ERROR)] = "_on_error"
        for state in (State.CONNECTED, State.CLOSING):
            for frame_type in RECEIVES[role]:
                table[(role, state, frame_type)] = _SPECIAL.get(frame_type, "_on_app_frame")
    return table


TRANSITIONS = _build_transitions()
"""(role, state, frame type) -> handler: the whole state machine in one table."""

_SENDABLE: dict[type, frozenset[type[Frame]]] = {}


def _sendable(cls: type[Connection]) -> frozenset[type[Frame]]:
    """SENDS[role] as frame classes, per role class (shared by every connection: nothing per connection)."""
    classes = _SENDABLE.get(cls)
    if classes is None:
        classes = _SENDABLE[cls] = frozenset(FRAME_CLASSES[t] for t in SENDS[cls.role])
    return classes


HANDSHAKE_RECORD_LIMIT = MAX_HANDSHAKE_BODY + HEADER_LEN + TAG_LEN
"""Largest RECORD body while the handshake runs: one handshake frame (SERVER_FINISHED or CLIENT_FINISHED, each
the last frame of its record) plus the AEAD tag."""

_LIMITS: dict[tuple[Role, State], tuple[int, ...]] = {}


def outer_limits(role: Role, state: State) -> tuple[int, ...]:
    """The largest body per outer frame type that `role` accepts in `state` (section 8), NOT_ACCEPTED for a type
    refused from its header alone: until the handshake completes, only the frame the state waits for and a
    plaintext ERROR, each at most a handshake's size; afterwards only RECORDs, up to the largest record."""
    limits = _LIMITS.get((role, state))
    if limits is None:
        table = [NOT_ACCEPTED] * 256
        if state in (State.CONNECTED, State.CLOSING):
            table[FrameType.RECORD] = MAX_RECORD_BODY
        elif state is State.CLOSED:
            table = list(BODY_LIMITS)
        else:
            table[FrameType.ERROR] = MAX_HANDSHAKE_BODY
            for row_role, row_state, frame_type in _HANDSHAKE_ROWS:
                if row_role is role and row_state is state:
                    if frame_type in PLAINTEXT_TYPES:
                        table[frame_type] = MAX_HANDSHAKE_BODY
                    else:
                        table[FrameType.RECORD] = HANDSHAKE_RECORD_LIMIT
        limits = _LIMITS[(role, state)] = tuple(table)
    return limits


_Handler = Callable[[Any, Any, bytes], None]
_ACCEPTS: dict[tuple[type, State], dict[type[Frame], _Handler]] = {}


def _accepts(cls: type[Connection], state: State) -> dict[type[Frame], _Handler]:
    """TRANSITIONS for one role class and state, keyed by frame class with the handler functions resolved.

    The hot path then costs one dict lookup keyed by a class (hashed in C) instead of a tuple of Enums (hashed
    in Python: 0.3 us a frame)."""
    table = _ACCEPTS.get((cls, state))
    if table is None:
        table = _ACCEPTS[(cls, state)] = {
            FRAME_CLASSES[frame_type]: getattr(cls, handler)
            for (role, row_state, frame_type), handler in TRANSITIONS.items()
            if role is cls.role and row_state is state
        }
    return table


class Connection:
    """State shared by both roles: decoding, records, the event queue, timers and closing."""

    __slots__ = (
        "_accept",
        "_decoder",
        "_events",
        "_keepalive_s",
        "_out",
        "_pending",
        "_pending_len",
        "_received",
        "_recv",
        "_recv_idle",
        "_send",
        "_send_idle",
        "_sent",
        "_sent_close",
        "_started",
        "_state",
        "_tally",
        "_timer",
        "suite",
    )

    role: Role

    def __init__(
        self, *, now: float, handshake_timeout: float = HANDSHAKE_TIMEOUT_S, tally: FrameTally | None = None
    ) -> None:
        self._decoder = FrameDecoder()
        self.state = State.START
        self._tally = tally
        self._events: list[Event] = []
        self._out: list[bytes] = []
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._send: Direction | None = None
        self._recv: Direction | None = None
        self._started = now
        self._timer: float | None = now + handshake_timeout
        self._keepalive_s = 0.0
        self._recv_idle = 0
        self._send_idle = 0
        self._received = False
        self._sent = False
        self._sent_close = False
        self.suite: Suite | None = None

    # --- the five verbs ---------------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed bytes received from the peer; ``b""`` means the peer closed its end."""
        if self.state is State.CLOSED:
            return
        self._received = True
        if not data:
            self._on_eof()
            return
        decoder = self._decoder
        try:
            limits = decoder.limits
            raws = decoder.feed(data)
            while raws:
                for raw in raws:
                    self._dispatch_outer(raw)
                    if self.closed:
                        return
                # Stopped before a header the old state's limits refused: judge it under the state now.
                raws = decoder.feed(b"") if decoder.blocked else []
            if decoder.limits is not limits:  # the state changed: a held header the old limits allowed, judged again
                decoder.recheck()
        except RemoteProtocolError as exc:
            self._fail(exc.code, exc.reason, exc.detail)

    def events_received(self) -> list[Event | Frame]:
        """Events since the last call, oldest first."""
        # The connection keeps its own lists for life and hands out copies (see _flush): a fresh list per call
        # would be a young object held by every busy connection, which the cyclic collector walks each time.
        events = self._events.copy()
        self._events.clear()
        return events  # type: ignore[return-value]

    def data_to_send(self) -> bytes:
        """Bytes to write to the socket: everything queued, sealed into records."""
        self._flush()
        out = self._out
        if not out:
            return b""
        self._sent = True
        data = b"".join(out)
        out.clear()
        return data

    def get_timer(self) -> float | None:
        """When handle_timer must next be called, or None."""
        return self._timer

    def handle_timer(self, now: float) -> None:
        """Handshake deadline and keepalive (section 7.3)."""
        if self._timer is None or now < self._timer or self.state is State.CLOSED:
            return
        if self.state not in (State.CONNECTED, State.CLOSING):
            self._fail(ErrorCode.HANDSHAKE_TIMEOUT, "handshake deadline passed")
            return
        self._recv_idle = 0 if self._received else self._recv_idle + 1
        self._send_idle = 0 if self._sent else self._send_idle + 1
        self._received = self._sent = False
        self._timer = now + self._keepalive_s / KEEPALIVE_TICKS
        if self._recv_idle >= KEEPALIVE_TICKS * 3 // 2 - 1:
            self._fail(ErrorCode.KEEPALIVE_TIMEOUT, "no traffic for 1.5 keepalive intervals")
        elif self.role is Role.CLIENT and self._send_idle >= KEEPALIVE_TICKS - 1 and self.state is State.CONNECTED:
            # The client speaks at least once per interval, so the server always hears it; the PONG
            # answers keep the client's own receive side alive.
            self._send_idle = 0
            self.send(Ping(int.from_bytes(os.urandom(8), "big")))

    # --- sending ----------------------------------------------------------------------------------------

    def send(self, frame: Frame) -> None:
        """Queue an application frame; it is sealed with the others at the next data_to_send()."""
        if self.state is not State.CONNECTED:
            raise LocalProtocolError(f"{self.role.value} cannot send {frame.TYPE.name} in state {self.state.value}")
        if type(frame) not in _sendable(type(self)):
            raise LocalProtocolError(f"{self.role.value} never sends {frame.TYPE.name}")
        encoded = encode(frame)
        if len(encoded) > MAX_RECORD_PLAINTEXT:
            raise LocalProtocolError(f"{frame.TYPE.name} body exceeds {MAX_RECORD_PLAINTEXT - 12} bytes")
        self._queue(encoded)

    def send_encoded(self, encoded: bytes) -> None:
        """Queue an application frame that is already encoded (its header and body, as `frames.encode` makes them):
        one another process built, to be sealed here with the others."""
        if self.state is not State.CONNECTED:
            raise LocalProtocolError(f"{self.role.value} cannot send in state {self.state.value}")
        cls = FRAME_CLASSES.get(encoded[TYPE_OFFSET]) if len(encoded) > TYPE_OFFSET else None
        if cls is None or cls not in _sendable(type(self)):
            raise LocalProtocolError(
                f"{self.role.value} never sends frame type {encoded[TYPE_OFFSET : TYPE_OFFSET + 1]!r}"
            )
        if len(encoded) > MAX_RECORD_PLAINTEXT:
            raise LocalProtocolError(f"{cls.TYPE.name} body exceeds {MAX_RECORD_PLAINTEXT - 12} bytes")
        self._queue(encoded)

    def update_keys(self, *, request_peer: bool = False) -> None:
        """Send KEY_UPDATE and move to the next sending key (section 6.4); optionally ask the peer to do the same."""
        if self.state is not State.CONNECTED or self._send is None:
            raise LocalProtocolError(f"cannot update keys in state {self.state.value}")
        self._queue(encode(KeyUpdate(int(request_peer))))
        self._flush()
        self._send.update()

    def close(self, code: ErrorCode = ErrorCode.OK, reason: str = "") -> None:
        """Send CLOSE; the connection reads on until the peer's CLOSE or the end of the stream."""
        if self.state is State.CONNECTED:
            self._queue(encode(Close(code, reason)))
            self._sent_close = True
            self.state = State.CLOSING
        elif self.state is not State.CLOSING:
            self.state = State.CLOSED

    def fail(self, code: ErrorCode, reason: str) -> None:
        """Abort the connection with `code` (an ERROR to the peer, then closed): what an adapter does when something
        outside the protocol goes wrong (a bug of its own: INTERNAL_ERROR). Nothing happens once closed."""
        if self.state is not State.CLOSED:
            self._fail(code, reason)

    @property
    def closed(self) -> bool:
        """True once the connection is over (closed cleanly or failed): nothing more is processed."""
        return self.state is State.CLOSED

    @property
    def pending_bytes(self) -> int:
        """Plaintext queued by send() and not yet sealed (what the adapter may bound)."""
        return self._pending_len

    @property
    def buffered_incomplete(self) -> int:
        """Bytes held for an incomplete frame (what the adapter may bound)."""
        return self._decoder.buffered

    def _queue(self, encoded: bytes) -> None:
        if self._tally is not None:
            self._tally.sent[encoded[TYPE_OFFSET]] += 1
        if self._pending_len + len(encoded) > MAX_RECORD_PLAINTEXT:
            self._flush()
        self._pending.append(encoded)
        self._pending_len += len(encoded)

    def _queue_plain(self, encoded: bytes) -> None:
        if self._tally is not None:
            self._tally.sent[encoded[TYPE_OFFSET]] += 1
        self._flush()
        self._out.append(encoded)

    def _flush(self) -> None:
        if not self._pending:
            return
        assert self._send is not None
        plaintext = b"".join(self._pending)
        self._pending.clear()  # cleared, not replaced: 10,000 connections' fresh lists made the collector's
        self._pending_len = 0  # young generation 30,000 lists deep, a 4-9 ms pause at every gc.collect(1)
        if self._send.needs_update(len(plaintext)):
            if self._tally is not None:
                self._tally.sent[FrameType.KEY_UPDATE] += 1
            self._out.append(self._send.seal(encode(KeyUpdate(0))))
            self._send.update()
        self._out.append(self._send.seal(plaintext))

    def _set_send(self, secret: bytes) -> None:
        self._flush()
        assert self.suite is not None
        self._send = Direction(SUITES[self.suite], secret)

    def _set_recv(self, secret: bytes) -> None:
        assert self.suite is not None
        self._recv = Direction(SUITES[self.suite], secret)

    # --- receiving --------------------------------------------------------------------------------------

    def _dispatch_outer(self, raw: RawFrame) -> None:
        if raw.frame_type == FrameType.RECORD:
            if self._recv is None:
                raise RemoteProtocolError(ErrorCode.UNEXPECTED_FRAME, "RECORD before keys are established")
            plaintext = self._recv.open(raw.header, raw.body)
            inner = decode_inner(plaintext)
            received = self._tally.received if self._tally is not None else None
            last = len(inner) - 1
            for index, (frame, start, stop) in enumerate(inner):
                if received is not None:
                    received[plaintext[start + TYPE_OFFSET]] += 1
                if frame is None:
                    continue
                key_before = (self._recv, self._recv.secret)
                self._handle(frame, plaintext[start:stop])
                if self.state is State.CLOSED:
                    return
                if index != last and key_before != (self._recv, self._recv.secret):
                    raise RemoteProtocolError(ErrorCode.UNEXPECTED_FRAME, "key change not at a record end")
            return
        if raw.frame_type not in PLAINTEXT_TYPES or (raw.frame_type == FrameType.ERROR and self._handshake_over):
            # A peer that fails before it has a sending key reports in plaintext, even when we already have
            # a receiving key (a client that rejects SERVER_FINISHED); after the handshake, never.
            self._unexpected(raw.frame_type, "in plaintext")
        self._dispatch(raw, raw.header + raw.body)

    def _dispatch(self, raw: RawFrame, encoded: bytes) -> None:
        if self._tally is not None:
            self._tally.received[raw.frame_type] += 1
        frame = decode_frame(raw)
        if frame is not None:
            self._handle(frame, encoded)

    @property
    def state(self) -> State:
        """The connection's state (section 7.1)."""
        return self._state

    @state.setter
    def state(self, value: State) -> None:
        self._state = value
        self._accept = _accepts(type(self), value)
        self._decoder.limits = outer_limits(self.role, value)
        if value is State.CLOSED:
            self._decoder.clear()  # the rest of a chunk read with the frame that ended it: held by nobody now

    def _handle(self, frame: Frame, encoded: bytes) -> None:
        handler = self._accept.get(type(frame))
        if handler is None:
            self._unexpected(frame.TYPE, f"in state {self.state.value}")
        handler(self, frame, encoded)

    def _unexpected(self, frame_type: int, where: str) -> NoReturn:
        name = FrameType(frame_type).name if frame_type in FrameType._value2member_map_ else hex(frame_type)
        raise RemoteProtocolError(ErrorCode.UNEXPECTED_FRAME, f"{self.role.value} got {name} {where}")

    def _on_app_frame(self, frame: Frame, _encoded: bytes) -> None:
        if len(self._events) >= MAX_EVENTS_BUFFERED:
            raise RemoteProtocolError(ErrorCode.OVERLOADED, "events not drained")
        self._events.append(frame)  # type: ignore[arg-type]

    def _on_ping(self, frame: Ping, _encoded: bytes) -> None:
        if self.state is State.CONNECTED:
            self._queue(encode(Pong(frame.opaque, request_id=frame.request_id)))

    def _on_key_update(self, frame: KeyUpdate, _encoded: bytes) -> None:
        assert self._recv is not None
        self._recv.update()
        if frame.update_requested and self._send is not None and self.state is State.CONNECTED:
            self._queue(encode(KeyUpdate(0)))
            self._flush()
            self._send.update()

    @property
    def _handshake_over(self) -> bool:
        return self.state in (State.CONNECTED, State.CLOSING, State.CLOSED)

    def _on_error(self, frame: Error, _encoded: bytes) -> None:
        known = frame.code in ErrorCode._value2member_map_
        # Section 3.5: an unknown code in the request range (4xx) is a request error; any other is fatal.
        fatal = ErrorCode(frame.code) in FATAL_CODES if known else not 400 <= frame.code < 500
        if fatal or not self._handshake_over:
            code = ErrorCode(frame.code) if known else ErrorCode.INTERNAL_ERROR
            self._events.append(ConnectionTerminated(code, frame.reason, by_peer=True))
            self.state = State.CLOSED
            self._timer = None
        else:
            self._events.append(frame)  # type: ignore[arg-type]

    def _on_refused(self, frame: Goaway, _encoded: bytes) -> None:
        """The server refused our CLIENT_HELLO for load (section 5.9): the GOAWAY itself (when to retry), then the
        end of the connection."""
        code = ErrorCode(frame.code) if frame.code in ErrorCode._value2member_map_ else ErrorCode.OVERLOADED
        self._events.append(frame)  # type: ignore[arg-type]
        self._events.append(ConnectionTerminated(code, frame.reason, by_peer=True))
        self.state = State.CLOSED
        self._timer = None

    def _on_close(self, frame: Close, _encoded: bytes) -> None:
        if not self._sent_close:
            self._queue(encode(Close(ErrorCode.OK, "")))
            self._sent_close = True
        code = ErrorCode(frame.code) if frame.code in ErrorCode._value2member_map_ else ErrorCode.OK
        self._events.append(ConnectionClosed(code, frame.reason))
        self.state = State.CLOSED
        self._timer = None

    def _on_eof(self) -> None:
        if self.state is State.CLOSING:
            self._events.append(ConnectionClosed(ErrorCode.OK, "peer ended the stream after our CLOSE"))
        else:
            self._events.append(ConnectionTerminated(ErrorCode.TRUNCATED, "stream ended without CLOSE", True))
        self.state = State.CLOSED
        self._timer = None

    def _fail(self, code: ErrorCode, reason: str, detail: str = "") -> None:
        """Report `code` to the peer (encrypted if keys exist, nothing after our own CLOSE) and close. The peer gets
        `reason`; the ConnectionTerminated event carries `detail` when there is one (what only this side may know)."""
        frame = encode(Error(code, reason[:200]))
        if self._sent_close:
            pass
        elif self._send is not None:
            self._pending.clear()
            self._pending_len = 0
            self._queue(frame)
            self._flush()
        else:
            self._out.append(frame)
        self._events.append(ConnectionTerminated(code, detail or reason, by_peer=False))
        self.state = State.CLOSED
        self._timer = None

    def _handshake_done(self, event: HandshakeComplete, now_keepalive_ms: int) -> None:
        self.state = State.CONNECTED
        self._keepalive_s = now_keepalive_ms / 1000
        self._timer = self._started  # due at once: the next handle_timer(now) starts keepalive from now
        self._events.append(event)
