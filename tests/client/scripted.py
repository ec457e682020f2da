"""A scripted server for client socket tests: the real ServerConnection core on 127.0.0.1:0, driven by the
test (which frames to send, when to drop the connection), recording every frame the client sent.

It implements no delivery semantics of its own: each test plays the server's part frame by frame, which is
what lets it inject duplicates, refusals, GOAWAY, unlabelled history answers and silence.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any, TypeVar

from kefu.protocol.connection import State
from kefu.protocol.crypto import KeyType, SigningKey, Suite
from kefu.protocol.events import ConnectionClosed, ConnectionTerminated, HandshakeComplete
from kefu.protocol.frames import Deliver, Frame, SendAck
from kefu.protocol.handshake import AppCredential, ServerConfig
from kefu.protocol.serverconn import ServerConnection
from kefu.protocol.tickets import TicketGuard, TicketKeys

APP_ID = "visitor-1"
APP_SECRET = b"\x42" * 32
SERVER_KEYS = {KeyType.SM2: SigningKey.generate(KeyType.SM2), KeyType.ED25519: SigningKey.generate(KeyType.ED25519)}
PINS = frozenset(k.verify_key.fingerprint() for k in SERVER_KEYS.values())
WAIT_S = 5.0
"""Every wait in these tests is bounded by this."""

F = TypeVar("F")


def server_config(**changes: Any) -> ServerConfig:
    """Knows APP_ID by its secret; issues tickets."""
    config = ServerConfig(
        keys=SERVER_KEYS,
        apps={APP_ID: AppCredential.from_secret(APP_ID, APP_SECRET)},
        ticket_keys=TicketKeys(b"\x07" * 32),
        ticket_guard=TicketGuard(),
    )
    return dataclasses.replace(config, **changes)


class Session(asyncio.Protocol):
    """One accepted connection: the core, the frames received, a way to send."""

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.core = ServerConnection(server.config, now=time.time())
        self.transport: asyncio.Transport | None = None
        self.received: list[Any] = []
        self._arrived = asyncio.Event()
        self.ready: asyncio.Future[HandshakeComplete] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.silent = server.silent
        """When set, incoming bytes are thrown away (a server that hangs)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.sessions.put_nowait(self)

    def data_received(self, data: bytes) -> None:
        if self.silent:
            return
        self.core.receive_data(data)
        for event in self.core.events_received():
            if isinstance(event, HandshakeComplete) and not self.ready.done():
                self.ready.set_result(event)
            self.received.append(event)
        self._arrived.set()
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self._arrived.set()

    def flush(self) -> None:
        """Write what the core has queued; close the transport when the core is done."""
        if self.transport is None or self.transport.is_closing():
            return
        data = self.core.data_to_send()
        if data:
            self.transport.write(data)
        if self.core.closed:
            self.transport.close()

    def send(self, *frames: Frame) -> None:
        """Send application frames now."""
        for frame in frames:
            self.core.send(frame)
        self.flush()

    def abort(self) -> None:
        """Drop the TCP connection without CLOSE."""
        if self.transport is not None:
            self.transport.abort()

    @property
    def connected(self) -> bool:
        """The core is in CONNECTED state."""
        return self.core.state is State.CONNECTED

    def of(self, cls: type[F]) -> list[F]:
        """Everything of type `cls` received so far."""
        return [f for f in self.received if isinstance(f, cls)]

    async def wait_for(self, cls: type[F], count: int = 1, timeout: float = WAIT_S) -> list[F]:
        """Wait until `count` frames of `cls` have arrived; returns all of them."""
        async with asyncio.timeout(timeout):
            while len(self.of(cls)) < count:
                self._arrived.clear()
                if self.lost.done() and len(self.of(cls)) < count:
                    raise AssertionError(f"connection lost while waiting for {cls.__name__}")
                await self._arrived.wait()
        return self.of(cls)

    async def wait_end(self, timeout: float = WAIT_S) -> ConnectionClosed | ConnectionTerminated | None:
        """Wait for the transport to go; the core's closing event, if any."""
        async with asyncio.timeout(timeout):
            await self.lost
        ends = [e for e in self.received if isinstance(e, ConnectionClosed | ConnectionTerminated)]
        return ends[0] if ends else None


class ScriptedServer:
    """Listens on 127.0.0.1:0; every accepted connection is queued in `sessions`."""

    def __init__(self, **config_changes: Any) -> None:
        self.config = server_config(**config_changes)
        self.sessions: asyncio.Queue[Session] = asyncio.Queue()
        self.all: list[Session] = []
        self.silent = False
        """New sessions start silent (never answer)."""
        self._server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_session, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _new_session(self) -> Session:
        session = Session(self)
        self.all.append(session)
        return session

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for session in self.all:
            session.abort()
        for session in self.all:
            if session.transport is not None:
                async with asyncio.timeout(WAIT_S):
                    await session.lost
        await self._server.wait_closed()

    async def accept(self, timeout: float = WAIT_S) -> Session:
        """The next connection, once its handshake completed."""
        async with asyncio.timeout(timeout):
            session = await self.sessions.get()
            await session.ready
        return session


def deliver(conversation_id: int, seq: int, body: bytes = b"", *, flags: int = 0, request_id: int = 0) -> Deliver:
    """A DELIVER from user "agent-1"."""
    return Deliver(
        conversation_id,
        seq,
        1000 + seq,
        1_700_000_000_000 + seq,
        seq.to_bytes(16, "big"),
        1,
        "agent-1",
        body or f"message {seq}".encode(),
        (),
        flags=flags,
        request_id=request_id,
    )


def ack_for(send: Any, seq: int, *, status: int = 0, flags: int = 0) -> SendAck:
    """The SEND_ACK answering `send` (a Send frame) with `seq`."""
    return SendAck(
        send.client_msg_id,
        status,
        0 if status else 5000 + seq,
        send.conversation_id,
        0 if status else seq,
        0 if status else 1_700_000_000_000,
        request_id=send.request_id,
        flags=flags,
    )


__all__ = ["APP_ID", "APP_SECRET", "PINS", "WAIT_S", "ScriptedServer", "Session", "Suite", "ack_for", "deliver"]
