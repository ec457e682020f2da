"""The Python client over the WebSocket gateway, for the tests and the benchmarks (spec section 15).

`kefu.client`'s connection (`Link`, an asyncio.Protocol driving the sans-IO `ClientConnection`) runs unchanged on a
`WsTransport`: an asyncio.Transport stand-in over aiohttp's client WebSocket, which hands each binary message to
the protocol as a TCP read and sends what the protocol writes as binary messages (whole records: the client core
writes whole records). `ws_client` is a `kefu.client.Client` whose dialer connects to ws://HOST:PORT/ws instead of
the TCP port, so the whole client (handshakes, resumption, sends, deliveries, service requests) works over it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import aiohttp

from kefu.client import Client
from kefu.client.connection import Clock, Link, LinkOwner
from kefu.client.dialer import Dialer
from kefu.client.errors import ClientError, ConnectError, ConnectTimeout
from kefu.protocol.frames import HEADER_LEN, MAX_HANDSHAKE_BODY

__all__ = ["SUBPROTOCOL", "WsDialer", "WsTransport", "open_ws", "ws_client"]

SUBPROTOCOL = "kefu.v1"
MAX_MESSAGE_BYTES = 0
"""The client accepts messages of any size (the server cuts its output at the largest record anyway)."""
MAX_CLIENT_MESSAGE_BYTES = HEADER_LEN + MAX_HANDSHAKE_BODY
"""The largest message the server takes from a client (spec 15.2): longer output is cut into several."""


class WsTransport(asyncio.Transport):
    """An aiohttp client WebSocket seen by an asyncio.Protocol as its transport."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession | None) -> None:
        super().__init__()
        self.ws = ws
        self._session = session
        """Closed with the connection when this transport made it."""
        self._protocol: asyncio.Protocol | None = None
        self._queue: list[bytes] = []
        self._wake: asyncio.Future[None] | None = None
        self._closing = False
        self._reading = asyncio.Event()
        self._reading.set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, protocol: asyncio.Protocol) -> None:
        """Begin: connection_made, then read and write until closed."""
        self._protocol = protocol
        protocol.connection_made(self)
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read_forever()), loop.create_task(self._write_forever())]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.ws.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._closing or self.ws.closed

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.is_closing():
            return
        self._queue.append(bytes(data))
        self._kick()

    def get_write_buffer_size(self) -> int:
        return sum(len(b) for b in self._queue)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def close(self) -> None:
        self._closing = True
        self._kick()

    def abort(self) -> None:
        self._queue.clear()
        self.close()

    def _kick(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _read_forever(self) -> None:
        protocol = self._protocol
        assert protocol is not None
        try:
            while True:
                await self._reading.wait()
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.BINARY:
                    protocol.data_received(msg.data)
                    continue
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                    protocol.eof_received()
                break
        finally:
            self._closing = True
            self._kick()
            await asyncio.shield(self._finish())

    async def _write_forever(self) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            while True:
                if self._queue:
                    data = b"".join(self._queue)
                    self._queue.clear()
                    for start in range(0, len(data), MAX_CLIENT_MESSAGE_BYTES):  # spec 15.2: a record may span messages
                        await self.ws.send_bytes(data[start : start + MAX_CLIENT_MESSAGE_BYTES])
                    continue
                if self._closing:
                    break
                self._wake = asyncio.get_running_loop().create_future()
                await self._wake
        with contextlib.suppress(Exception):
            await self.ws.close()

    async def _finish(self) -> None:
        with contextlib.suppress(Exception):
            await self._tasks[1]
        if self._session is not None:
            await self._session.close()
        if self._protocol is not None:
            protocol, self._protocol = self._protocol, None
            protocol.connection_lost(None)


async def open_ws(
    url: str,
    protocol_factory: Callable[[], asyncio.Protocol],
    *,
    origin: str | None = None,
    protocols: tuple[str, ...] = (SUBPROTOCOL,),
    session: aiohttp.ClientSession | None = None,
) -> tuple[WsTransport, asyncio.Protocol]:
    """Like `loop.create_connection`, to a kefu WebSocket URL (ws://HOST:PORT/ws). `session`: an aiohttp session to
    connect through (kept open); else one is made for the connection and closed with it."""
    own = session is None
    http = aiohttp.ClientSession() if session is None else session
    headers = {"Origin": origin} if origin else {}
    try:
        ws = await http.ws_connect(url, protocols=protocols, headers=headers, max_msg_size=MAX_MESSAGE_BYTES,
                                   autoping=True, compress=0)  # fmt: skip
    except BaseException:
        if own:
            await http.close()
        raise
    transport = WsTransport(ws, http if own else None)
    protocol = protocol_factory()
    transport.start(protocol)
    return transport, protocol


class WsDialer(Dialer):
    """`kefu.client.dialer.Dialer` with the connection made to the web port's /ws instead of the TCP port."""

    def __init__(self, url: str, dialer: Dialer, *, session: aiohttp.ClientSession | None = None) -> None:
        super().__init__(dialer.host, dialer.port, dialer.config, local_addr=None,
                         connect_timeout=dialer.connect_timeout)  # fmt: skip
        self.url = url
        self.session = session

    async def dial(self, owner: LinkOwner, clock: Clock) -> Link:
        """One attempt over WebSocket (the TCP dialer's, with `open_ws` for `create_connection`)."""
        link = Link(owner, replace(self.config, ticket=self._take_ticket()), clock)
        try:
            async with asyncio.timeout(self.connect_timeout):
                await open_ws(self.url, lambda: link, session=self.session)
                await link.handshake
        except TimeoutError as exc:
            if isinstance(exc, ClientError):
                raise
            link.abort()
            raise ConnectTimeout(f"{self.url}: no handshake within {self.connect_timeout} s") from None
        except ClientError:
            link.abort()
            raise
        except (OSError, aiohttp.ClientError) as exc:
            raise ConnectError(None, f"{self.url}: {exc}") from exc
        except BaseException:
            link.abort()
            raise
        return link


def ws_client(url: str, *, session: aiohttp.ClientSession | None = None, **options: Any) -> Client:
    """A `kefu.client.Client` (options as its keywords) that connects over WebSocket to `url` (ws://HOST:PORT/ws)."""
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 1)
    client = Client(**options)
    client._dialer = WsDialer(url, client._dialer, session=session)  # the one seam for a transport
    return client
