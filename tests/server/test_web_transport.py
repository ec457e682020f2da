"""kefu.server.web.transport: the WebSocket seen as an asyncio transport, on a real aiohttp server on loopback with
a plain asyncio.Protocol in the session's place: output cut into bounded messages and put back together byte for
byte, backpressure (pause_writing at the high-water mark, resume_writing once drained), reading paused and resumed,
and the close codes of close and abort."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web

from kefu.server.web.transport import (
    MAX_CLIENT_MESSAGE_BYTES,
    MAX_MESSAGE_BYTES,
    SUBPROTOCOL,
    WebSocketTransport,
    websocket_response,
)

pytestmark = pytest.mark.asyncio

WAIT_S = 10.0


class Recorder(asyncio.Protocol):
    """What a session would be: records every call; `on_made` acts on the transport."""

    def __init__(self, on_made: Callable[[WebSocketTransport], None] = lambda t: None) -> None:
        self.on_made = on_made
        self.transport: WebSocketTransport | None = None
        self.received: list[bytes] = []
        self.calls: list[str] = []
        self.lost = asyncio.get_running_loop().create_future()
        self.resumed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, WebSocketTransport)
        self.transport = transport
        transport.set_write_buffer_limits(high=256 * 1024, low=64 * 1024)
        self.on_made(transport)

    def data_received(self, data: bytes) -> None:
        self.received.append(bytes(data))

    def eof_received(self) -> bool | None:
        self.calls.append("eof")
        return None

    def pause_writing(self) -> None:
        self.calls.append("pause")

    def resume_writing(self) -> None:
        self.calls.append("resume")
        self.resumed.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append("lost")
        self.lost.set_result(None)


class Served:
    """An aiohttp server whose /ws runs each connection with the next protocol from `make`."""

    def __init__(self) -> None:
        self.make: Callable[[], Recorder] = Recorder
        self.protocols: list[Recorder] = []
        self.port = 0

    async def handler(self, request: web.Request) -> web.StreamResponse:
        ws = websocket_response()
        await ws.prepare(request)
        protocol = self.make()
        self.protocols.append(protocol)
        await WebSocketTransport(ws, request, count_in=lambda n: None, count_out=lambda n: None).run(protocol)
        return ws


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    s = Served()
    app = web.Application()
    app.router.add_get("/ws", s.handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    s.port = runner.addresses[0][1]
    try:
        yield s
    finally:
        await runner.cleanup()


async def connect(served: Served, **kwargs: Any) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(f"ws://127.0.0.1:{served.port}/ws", protocols=(SUBPROTOCOL,), max_msg_size=0, **kwargs)
    return http, ws


async def test_output_is_cut_into_bounded_messages_and_comes_back_whole(served: Served) -> None:
    data = bytes(range(256)) * (MAX_MESSAGE_BYTES * 5 // 2 // 256)  # 2.5 of the largest messages, in one write
    served.make = lambda: Recorder(lambda t: (t.write(data), t.close()))
    http, ws = await connect(served)
    try:
        sizes, got = [], bytearray()
        async with asyncio.timeout(WAIT_S):
            async for msg in ws:
                assert msg.type is aiohttp.WSMsgType.BINARY
                sizes.append(len(msg.data))
                got += msg.data
        assert bytes(got) == data and max(sizes) <= MAX_MESSAGE_BYTES and len(sizes) == 3
        assert ws.close_code == aiohttp.WSCloseCode.OK
    finally:
        await http.close()
    await asyncio.wait_for(served.protocols[0].lost, WAIT_S)


class Flood(Recorder):
    """Writes 64 KiB chunks whenever it may, up to TOTAL bytes."""

    TOTAL = 32 << 20
    """More than the kernel's loopback buffers hold: a reader that reads nothing must stop the writer."""
    CHUNK = 64 << 10

    def __init__(self) -> None:
        super().__init__()
        self.paused = False
        self.written = 0
        self.most_buffered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.fill()

    def fill(self) -> None:
        transport = self.transport
        assert transport is not None
        while not self.paused and self.written < self.TOTAL:
            transport.write(bytes(self.CHUNK))
            self.written += self.CHUNK
            self.most_buffered = max(self.most_buffered, transport.get_write_buffer_size())

    def pause_writing(self) -> None:
        super().pause_writing()
        self.paused = True

    def resume_writing(self) -> None:
        super().resume_writing()
        self.paused = False
        self.fill()


