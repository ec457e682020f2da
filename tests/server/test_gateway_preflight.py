"""What a gateway keeps of a connection the core has not admitted yet (spec sections 5.1 and 8): one CLIENT_HELLO at
most. A real gateway on a real loopback socket, with a core that has not answered, on uvloop (which the server runs
on, and which reads once after `connection_made` even when it paused reading there)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import uvloop

from kefu.protocol import frames
from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.crypto import Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import Goaway
from kefu.protocol.handshake import HandshakeKind
from kefu.server.config import Config
from kefu.server.edge.gateway import Gateway
from kefu.server.edge.session import PREFLIGHT_LIMIT

from ..protocol.pairs import client_config, server_config


class SilentCore:
    """A core that records admissions and answers nothing (as one whose verdict is still on its way)."""

    def __init__(self) -> None:
        self.admitted: list[int] = []
        self.closed_sids: list[int] = []

    def admit(self, ticket: int, address: str) -> None:
        self.admitted.append(ticket)

    def closed(self, sid: int) -> None:
        self.closed_sids.append(sid)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


async def _serve() -> tuple[Gateway, SilentCore, asyncio.Server, int]:
    loop = asyncio.get_running_loop()
    gateway = Gateway(config=Config(), server_config=server_config(), loop=loop)
    core = SilentCore()
    gateway.attach(core)  # type: ignore[arg-type]
    server = await loop.create_server(gateway.protocol_factory, "127.0.0.1", 0)
    return gateway, core, server, server.sockets[0].getsockname()[1]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `condition` holds; TimeoutError (the test fails) if it still does not after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def _tell_to_wait(gateway: Gateway) -> Goaway:
    """Have the handshake budget refuse 127.0.0.1, so that the address is told to wait (section 5.9)."""
    for i in range(2000):  # new addresses take the whole budget
        gateway.admission.check(f"10.1.{i // 250}.{i % 250}", Suite.NATIONAL, HandshakeKind.FULL)
    refusal = gateway.admission.check("127.0.0.1", Suite.NATIONAL, HandshakeKind.FULL)
    assert refusal is not None
    return refusal


def _hello() -> bytes:
    client = ClientConnection(client_config(Suite.NATIONAL), now=0.0)
    client.connect(now=0.0)
    return client.data_to_send()


def test_bytes_beyond_a_client_hello_before_admission_end_the_connection_and_are_not_kept() -> None:
    uvloop.run(_beyond_a_client_hello())


async def _beyond_a_client_hello() -> None:
    gateway, core, server, port = await _serve()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await until(lambda: bool(gateway.sessions))  # registered when the connection is made, before any data
        (session,) = gateway.sessions.values()
        writer.write(_hello() + frames.HEADER.pack(1 << 20, 1, frames.FrameType.RECORD, 0, 0) + bytes(64 << 10))
        data = await asyncio.wait_for(reader.read(), 10)
        (raw,) = frames.FrameDecoder().feed(data)
        error = frames.decode_frame(raw)
        assert isinstance(error, frames.Error) and error.code == ErrorCode.UNEXPECTED_FRAME
        assert core.admitted  # the core was asked, and had not answered
        assert session._held is None  # not kept: neither the hello nor what came after it
        writer.close()
        await until(lambda: not gateway.sessions)
        assert core.closed_sids == core.admitted
    finally:
        server.close()


def test_a_client_hello_alone_waits_for_the_verdict_and_is_kept() -> None:
    uvloop.run(_a_client_hello_alone())


async def _a_client_hello_alone() -> None:
    gateway, core, server, port = await _serve()
    try:
        hello = _hello()
        assert len(hello) <= PREFLIGHT_LIMIT
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(hello)
        await writer.drain()
        await until(lambda: bool(core.admitted) and any(s._held for s in gateway.sessions.values()))
        (session,) = gateway.sessions.values()
        assert session._held == hello and not session.conn.closed  # type: ignore[union-attr]
        gateway.admitted(core.admitted[0], None)  # the verdict: the hello is handled now
        header = await asyncio.wait_for(reader.readexactly(frames.HEADER_LEN), 10)
        assert frames.HEADER.unpack(header)[2] == frames.FrameType.SERVER_HELLO
        writer.close()
    finally:
        server.close()


def test_a_connection_from_an_address_told_to_wait_is_held_unread_until_the_delay_is_over() -> None:
    uvloop.run(_held_back())


async def _held_back() -> None:
    gateway, core, server, port = await _serve()
    try:
        refusal = _tell_to_wait(gateway)
        loop = asyncio.get_running_loop()
        started = loop.time()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(_hello())
        await writer.drain()
        await asyncio.sleep(0.05)
        (session,) = gateway.held_back
        assert not core.admitted and session.conn is None and session._held  # held, its hello kept, core not asked
        await until(lambda: bool(core.admitted))
        assert loop.time() - started >= refusal.reconnect_delay_ms / 1000 - 0.06
        assert not gateway.held_back
        gateway.admitted(core.admitted[0], None)
        header = await asyncio.wait_for(reader.readexactly(frames.HEADER_LEN), 10)
        assert frames.HEADER.unpack(header)[2] in (frames.FrameType.SERVER_HELLO, frames.FrameType.GOAWAY)
        writer.close()
    finally:
        server.close()


def test_a_connection_held_back_that_sends_more_than_a_client_hello_is_aborted_and_keeps_at_most_one() -> None:
    uvloop.run(_held_back_beyond_a_client_hello())


async def _held_back_beyond_a_client_hello() -> None:
    gateway, core, server, port = await _serve()
    try:
        refusal = _tell_to_wait(gateway)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await until(lambda: bool(gateway.held_back))  # held back when the connection is made, before any data
        (session,) = gateway.held_back
        hello = _hello()
        writer.write(hello + bytes(PREFLIGHT_LIMIT + 1 - len(hello)))  # one byte more than a hello may be
        await until(lambda: not gateway.held_back)  # it is gone, or its wait is over and it was put to the core
        assert not core.admitted  # gone: dropped as soon as it sent too much
        assert session._held is None or len(session._held) <= PREFLIGHT_LIMIT
        try:
            data = await asyncio.wait_for(reader.read(), 10)
        except ConnectionResetError:  # the abort's RST
            data = b""
        assert data == b""  # without a word: an answer would tell the address its wait is over
        await asyncio.sleep(refusal.reconnect_delay_ms / 1000 + 0.05)
        assert not core.admitted  # nor handled when its wait would have ended
    finally:
        writer.close()
        server.close()
