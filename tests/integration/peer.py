"""A minimal test peer: the sans-IO client core over a real asyncio socket, with no library logic.

Integration tests of the server use it where they need to act on the wire directly (drop acks, send garbage,
stall reading); kefu.client is tested separately against the same server.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, ClassVar

from kefu.protocol import frames
from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.crypto import Suite
from kefu.protocol.events import ConnectionClosed, ConnectionTerminated, HandshakeComplete
from kefu.protocol.handshake import ClientConfig

TIMEOUT = 10.0


class Peer(asyncio.Protocol):
    """One client connection; frames and events arrive in `inbox`."""

    open_peers: ClassVar[list[Peer]] = []
    """Every peer of the running test, so that a fixture can close them all."""

    def __init__(self, config: ClientConfig) -> None:
        Peer.open_peers.append(self)
        self.conn = ClientConnection(config, now=time.time())
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self.ready = asyncio.get_running_loop().create_future()
        self.lost = asyncio.get_running_loop().create_future()
        self.auto_ack = True
        self._request = 0

    @classmethod
    async def connect(
        cls,
        port: int,
        app_id: str,
        secret: bytes,
        pins: frozenset[str],
        *,
        suite: Suite = Suite.NATIONAL,
        host: str = "127.0.0.1",
        **config: Any,
    ) -> Peer:
        """Connect and complete the handshake."""
        loop = asyncio.get_running_loop()
        peer = cls(ClientConfig(app_id, pins, (suite,), app_secret=secret, **config))
        await loop.create_connection(lambda: peer, host, port)
        await asyncio.wait_for(asyncio.shield(peer.ready), TIMEOUT)
        return peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.connect(now=time.time())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        acks = []
        for event in self.conn.events_received():
            if isinstance(event, HandshakeComplete) and not self.ready.done():
                self.ready.set_result(event)
            elif isinstance(event, ConnectionTerminated | ConnectionClosed) and not self.ready.done():
                self.ready.set_exception(ConnectionError(f"{event.code.name}: {event.reason}"))
            if isinstance(event, frames.Deliver) and self.auto_ack:
                acks.append(frames.AckEntry(event.conversation_id, event.seq))
            self.inbox.put_nowait(event)
        if acks and self.conn.state.value == "connected":
            self.conn.send(frames.DeliverAck(tuple(acks)))
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("lost before the handshake"))
        if not self.lost.done():
            self.lost.set_result(exc)
        self.inbox.put_nowait(None)

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send_frame(self, frame: frames.Frame) -> None:
        """Queue and write one frame."""
        self.conn.send(frame)
        self._flush()

    def send(self, conversation_id: int, body: bytes, *, to: tuple[str, ...] = (), cmid: bytes | None = None) -> int:
        """Write a SEND; returns its request id."""
        self._request += 1
        meta = (frames.MetaEntry("kefu.to", ",".join(to).encode()),) if to else ()
        self.send_frame(frames.Send(cmid or os.urandom(16), conversation_id, 1, body, meta, request_id=self._request))
        return self._request

    async def next(self, kind: type | tuple[type, ...], timeout: float = TIMEOUT) -> Any:
        """The next event of `kind`, skipping others."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            event = await asyncio.wait_for(self.inbox.get(), max(left, 0.001))
            if event is None:
                raise ConnectionError("connection lost")
            if isinstance(event, kind):
                return event

    def close(self) -> None:
        """Abort the socket."""
        if self.transport is not None:
            self.transport.abort()
