"""The harness's client: the sans-IO core over an asyncio socket, lean enough to hold thousands per process.

Theory of operation: a `BenchPeer` is one connection and nothing else: no task, no timer handle, no queue.
It feeds received bytes to the core, hands every event to its `Sink` (the scenario's per-process driver)
and acknowledges DELIVERs in one DELIVER_ACK per received chunk. Keepalive and the handshake deadline are
the core's: a `Sweeper` per process walks every peer in slices, calling `handle_timer` on the due ones, so
15,000 idle connections cost one coroutine rather than 15,000 armed timers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from typing import Any, Protocol

from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.connection import State
from kefu.protocol.crypto import Suite
from kefu.protocol.events import ConnectionClosed, ConnectionTerminated, HandshakeComplete, TicketReceived
from kefu.protocol.frames import AckEntry, Deliver, DeliverAck, Frame, PskMode
from kefu.protocol.handshake import MAX_KEEPALIVE_MS, ClientConfig
from kefu.protocol.tickets import SessionTicket

IDLE_KEEPALIVE_MS = MAX_KEEPALIVE_MS
"""Ask for the longest keepalive the protocol allows (5 min): idle pings would blur the memory measurement."""

CONNECT_TIMEOUT_S = 30.0
"""A connection plus handshake slower than this under a storm counts as failed."""

SWEEP_PERIOD_S = 0.25
"""The sweeper wakes four times a second and visits a quarter of the peers each time (every peer once per
second): far finer than a 75 s keepalive tick or the 10 s handshake deadline."""


class Sink(Protocol):
    """What a scenario does with a peer's events (all optional behaviour lives here, not in the peer)."""

    def on_frame(self, peer: BenchPeer, frame: Frame, now_ns: int) -> None: ...
    def on_lost(self, peer: BenchPeer) -> None: ...


class NullSink:
    """Ignores everything: connections that only need to exist."""

    def on_frame(self, peer: BenchPeer, frame: Frame, now_ns: int) -> None:
        pass

    def on_lost(self, peer: BenchPeer) -> None:
        pass


@dataclasses.dataclass(frozen=True, slots=True)
class Credentials:
    """Who a peer logs in as, and how."""

    app_id: str
    secret: bytes
    pins: frozenset[str]
    suite: Suite = Suite.NATIONAL

    def config(self, ticket: SessionTicket | None = None, *, keepalive_ms: int = IDLE_KEEPALIVE_MS) -> ClientConfig:
        """A ClientConfig for a full handshake, or a PSK_ONLY resumption with `ticket`."""
        return ClientConfig(
            self.app_id, self.pins, (self.suite,), app_secret=self.secret, keepalive_ms=keepalive_ms,
            ticket=ticket, psk_mode=PskMode.PSK_ONLY,
        )  # fmt: skip


class BenchPeer(asyncio.Protocol):
    """One connection driven by the core; events go to `sink`."""

    __slots__ = (
        "conn", "conversation", "creds", "index", "lost", "ready", "resumed", "sink", "ticket", "ticketed", "transport",
    )  # fmt: skip

    def __init__(self, creds: Credentials, sink: Sink, index: int = 0, ticket: SessionTicket | None = None) -> None:
        self.creds = creds
        self.sink = sink
        self.index = index
        self.conn = ClientConnection(creds.config(ticket), now=time.time())
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[HandshakeComplete] = loop.create_future()
        self.ticketed: asyncio.Future[SessionTicket] = loop.create_future()
        self.ticket: SessionTicket | None = None
        self.resumed = False
        self.lost = False
        self.conversation = 0
        """The conversation a scenario assigned to this peer (0: none)."""

    @property
    def usable(self) -> bool:
        """Connected and not closing."""
        return self.conn.state is State.CONNECTED and self.transport is not None and not self.transport.is_closing()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.conn.connect(now=time.time())
        self.flush()

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        self._handle(conn.events_received())
        self.flush()

    def eof_received(self) -> bool | None:
        self.conn.receive_data(b"")
        self._handle(self.conn.events_received())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        for future in (self.ready, self.ticketed):
            if not future.done():
                future.set_exception(ConnectionError("connection lost during the handshake"))
                future.exception()  # retrieved: nobody may be waiting for the ticket any more
        self.sink.on_lost(self)

    def _handle(self, events: list[Any]) -> None:
        acks: list[AckEntry] | None = None
        now_ns = time.monotonic_ns()
        sink = self.sink
        for event in events:
            if isinstance(event, Deliver):
                if acks is None:
                    acks = []
                acks.append(AckEntry(event.conversation_id, event.seq))
                sink.on_frame(self, event, now_ns)
            elif isinstance(event, Frame):
                sink.on_frame(self, event, now_ns)
            elif isinstance(event, HandshakeComplete):
                self.resumed = event.resumed
                if not self.ready.done():
                    self.ready.set_result(event)
            elif isinstance(event, TicketReceived):
                self.ticket = dataclasses.replace(event.ticket, received_at=time.time())
                if not self.ticketed.done():
                    self.ticketed.set_result(self.ticket)
            elif isinstance(event, ConnectionTerminated | ConnectionClosed):
                error = ConnectionError(f"{event.code.name}: {event.reason}")
                for future in (self.ready, self.ticketed):
                    if not future.done():
                        future.set_exception(error)
                        future.exception()
        if acks and self.conn.state is State.CONNECTED:
            self.conn.send(DeliverAck(tuple(acks)))

    def send(self, frame: Frame) -> None:
        """Queue a frame; the caller flushes (once per batch)."""
        self.conn.send(frame)

    def flush(self) -> None:
        """Write what the core has queued; close the socket once the core is closed."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        data = self.conn.data_to_send()
        if data:
            transport.write(data)
        if self.conn.closed:
            transport.close()

    def abort(self) -> None:
        """Drop the connection at once (RST: no TIME_WAIT left on the client's port)."""
        if self.transport is not None:
            self.transport.abort()

    def tick(self, now: float) -> None:
        """Run the core's timer if it is due (called by the sweeper)."""
        due = self.conn.get_timer()
        if due is not None and due <= now:
            self.conn.handle_timer(now)
            self._handle(self.conn.events_received())
            self.flush()


async def open_peer(
    peer: BenchPeer, host: str, port: int, source: str, *, wait_ticket: bool = True, timeout: float = CONNECT_TIMEOUT_S
) -> BenchPeer:
    """Connect `peer` from address `source` and wait for its handshake (and the server's ticket, which also
    proves that the server accepted the client's proof)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        await loop.create_connection(lambda: peer, host, port, local_addr=(source, 0))
        await peer.ready
        if wait_ticket:
            await peer.ticketed
    return peer


def source_addresses(count: int) -> list[str]:
    """127.0.0.2, 127.0.0.3, ...: loopback sources, about 28k ephemeral ports each."""
    return [f"127.0.{(i + 2) // 256}.{(i + 2) % 256}" for i in range(count)]


class Sweeper:
    """Runs every peer's core timer about once a second, a slice at a time."""

    def __init__(self, peers: Sequence[BenchPeer]) -> None:
        self.peers = peers
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Sweeper:
        """Start sweeping on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def _run(self) -> None:
        slices = max(1, round(1 / SWEEP_PERIOD_S))
        part = 0
        while True:
            await asyncio.sleep(SWEEP_PERIOD_S)
            now = time.time()
            peers = self.peers
            for i in range(part, len(peers), slices):
                peer = peers[i]
                if not peer.lost:
                    peer.tick(now)
            part = (part + 1) % slices

    def stop(self) -> None:
        """Stop sweeping."""
        if self._task is not None:
            self._task.cancel()
