"""The web port of one process: its listening socket and the aiohttp server on it.

Before its upgrade an HTTP connection is not a kefu connection, so none of the gateway's limits holds it yet: the port
bounds them itself. A process holds at most [server] max_connections HTTP connections on it (upgraded or not; the
host as a whole may not hold more kefu connections than that anyway), a new one past it is reset at once and counted
(kefu_websocket_refused_total{reason="connections"}), and one that sends no complete request within
[web] request_timeout_s is closed.

Listening is the client port's (`kefu.server.runtime.gateway_process`): with worker processes each gateway binds its
own socket to the web port with SO_REUSEPORT, the supervisor holding the port (bound, never listened on) from start
to stop so that a restarted gateway rejoins on it; in one process the server binds it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from typing import cast

from aiohttp import web

from .. import log as logmod
from .app import WebContext, build_app

__all__ = ["LISTEN_BACKLOG", "PUBLISH_INTERVAL_S", "SHUTDOWN_TIMEOUT_S", "WebPort", "announce", "bind"]

LISTEN_BACKLOG = 4096
"""Accept queue depth (as the client port's: a reconnect storm of browsers must not see refused SYNs)."""
PUBLISH_INTERVAL_S = 1.0
"""How often the byte counts go to Prometheus (as the gateway's)."""
SHUTDOWN_TIMEOUT_S = 1.0
"""How long a stop waits for the web port's requests to end after every WebSocket session was closed."""


def bind(host: str, port: int, *, reuse_port: bool, listen: bool = True) -> socket.socket:
    """A TCP socket bound to (host, port); with `reuse_port`, SO_REUSEPORT (every gateway binds the same port)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def announce(host: str, port: int) -> None:
    """Say that the web port listens: the ``server.web_listening`` event and ``kefu: web on http://HOST:PORT/`` on
    standard output (the line `kefu.server.runtime.launch` reads; an IPv6 host in brackets)."""
    logmod.event("server.web_listening", host=host, port=port)
    shown = f"[{host}]" if ":" in host else host
    print(f"kefu: web on http://{shown}:{port}/", flush=True)


class _Refused(asyncio.Protocol):
    """A connection over the bound: reset at once, nothing read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        cast("asyncio.Transport", transport).abort()  # uvloop's transports are not asyncio.Transport subclasses


class _BoundedSockSite(web.SockSite):
    """aiohttp's SockSite with a bound on the connections its server holds (`max_connections`)."""

    def __init__(
        self, runner: web.BaseRunner, sock: socket.socket, *, max_connections: int, refused: Callable[[], None]
    ):
        super().__init__(runner, sock, backlog=LISTEN_BACKLOG, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        self._max = max_connections
        self._refused = refused

    async def start(self) -> None:
        """Listen (`web.SockSite.start`, with the bound in the protocol factory)."""
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None

        def protocol() -> asyncio.BaseProtocol:
            if len(server.connections) >= self._max:
                self._refused()
                return _Refused()
            return server()

        self._server = await asyncio.get_running_loop().create_server(protocol, sock=self._sock, backlog=self._backlog)


class WebPort:
    """The aiohttp server of the web port on one listening socket."""

    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx
        self.port = 0
        self.host = ""
        self._runner: web.AppRunner | None = None
        self._publisher: asyncio.Task[None] | None = None

    async def start(self, sock: socket.socket) -> None:
        """Serve on `sock` (bound; listening or not)."""
        self.ctx.stats.bind(self.ctx.metrics)
        runner = web.AppRunner(
            build_app(self.ctx),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
            # aiohttp's keep-alive timeout also runs from a connection's start: a connection that never completes a
            # request (never upgrades) is closed after it, not after aiohttp's default of an hour
            keepalive_timeout=self.ctx.config.web.request_timeout_s,
        )
        await runner.setup()
        self._runner = runner
        stats, bound = self.ctx.stats, self.ctx.config.server.max_connections
        site = _BoundedSockSite(runner, sock, max_connections=bound, refused=lambda: stats.refused("connections"))
        await site.start()
        self.host, self.port = sock.getsockname()[:2]
        self._publisher = asyncio.get_running_loop().create_task(self._publish_forever())

    async def _publish_forever(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL_S)
            self.ctx.stats.publish()

    async def stop(self) -> None:
        """Stop accepting and end every request (the gateway has closed the WebSocket sessions already)."""
        if self._publisher is not None:
            self._publisher.cancel()
        runner, self._runner = self._runner, None
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.cleanup()