async def test_a_reader_that_stops_reading_pauses_the_writer_until_it_drains(served: Served) -> None:
    served.make = Flood
    http, ws = await connect(served)
    try:
        await asyncio.sleep(0.5)  # the client reads nothing meanwhile
        flood = served.protocols[0]
        assert isinstance(flood, Flood)
        assert flood.paused and flood.written < Flood.TOTAL, "the writer was held back"
        assert flood.most_buffered <= 256 * 1024 + Flood.CHUNK, "what waits is bounded by the high-water mark"
        got = 0
        async with asyncio.timeout(WAIT_S * 3):
            while got < Flood.TOTAL:
                got += len((await ws.receive()).data)
        assert got == Flood.TOTAL and "resume" in flood.calls and not flood.paused
        assert flood.most_buffered <= 256 * 1024 + Flood.CHUNK
    finally:
        await http.close()


async def test_reading_paused_holds_back_messages_until_resumed(served: Served) -> None:
    served.make = lambda: Recorder(lambda t: t.pause_reading())
    http, ws = await connect(served)
    try:
        for i in range(3):
            await ws.send_bytes(bytes([i]) * 10)
        await asyncio.sleep(0.2)
        protocol = served.protocols[0]
        assert protocol.received == []
        assert protocol.transport is not None
        protocol.transport.resume_reading()
        async with asyncio.timeout(WAIT_S):
            while len(protocol.received) < 3:
                await asyncio.sleep(0.01)
        assert protocol.received == [bytes([i]) * 10 for i in range(3)]
    finally:
        await http.close()


async def test_abort_drops_what_is_queued_and_closes_with_1013(served: Served) -> None:
    served.make = lambda: Recorder(lambda t: (t.write(b"never sent"), t.abort()))
    http, ws = await connect(served)
    try:
        async with asyncio.timeout(WAIT_S):
            msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == aiohttp.WSCloseCode.TRY_AGAIN_LATER
    finally:
        await http.close()


async def test_the_peers_close_is_the_end_of_the_stream(served: Served) -> None:
    http, ws = await connect(served)
    try:
        await ws.send_bytes(b"last words")
        await ws.close()
        protocol = served.protocols[0]
        await asyncio.wait_for(protocol.lost, WAIT_S)
        assert protocol.received == [b"last words"] and protocol.calls == ["eof", "lost"]
    finally:
        await http.close()


async def test_a_message_of_the_largest_size_is_taken_and_one_byte_more_is_not(served: Served) -> None:
    http, ws = await connect(served)
    try:
        await ws.send_bytes(bytes(MAX_CLIENT_MESSAGE_BYTES))
        protocol = served.protocols[0]
        async with asyncio.timeout(WAIT_S):
            while not protocol.received:
                await asyncio.sleep(0.01)
        assert [len(b) for b in protocol.received] == [MAX_CLIENT_MESSAGE_BYTES]
        await ws.send_bytes(bytes(MAX_CLIENT_MESSAGE_BYTES + 1))
        async with asyncio.timeout(WAIT_S):
            msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        assert [len(b) for b in protocol.received] == [MAX_CLIENT_MESSAGE_BYTES]
    finally:
        await http.close()


class Handshaking(Recorder):
    """A session before its handshake is complete (`ready` False) that has paused reading, as one held back or
    waiting for the core's admission does."""

    ready = False

    def __init__(self) -> None:
        super().__init__(lambda t: t.pause_reading())


async def test_before_the_handshake_messages_reach_the_session_even_while_it_has_paused_reading(
    served: Served,
) -> None:
    """So the session bounds and refuses what arrives early (as over TCP), and nothing waits in aiohttp's queue."""
    served.make = Handshaking
    http, ws = await connect(served)
    try:
        for n in range(3):
            await ws.send_bytes(bytes([n]) * 100)
        protocol = served.protocols[0]
        async with asyncio.timeout(WAIT_S):
            while len(protocol.received) < 3:
                await asyncio.sleep(0.01)
        assert protocol.received == [bytes([n]) * 100 for n in range(3)]
        assert protocol.transport is not None and not protocol.transport.is_reading()
    finally:
        await http.close()


async def test_a_peer_gone_while_reading_is_paused_ends_the_connection_at_the_next_write(served: Served) -> None:
    served.make = lambda: Recorder(lambda t: t.pause_reading())
    http, _ = await connect(served)
    await http.close()  # the client's socket closes; the server, not reading, does not see it
    protocol = served.protocols[0]
    await asyncio.sleep(0.2)
    assert not protocol.lost.done()
    assert protocol.transport is not None
    protocol.transport.write(b"a keepalive")  # as the session's timer does
    await asyncio.wait_for(protocol.lost, WAIT_S)
