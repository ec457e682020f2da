"""One connection: an asyncio.Protocol driving the sans-IO protocol core (no task per connection).

Theory of operation: `data_received` feeds the whole chunk to the protocol core, which returns every event in it;
the session handles them all and marks itself for the gateway's flush pass at the end of the loop iteration, so a
burst of frames in and of replies out costs one `transport.write` and one record seal per connection per
iteration, and an iteration that touched hundreds of connections costs one loop callback, not one each.

What a connection asks of the engine goes to the core (`Gateway.core`: SEND, SYNC, service requests, its handshake
and its end); its deliveries are driven by the gateway's delivery side (`Gateway.outbound`), which calls back
`deliver`, `can_send_more` and `delivery_window` here (the `Outlet` interface).

Backpressure: when the transport's buffer passes its high-water mark, asyncio calls `pause_writing`; the session then
stops reading from that client and stops pulling deliveries for it, so what the server buffers for a slow reader is
bounded by the high-water mark plus one batch. Every deadline of a session (handshake, keepalive, delivery retries,
the end of a read pause) lives in the gateway's single timer wheel.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from functools import partial
from typing import Any, Protocol, cast

from kefu.protocol.connection import State
from kefu.protocol.crypto import Suite
from kefu.protocol.delivery import DeliveryWindow
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionClosed, ConnectionTerminated, HandshakeComplete
from kefu.protocol.frames import (
    HEADER_LEN,
    MAX_HANDSHAKE_BODY,
    SERVICE_REQUESTS,
    DeliverAck,
    Error,
    Frame,
    Goaway,
    Send,
    SendAck,
    Sync,
)
from kefu.protocol.handshake import HandshakeKind, ServerConfig
from kefu.protocol.serverconn import ServerConnection

from ..engine.ports import CorePort
from ..engine.streams import Outbound

__all__ = ["Session", "SessionHost"]


PREFLIGHT_LIMIT = HEADER_LEN + MAX_HANDSHAKE_BODY
"""The most a client may have sent before the server's first flight: one CLIENT_HELLO."""


class SessionHost(Protocol):
    """What a session needs of its gateway (`kefu.server.edge.gateway.Gateway`)."""

    config: Any
    server_config: ServerConfig
    core: CorePort
    outbound: Outbound

    loop: asyncio.AbstractEventLoop
    held_back: set[Session]

    def now(self) -> float: ...
    def admit(self, session: Session, address: str) -> bool: ...
    def hold_back(self, session: Session, address: str) -> float: ...
    def admit_handshake(self, address: str, suite: Suite, kind: HandshakeKind) -> Goaway | None: ...
    def on_ready(self, session: Session, event: HandshakeComplete) -> None: ...
    def on_closed(self, session: Session, event: ConnectionClosed | ConnectionTerminated) -> None: ...
    def forget(self, session: Session) -> None: ...
    def internal_error(self, session: Session, exc: Exception) -> None: ...
    def wheel_schedule(self, session: Session, when: float | None) -> None: ...
    def flush_soon(self, session: Session) -> None: ...
    def new_window(self) -> DeliveryWindow: ...
    def account_buffered(self, before: int, after: int) -> None: ...
    def over_total_buffer(self) -> bool: ...
    def count_in(self, nbytes: int) -> None: ...
    def count_out(self, nbytes: int) -> None: ...
    def count_error(self, code: ErrorCode) -> None: ...
    def refused(self, user: str, request: Frame, code: ErrorCode) -> None: ...


