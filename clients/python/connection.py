"""One TCP connection: an asyncio.Protocol driving the sans-IO `ClientConnection` (STYLE practice 1).

Theory of operation: `data_received` feeds each chunk to the core, hands every event to the owner (the
`Client`) in order, then writes `data_to_send()` once. Frames the owner queues between reads (SENDs,
DELIVER_ACKs) are written by one flush per loop iteration (`schedule_flush`), so a burst of sends costs one
record seal and one write. After every call into the core the core's timer is re-armed with
`loop.call_at` (keepalive PINGs, the handshake deadline).

The core reports HandshakeComplete as soon as it has sent CLIENT_FINISHED, before the server has checked the
client's credentials (as in TLS 1.3). `handshake` therefore resolves only with the server's first frame
after that: the ticket, or the answer to the SYNC the client sends at once. An AUTH_FAILED arrives instead
and fails it.

The core runs on wall-clock seconds (tickets carry wall-clock ages); `Clock` maps them to the loop's
monotonic clock for `call_at`. No task is created per connection or per message.

While the owner has paused reading (its delivery queue is full) the keepalive timer is not run: the core
would count the pause as silence from the server. It resumes with reading.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol, cast

from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.connection import State
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionClosed, ConnectionTerminated, Event, HandshakeComplete
from kefu.protocol.frames import Frame
from kefu.protocol.handshake import ClientConfig

from .errors import ConnectError, connect_error

PAUSED_TIMER_RECHECK_S = 1.0
"""While reading is paused, the keepalive timer checks back this often instead of running the core."""


class Clock:
    """Wall-clock seconds for the core, read from the loop's monotonic clock (one offset, taken once)."""

    __slots__ = ("loop", "offset")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.offset = time.time() - loop.time()

    def now(self) -> float:
        """Wall-clock seconds."""
        return self.loop.time() + self.offset

    def to_loop(self, wall: float) -> float:
        """A wall-clock deadline as loop time (for `call_at`)."""
        return wall - self.offset


class LinkOwner(Protocol):
    """What a Link reports to (the Client)."""

    def link_event(self, link: Link, event: Event | Frame) -> None:
        """An event or application frame from the core, in order."""

    def link_flushing(self, link: Link) -> None:
        """The link is about to write: queue acknowledgements and sends now."""

    def link_writable(self, link: Link) -> None:
        """The transport's write buffer drained below its low-water mark."""

    def link_lost(self, link: Link) -> None:
        """The transport is gone (after the handshake or not)."""


class Link(asyncio.Protocol):
    """One connection to the server: transport, core, timer."""

    def __init__(self, owner: LinkOwner, config: ClientConfig, clock: Clock) -> None:
        self.owner = owner
        self.clock = clock
        self.core = ClientConnection(config, now=clock.now())
        self.transport: asyncio.Transport | None = None
        loop = clock.loop
        self.handshake: asyncio.Future[HandshakeComplete] = loop.create_future()
        """Resolved once the server has accepted the handshake: see `_dispatch`."""
        self._completed: HandshakeComplete | None = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self.end: ConnectionClosed | ConnectionTerminated | None = None
        """Why the core closed, once it has."""
        self.ready = False
        self.draining = False
        """A GOAWAY arrived: nothing new is put on this link."""
        self.write_paused = False
        self.read_paused = False
        self.requests: dict[int, object] = {}
        """Request id -> what it was for (a pending send, a fetch, a resume): request ids are per connection."""
        self._next_request_id = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline = 0.0  # uvloop's timer handles have no when()
        self._flush_scheduled = False

    # --- asyncio.Protocol -------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, only a structural match: no isinstance.
        self.transport = cast(asyncio.Transport, transport)
        self.core.connect(now=self.clock.now())
        self.flush()

    def data_received(self, data: bytes) -> None:
        self.core.receive_data(data)
        self._dispatch()
        self.flush()

    def eof_received(self) -> bool | None:
        self.core.receive_data(b"")
        self._dispatch()
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.core.closed:
            self.core.receive_data(b"")
            self._dispatch()
        self._cancel_timer()
        self.transport = None
        if not self.handshake.done():
            self.handshake.set_exception(ConnectError(None, f"connection lost during the handshake: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)
        self.owner.link_lost(self)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self.owner.link_writable(self)

    # --- for the owner ----------------------------------------------------------------------------------

    @property
    def usable(self) -> bool:
        """Handshake done, not closing, not draining: application frames may be queued."""
        return self.ready and not self.draining and self.core.state is State.CONNECTED

    def next_request_id(self) -> int:
        """A fresh request id on this connection (never 0, which means "no request")."""
        self._next_request_id = self._next_request_id % 0xFFFF_FFFF + 1
        return self._next_request_id

    def send(self, frame: Frame) -> None:
        """Queue a frame; it is written by the next flush."""
        self.core.send(frame)
        self.schedule_flush()

    def schedule_flush(self) -> None:
        """Flush once at the end of this loop iteration."""
        if not self._flush_scheduled and self.transport is not None:
            self._flush_scheduled = True
            self.clock.loop.call_soon(self.flush)

    def flush(self) -> None:
        """Let the owner queue its frames, write everything the core has, close the transport when done."""
        self._flush_scheduled = False
        transport = self.transport
        if transport is None:
            return
        if self.ready and self.core.state is State.CONNECTED:
            self.owner.link_flushing(self)
        data = self.core.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        if self.core.closed:
            self._cancel_timer()
            transport.close()
            return
        self._arm_timer()

    def close(self, code: ErrorCode = ErrorCode.OK, reason: str = "") -> None:
        """Flush what is queued, then send CLOSE; the transport closes when the server's CLOSE arrives."""
        if self.transport is None:
            return
        self.flush()
        self.core.close(code, reason)
        self.flush()

    def abort(self) -> None:
        """Drop the connection at once (no CLOSE)."""
        if self.transport is not None:
            self.transport.abort()

    def pause_reading(self) -> None:
        """Stop reading from the socket (the owner's queue is full)."""
        if self.transport is not None and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        """Read again."""
        if self.transport is not None and self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()

    # --- internals --------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        for event in self.core.events_received():
            match event:
                case HandshakeComplete():
                    self.ready = True
                    self._completed = event
                case ConnectionClosed() | ConnectionTerminated():
                    self.end = event
                    if not self.handshake.done():
                        self.handshake.set_exception(connect_error(event.code, event.reason))
                case _ if self._completed is not None and not self.handshake.done():
                    # The core completes on sending CLIENT_FINISHED; the server's first frame after it
                    # (NEW_TICKET, the SYNC_DONE answering our SYNC) shows that it accepted our proof.
                    self.handshake.set_result(self._completed)
            self.owner.link_event(self, event)

    def _arm_timer(self) -> None:
        deadline = self.core.get_timer()
        if deadline is None:
            self._cancel_timer()
            return
        if self._timer is not None:
            if self._timer_deadline == deadline:
                return
            self._timer.cancel()
        self._timer_deadline = deadline
        self._timer = self.clock.loop.call_at(self.clock.to_loop(deadline), self._on_timer, deadline)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self, deadline: float) -> None:
        self._timer = None
        if self.read_paused:
            self._timer = self.clock.loop.call_later(PAUSED_TIMER_RECHECK_S, self._on_timer, deadline)
            return
        self.core.handle_timer(max(self.clock.now(), deadline))
        self._dispatch()
        self.flush()
