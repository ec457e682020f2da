"""The API's listening socket with a bound on the connections it holds.

The API is served by the core process, which also holds the store, the write-ahead log and the links to every
gateway: a flood of HTTP connections must not take its file descriptors. So past ``[api] max_connections`` open
connections a new one gets ``503 {"error": {"code": "BUSY", ...}}`` and is closed at once, before aiohttp reads a byte
of it (the HTTP answer, rather than a silent close, tells a well-behaved client to retry later).
"""

from __future__ import annotations

import asyncio
import json
from typing import cast

from aiohttp import web

__all__ = ["BUSY_LINGER_S", "LISTEN_BACKLOG", "BoundedSite"]

LISTEN_BACKLOG = 1024
"""Accept queue depth of the API's socket (bank systems' bursts; far fewer clients than the protocol's port)."""
BUSY_LINGER_S = 1.0
"""How long a refused connection is kept for its client to read the 503 (its request is discarded meanwhile)."""
_BUSY = json.dumps({"error": {"code": "BUSY", "message": "too many connections; retry later"}}).encode()
_BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    b"Retry-After: 1\r\nContent-Length: " + str(len(_BUSY)).encode() + b"\r\n\r\n" + _BUSY
)


class _Busy(asyncio.Protocol):
    """A connection over the bound: answered 503, its sending side shut, closed when the client has said its part
    (or after BUSY_LINGER_S): closing at once, with the client's request unread, would reset the connection and could
    destroy the answer before the client reads it."""

    transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport's
        transport.write(_BUSY_RESPONSE)
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(BUSY_LINGER_S, transport.close)

    def data_received(self, data: bytes) -> None:
        """The request, unread."""

    def eof_received(self) -> bool:
        """The client is done: close."""
        if self.transport is not None:
            self.transport.close()
        return False


class BoundedSite(web.BaseSite):
    """A TCP site whose server holds at most `max_connections` connections."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, *, max_connections: int, reuse_port: bool = False
    ) -> None:
        super().__init__(runner, backlog=LISTEN_BACKLOG)
        self._host, self._port, self._reuse_port = host, port, reuse_port
        self._max = max_connections
        self.refused = 0
        """Connections answered 503 for the bound."""

    @property
    def name(self) -> str:
        """See `web.BaseSite.name`."""
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Listen (see `web.BaseSite.start`)."""
        await super().start()
        server = self._runner.server
        assert server is not None

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= self._max:
                self.refused += 1
                return _Busy()
            return server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, self._host, self._port, backlog=self._backlog, reuse_address=True, reuse_port=self._reuse_port
        )
