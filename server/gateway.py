"""The gateway: one asyncio.Protocol per connection driving the sans-IO core (no task per connection).

Theory of operation: `data_received` feeds the whole chunk to the core, which returns every event in it;
the session handles them all and marks itself for the hub's flush pass at the end of the loop iteration, so
a burst of frames in and of replies out costs one `transport.write` and one record seal per connection per
iteration, and an iteration that touched hundreds of connections costs one loop callback, not one each.

Backpressure: when the transport's buffer passes its high-water mark, asyncio calls `pause_writing`; the
session then stops reading from that client and stops pulling deliveries for it, so what the server
buffers for a slow reader is bounded by the high-water mark plus one batch. Every deadline of a session
(handshake, keepalive, delivery retries) lives in the hub's single timer wheel.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from kefu.protocol.connection import State
from kefu.protocol.delivery import DeliveryWindow, Stream
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionClosed, ConnectionTerminated, HandshakeComplete
from kefu.protocol.frames import SERVICE_REQUESTS, Deliver, DeliverAck, Flag, Frame, MetaEntry, Send, Sync
from kefu.protocol.serverconn import ServerConnection

if TYPE_CHECKING:
    from .hub import Hub
    from .store import StoredMessage


PUMP_BATCH = 16
"""DELIVERs read from the store per step of a catch-up, so the buffer bound is checked every few messages."""


class Session(asyncio.Protocol):
    """One client connection."""

    # An idle session is counted in bytes (issue #3: <= 4 KB per idle session with its core connection and
    # transport), so it holds plain slots: no per-session token-bucket objects (their four numbers are here),
    # no delivery window until something is delivered, no peer string until something is logged.
    __slots__ = (
        "_buffered",
        "_byte_stamp",
        "_byte_tokens",
        "_flush_pending",
        "_frame_stamp",
        "_frame_tokens",
        "_read_paused_until",
        "_scheduled",
        "conn",
        "hub",
        "ready",
        "suite_name",
        "transport",
        "user",
        "window",
        "write_paused",
    )

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.transport: asyncio.Transport | None = None
        self.conn: ServerConnection | None = None
        self.user = ""
        self.suite_name = ""
        self.ready = False
        self.write_paused = False
        self.window: DeliveryWindow | None = None
        self._flush_pending = False
        self._buffered = 0
        self._read_paused_until = 0.0
        self._scheduled: float | None = None
        self._frame_tokens = self._frame_stamp = self._byte_tokens = self._byte_stamp = 0.0

    # --- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)  # uvloop's TCPTransport is not a subclass
        transport = self.transport
        peer = transport.get_extra_info("peername")
        hub = self.hub
        if not hub.admit(self, peer[0] if peer else "?"):
            transport.abort()
            return
        now = hub.now()
        limits = hub.config.limits
        transport.set_write_buffer_limits(high=limits.write_high_water, low=limits.write_low_water)
        self.conn = ServerConnection(hub.server_config, now=now)
        self._frame_tokens, self._byte_tokens = float(limits.conn_frames_burst), float(limits.conn_bytes_burst)
        self._frame_stamp = self._byte_stamp = now
        self._rearm()

    @property
    def peer(self) -> str:
        """The client's address, for logs (built only when something is logged)."""
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return f"{peer[0]}:{peer[1]}" if peer else "?"

    def _spend_bytes(self, n: int, now: float) -> float:
        """The per-connection byte bucket: spend `n` (into debt); seconds to pause reading, 0 if none."""
        limits = self.hub.config.limits
        refill = (now - self._byte_stamp) * limits.conn_bytes_per_s
        tokens = min(float(limits.conn_bytes_burst), self._byte_tokens + refill)
        self._byte_stamp = now
        self._byte_tokens = tokens - n
        return 0.0 if self._byte_tokens >= 0 else -self._byte_tokens / limits.conn_bytes_per_s

    def _spend_frame(self, now: float) -> bool:
        """The per-connection frame bucket: spend one frame if the budget allows."""
        limits = self.hub.config.limits
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
        self.hub.internal_error(self, exc)
        conn, transport = self.conn, self.transport
        if conn is not None and transport is not None and not transport.is_closing():
            with contextlib.suppress(Exception):
                conn._fail(ErrorCode.INTERNAL_ERROR, "internal error")
                transport.write(conn.data_to_send())
            transport.close()

    def _data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn is None or conn.closed:
            return
        now = self.hub.now()
        delay = self._spend_bytes(len(data), now)
        self.hub.count_in(len(data))
        conn.receive_data(data)
        self._handle_events(now)
        self._schedule_flush()
        if delay > 0 and not conn.closed:
            self._pause_reading_for(delay)

    def eof_received(self) -> bool | None:
        if self.conn is not None:
            self.conn.receive_data(b"")
            self._handle_events(self.hub.now())
            self._schedule_flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.hub.account_buffered(self, self._buffered, 0)
        self._buffered = 0
        self.hub.forget(self)
        self.conn = None
        self.window = None

    def pause_writing(self) -> None:
        self.write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.transport is not None and self.hub.now() >= self._read_paused_until:
            self.transport.resume_reading()
        self.pump_all()

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
        now = self.hub.now()
        if self._read_paused_until and now >= self._read_paused_until:
            self._read_paused_until = 0.0
            if self.transport is not None and not self.write_paused:
                self.transport.resume_reading()
        conn.handle_timer(now)
        if self.window is not None and self.ready:
            retries = self.window.due(now=now)  # backs the timers off either way
            if self._buffered == 0 and not self.write_paused:
                # Only a connection that has drained what it was sent gets retries: resending to one that has
                # not even read the first copies is what made retransmissions snowball under overload.
                for retry in retries:
                    self.hub.resend(self, retry.conversation_id, retry.first, retry.last)
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
            self.hub.wheel_schedule(self, when)

    def _pause_reading_for(self, delay: float) -> None:
        assert self.transport is not None
        self.transport.pause_reading()
        self._read_paused_until = self.hub.now() + delay
        self._rearm()

    # --- events -----------------------------------------------------------------------------------------

    def _handle_events(self, now: float) -> None:
        assert self.conn is not None
        hub = self.hub
        for event in self.conn.events_received():
            match event:
                case Send():
                    if self._allow_frame(now):
                        hub.on_send(self, event, now)
                    else:
                        hub.refuse_send(self, event, ErrorCode.RATE_LIMITED)
                case DeliverAck():
                    hub.on_deliver_ack(self, event, now)
                case Sync():
                    if self._allow_frame(now):
                        hub.on_sync(self, event, now)
                    else:
                        hub.refuse(self, event, ErrorCode.RATE_LIMITED)
                case HandshakeComplete():
                    self.user = event.app_id
                    self.ready = True
                    hub.on_ready(self, event)
                case ConnectionTerminated() | ConnectionClosed():
                    hub.on_closed(self, event)
                case Frame() if type(event) in SERVICE_REQUESTS:
                    self._service_request(event, now)
                case _:
                    pass  # PONG, a non-fatal ERROR from a client: nothing to do

    def _service_request(self, frame: Frame, now: float) -> None:
        hub = self.hub
        if hub.desk is None:
            hub.refuse(self, frame, ErrorCode.NOT_FOUND, "no service desk")
        elif self._allow_frame(now):
            hub.desk.on_request(self, frame)
        else:
            hub.refuse(self, frame, ErrorCode.RATE_LIMITED)

    def _allow_frame(self, now: float) -> bool:
        return self._spend_frame(now) and self.hub.allow_app_frame(self.user, now)

    # --- sending ----------------------------------------------------------------------------------------

    def send(self, frame: Frame) -> None:
        """Queue a frame for this client (sealed and written at the end of the iteration)."""
        conn = self.conn
        if conn is not None and conn.state is State.CONNECTED:
            conn.send(frame)
            self._schedule_flush()

    def deliver(self, message: StoredMessage, *, redelivery: bool = False, request_id: int = 0) -> None:
        """Queue one DELIVER (`request_id` echoes the SYNC that fetched it, 0 for live and retried ones)."""
        self.send(
            Deliver(
                message.conversation_id,
                message.seq,
                message.server_msg_id,
                message.timestamp_ms,
                message.client_msg_id,
                message.content_type,
                message.sender,
                message.body,
                tuple(MetaEntry(k, v) for k, v in message.metadata) if message.metadata else (),
                flags=Flag.REDELIVERY if redelivery else 0,
                request_id=request_id,
            )
        )

    def _schedule_flush(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self.hub.flush_soon(self)

    def flush(self) -> None:
        """Seal and write what is queued, then re-arm the deadline (the hub's flush pass calls this)."""
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
            self.hub.count_out(len(data))
        buffered = transport.get_write_buffer_size()
        if buffered != self._buffered:
            self.hub.account_buffered(self, self._buffered, buffered)
            self._buffered = buffered
        if conn.closed:
            self._scheduled = None
            self.hub.wheel_schedule(self, None)
            transport.close()
            return
        self._rearm()

    # --- deliveries -------------------------------------------------------------------------------------

    def can_send_more(self) -> bool:
        """Room for more DELIVERs: this client reads fast enough, and the server's total buffer has room.

        What waits for a slow reader is bounded by [limits] write_high_water per connection (the transport's
        buffer plus what is queued in the core this iteration) and by total_write_buffer_bytes in all.
        """
        if self.write_paused or self.conn is None:
            return False
        queued = self._buffered + self.conn.pending_bytes
        if queued >= self.hub.config.limits.write_high_water:
            return False
        return queued == 0 or not self.hub.over_total_buffer()

    def delivery_window(self) -> DeliveryWindow:
        """The session's delivery window, created on first use (an idle session has none)."""
        if self.window is None:
            self.window = self.hub.new_window()
        return self.window

    def offer(self, message: StoredMessage, acked: Callable[[], int], t0: float) -> None:
        """A new message of a conversation this session's user belongs to; send it if it is next in line."""
        if self.conn is None or not self.ready:
            return
        window = self.delivery_window()
        stream = window.streams.get(message.conversation_id) or window.stream(message.conversation_id, acked())
        if not self.can_send_more():
            self.hub.defer(self)
            return
        if stream.next_seq == message.seq and window.room > 0:
            own = stream.own is not None and message.seq in stream.own  # before take(), which may absorb it
            window.take(stream, message.seq, now=self.hub.now())
            if not own:
                self.deliver(message)
                self.hub.observe_delivery(t0)
        elif stream.next_seq <= message.seq:
            self.pump(stream, message.seq)

    def pump(self, stream: Stream, last_seq: int) -> None:
        """Send what the window allows of `stream` up to `last_seq`, reading from the store."""
        if self.window is None:
            return
        while self.can_send_more():
            own = set(stream.own) if stream.own else None  # before take(), which may absorb some of them
            seqs = self.window.take(stream, min(last_seq, stream.next_seq + PUMP_BATCH - 1), now=self.hub.now())
            if not seqs:
                return
            for message in self.hub.store.read_range(stream.conversation_id, seqs.start - 1, seqs[-1], len(seqs)):
                if own is None or message.seq not in own:  # never echo a device's own message
                    self.deliver(message)
        if stream.next_seq <= last_seq:
            self.hub.defer(self)

    def pump_all(self) -> None:
        """After a pause: catch every stream up."""
        if self.window is None:
            return
        for stream in list(self.window.streams.values()):
            self.pump(stream, self.hub.last_seq(stream.conversation_id))