class Session(asyncio.Protocol):
    """One client connection."""

    # An idle session is counted in bytes (<= 4 KB per idle session with its protocol core and transport), so it
    # holds plain slots: no per-session token-bucket objects (their four numbers are here), no delivery window until
    # something is delivered, no peer string until something is logged.
    __slots__ = (
        "_buffered",
        "_byte_stamp",
        "_byte_tokens",
        "_flush_pending",
        "_frame_stamp",
        "_frame_tokens",
        "_held",
        "_hold_timer",
        "_read_paused_until",
        "_scheduled",
        "admission_pending",
        "client_key",
        "conn",
        "gateway",
        "ready",
        "sid",
        "since",
        "suite_name",
        "transport",
        "user",
        "wheel_tick",
        "window",
        "write_paused",
    )

    def __init__(self, gateway: SessionHost) -> None:
        self.gateway = gateway
        self.transport: asyncio.Transport | None = None
        self.conn: ServerConnection | None = None
        self.sid = 0
        self.user = ""
        self.suite_name = ""
        self.client_key = ""
        """The pin of the client key the session authenticated with ("" for the app secret)."""
        self.since = 0.0
        """When the handshake completed (wall-clock seconds)."""
        self.ready = False
        self.write_paused = False
        self.admission_pending = False
        self.window: DeliveryWindow | None = None
        self._held: bytes | None = None
        """What arrived before the core admitted the connection (read at once, not yet handled)."""
        self._hold_timer: asyncio.TimerHandle | None = None
        """Set while the connection is held back until its address may ask for a handshake again."""
        self._flush_pending = False
        self._buffered = 0
        self._read_paused_until = 0.0
        self._scheduled: float | None = None
        self.wheel_tick = 0
        """The gateway's timer wheel keeps this session's tick here (`kefu.server.edge.timers`)."""
        self._frame_tokens = self._frame_stamp = self._byte_tokens = self._byte_stamp = 0.0

    # --- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's TCPTransport is not a subclass
        # Not read until the core admits the connection (at once, in one process). uvloop starts reading after this
        # method returns even when it paused reading here (CPython fixed the same in asyncio, gh-76002), so
        # `_data_received` also holds what arrives early and pauses again.
        self.transport.pause_reading()
        self._arrive()

    def _arrive(self) -> None:
        """Hold the connection back while its address waits out a refusal (spec section 5.9), else put it to the
        core and get ready to read."""
        transport, gateway = self.transport, self.gateway
        if transport is None or transport.is_closing():
            return
        self._hold_timer = None
        peer = transport.get_extra_info("peername")
        address = peer[0] if peer else "?"
        wait = gateway.hold_back(self, address)
        if wait < 0:
            transport.abort()
            return
        if wait > 0:
            self._hold_timer = gateway.loop.call_later(wait, self._arrive)
            return
        gateway.held_back.discard(self)
        now = gateway.now()
        limits = gateway.config.limits
        transport.set_write_buffer_limits(high=limits.write_high_water, low=limits.write_low_water)
        self.conn = ServerConnection(gateway.server_config, now=now)
        self.conn.admission = partial(gateway.admit_handshake, address)
        self._frame_tokens, self._byte_tokens = float(limits.conn_frames_burst), float(limits.conn_bytes_burst)
        self._frame_stamp = self._byte_stamp = now
        # The core may answer before this returns (one process), and a held-back connection may have data waiting.
        if not gateway.admit(self, address):
            self.conn = None
            transport.abort()
            return
        if transport.is_closing():
            return  # the core refused it at once
        self._rearm()

    def admit(self) -> None:
        """The core admitted the connection: handle what arrived meanwhile, and start reading."""
        self.admission_pending = False
        if self.conn is not None and self.conn.closed:
            return
        held, self._held = self._held, None
        if held is not None:
            self.data_received(held)
        if self.transport is not None and not self.write_paused and not self._read_paused_until:
            self.transport.resume_reading()

    def refuse(self) -> None:
        """The core refused the connection (a limit): drop it without a word."""
        self.admission_pending = False
        self._held = None
        if self.transport is not None:
            self.transport.abort()

    @property
    def address(self) -> str:
        """The client's IP address."""
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return str(peer[0]) if peer else "?"

    @property
    def peer(self) -> str:
        """The client's address, for logs (built only when something is logged)."""
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return f"{peer[0]}:{peer[1]}" if peer else "?"

    def _spend_bytes(self, n: int, now: float) -> float:
        """The per-connection byte bucket: spend `n` (into debt); seconds to pause reading, 0 if none."""
        limits = self.gateway.config.limits
        refill = (now - self._byte_stamp) * limits.conn_bytes_per_s
        tokens = min(float(limits.conn_bytes_burst), self._byte_tokens + refill)
        self._byte_stamp = now
        self._byte_tokens = tokens - n
        return 0.0 if self._byte_tokens >= 0 else -self._byte_tokens / limits.conn_bytes_per_s

    def _spend_frame(self, now: float) -> bool:
        """The per-connection frame bucket: spend one frame if the budget allows (the per-app one is the core's)."""
        limits = self.gateway.config.limits
        refill = (now - self._frame_stamp) * limits.conn_frames_per_s
        tokens = min(float(limits.conn_frames_burst), self._frame_tokens + refill)
        self._frame_stamp = now
        if tokens < 1:
            self._frame_tokens = tokens
            return False
        self._frame_tokens = tokens - 1
        return True

    def data_received(self, data: bytes) -> None:
        try:
            self._data_received(data)
        except Exception as exc:  # a bug must cost one connection, never the server
            self._internal_error(exc)

    def _internal_error(self, exc: Exception) -> None:
        """Last line of defence: log with the traceback, tell the client INTERNAL_ERROR, close this one only."""
        self.gateway.internal_error(self, exc)
        conn, transport = self.conn, self.transport
        if conn is not None and transport is not None and not transport.is_closing():
            with contextlib.suppress(Exception):
                conn.fail(ErrorCode.INTERNAL_ERROR, "internal error")
                transport.write(conn.data_to_send())
            transport.close()

    def _data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None and self._hold_timer is not None:  # held back: keep at most a CLIENT_HELLO until then
            held = data if self._held is None else self._held + data
            if len(held) > PREFLIGHT_LIMIT and self.transport is not None:
                self.transport.abort()
                return
            self._held = held
            if self.transport is not None:
                self.transport.pause_reading()
            return
        if conn is None or conn.closed:
            return
        if self.admission_pending:  # one read at most: reading is paused until the core's verdict
            held = data if self._held is None else self._held + data
            if len(held) > PREFLIGHT_LIMIT:
                # A client sends CLIENT_HELLO and waits for the server's flight (spec section 5.1): more before the
                # server has said anything is no client's, and none of it is kept (section 8).
                self._held = None
                conn.fail(ErrorCode.UNEXPECTED_FRAME, "bytes after CLIENT_HELLO before the server's answer")
                self._handle_events(self.gateway.now())
                self._schedule_flush()
                return
            self._held = held
            if self.transport is not None:
                self.transport.pause_reading()
            return
        gateway = self.gateway
        now = gateway.now()
        delay = self._spend_bytes(len(data), now)
        gateway.count_in(len(data))
        conn.receive_data(data)
        self._handle_events(now)
        self._schedule_flush()
        if delay > 0 and not conn.closed:
            self._pause_reading_for(delay)

    def eof_received(self) -> bool | None:
        if self.conn is not None:
            self.conn.receive_data(b"")
            self._handle_events(self.gateway.now())
            self._schedule_flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self.gateway.account_buffered(self._buffered, 0)
        self._buffered = 0
        self.gateway.forget(self)
        self.ready = False
        self.conn = None
        self.window = None

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and not self.admission_pending and self.gateway.now() >= self._read_paused_until:
            self.transport.resume_reading()
        self.gateway.outbound.pump_all(self)

    # --- timers -----------------------------------------------------------------------------------------

    def on_timer(self, now: float) -> None:
        """Keepalive, handshake deadline, delivery retries, end of a read pause."""
        self._scheduled = None  # the wheel has dropped this session's entry
        try:
            self._on_timer()
        except Exception as exc:  # see data_received
            self._internal_error(exc)

    def _on_timer(self) -> None:
        conn = self.conn
        if conn is None:
            return
        now = self.gateway.now()
        if self._read_paused_until and now >= self._read_paused_until:
            self._read_paused_until = 0.0
            if self.transport is not None and not self.write_paused and not self.admission_pending:
                self.transport.resume_reading()
        conn.handle_timer(now)
        if self.window is not None and self.ready:
            self.gateway.outbound.retry(self, now=now, drained=self._buffered == 0 and not self.write_paused)
        self._handle_events(now)
        self._schedule_flush()

    def _rearm(self) -> None:
        when = self.conn.get_timer() if self.conn else None  # runs at every flush: no lists, no min()
        for deadline in (self.window.next_deadline() if self.window is not None else None, self._read_paused_until):
            if deadline and (not when or deadline < when):
                when = deadline
        when = when or None
        if when != self._scheduled:  # most flushes leave the deadline where it was: skip the wheel then
            self._scheduled = when
            self.gateway.wheel_schedule(self, when)

    def _pause_reading_for(self, delay: float) -> None:
        assert self.transport is not None
        self.transport.pause_reading()
        self._read_paused_until = self.gateway.now() + delay
        self._rearm()

    # --- events -----------------------------------------------------------------------------------------

    def _handle_events(self, now: float) -> None:
        assert self.conn is not None
        gateway = self.gateway
        for event in self.conn.events_received():
            match event:
                case Send():
                    if self._spend_frame(now):
                        gateway.core.submit(self.sid, event, time.monotonic())
                    else:
                        self.send(SendAck(event.client_msg_id, ErrorCode.RATE_LIMITED, 0, event.conversation_id, 0,
                                          0, request_id=event.request_id))  # fmt: skip
                        gateway.refused(self.user, event, ErrorCode.RATE_LIMITED)
                case DeliverAck():
                    gateway.outbound.acked(self, event)
                case Sync():
                    if self._allow(event, now):
                        room = self.window.room if self.window is not None else gateway.config.delivery.inflight_window
                        gateway.core.sync(self.sid, event, room)
                case HandshakeComplete():
                    self._on_handshake(event)  # if it ends the session, the core ignores what followed: never ready
                case ConnectionTerminated() | ConnectionClosed():
                    gateway.on_closed(self, event)
                case Frame() if type(event) in SERVICE_REQUESTS:
                    if self._allow(event, now):
                        gateway.core.service(self.sid, event)
                case _:
                    pass  # PONG, a non-fatal ERROR from a client: nothing to do

    def _on_handshake(self, event: HandshakeComplete) -> None:
        """The connection now belongs to its app, unless it is ended instead: a resumed session whose client key was
        retired, or whose session credential was revoked, since its ticket was issued (a full handshake checks the key
        itself)."""
        if event.resumed and event.client_key:
            credential = self.gateway.server_config.apps.get(event.app_id)
            if credential is None or not credential.allows(event.client_key, now=time.time()):
                self.end(ErrorCode.AUTH_FAILED, "client key retired")
                return
        self.user, self.client_key, self.since = event.app_id, event.client_key or "", time.time()
        if self.conn is not None:
            self.conn.admission = None  # asked once per handshake; an idle session does not keep it
        self.ready = True
        self.gateway.on_ready(self, event)

    def _allow(self, frame: Frame, now: float) -> bool:
        """The per-connection frame bucket; a frame over it is answered with a non-fatal RATE_LIMITED ERROR."""
        if self._spend_frame(now):
            return True
        self.send(Error(ErrorCode.RATE_LIMITED, "rate_limited", request_id=frame.request_id))
        self.gateway.refused(self.user, frame, ErrorCode.RATE_LIMITED)
        return False

    # --- sending ----------------------------------------------------------------------------------------

    def send(self, frame: Frame) -> None:
        """Queue a frame for this client (sealed and written at the end of the iteration)."""
        conn = self.conn
        if conn is not None and conn.state is State.CONNECTED:
            conn.send(frame)
            self._schedule_flush()

    def send_encoded(self, raw: bytes) -> None:
        """Queue a frame another process encoded (its header and body)."""
        conn = self.conn
        if conn is not None and conn.state is State.CONNECTED:
            conn.send_encoded(raw)
            self._schedule_flush()

    def close(self, code: ErrorCode, reason: str) -> None:
        """Send CLOSE; the transport closes once it is written."""
        if self.conn is not None:
            self.conn.close(code, reason)
            self._schedule_flush()

    def end(self, code: ErrorCode, reason: str) -> None:
        """End the session at once with a fatal ERROR (an operator's order: `kefu.server.identity.orders`); the flush
        writes it and closes the transport, whatever the client does."""
        conn = self.conn
        if conn is not None and not conn.closed:
            conn.fail(code, reason)
            self._handle_events(self.gateway.now())
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self.gateway.flush_soon(self)

    def flush(self) -> None:
        """Seal and write what is queued, then re-arm the deadline (the gateway's flush pass calls this)."""
        try:
            self._write_out()
        except Exception as exc:  # see data_received
            self._internal_error(exc)

    def _write_out(self) -> None:
        self._flush_pending = False
        conn, transport = self.conn, self.transport
        if conn is None or transport is None:
            return
        data = conn.data_to_send()
        if data:
            transport.write(data)
            self.gateway.count_out(len(data))
        buffered = transport.get_write_buffer_size()
        if buffered != self._buffered:
            self.gateway.account_buffered(self._buffered, buffered)
            self._buffered = buffered
        if conn.closed:
            self._scheduled = None
            self.gateway.wheel_schedule(self, None)
            transport.close()
            return
        self._rearm()

    # --- deliveries (the Outlet interface of kefu.server.engine.streams) ----------------------------------------

    def can_send_more(self) -> bool:
        """Room for more DELIVERs: this client reads fast enough, and the gateway's total buffer has room.

        What waits for a slow reader is bounded by [limits] write_high_water per connection (the transport's buffer
        plus what is queued in the protocol core this iteration) and by total_write_buffer_bytes in all.
        """
        if self.write_paused or self.conn is None:
            return False
        queued = self._buffered + self.conn.pending_bytes
        if queued >= self.gateway.config.limits.write_high_water:
            return False
        return queued == 0 or not self.gateway.over_total_buffer()

    def delivery_window(self) -> DeliveryWindow:
        """The session's delivery window, created on first use (an idle session has none)."""
        if self.window is None:
            self.window = self.gateway.new_window()
        return self.window
