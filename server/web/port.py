"""The web port of one process: its listening socket and the aiohttp server on it.

Listening is the client port's (`kefu.server.runtime.gateway_process`): with worker processes each gateway binds its
own socket to the web port with SO_REUSEPORT, the supervisor holding the port (bound, never listened on) from start
to stop so that a restarted gateway rejoins on it; in one process the server binds it alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

from aiohttp import web

from .app import WebContext, build_app

__all__ = ["IDLE_TIMEOUT_S", "LISTEN_BACKLOG", "PUBLISH_INTERVAL_S", "SHUTDOWN_TIMEOUT_S", "WebPort", "bind"]

LISTEN_BACKLOG = 4096
"""Accept queue depth (as the client port's: a reconnect storm of browsers must not see refused SYNs)."""
PUBLISH_INTERVAL_S = 1.0
"""How often the byte counts go to Prometheus (as the gateway's)."""
IDLE_TIMEOUT_S = 15.0
"""An HTTP connection of the web port that has sent no complete request for this long is closed (aiohttp's keep-alive
timeout, which also applies from the connection's start): a connection that never upgrades holds a descriptor, not
a slot of [server] max_connections, so it must not be held for aiohttp's default of an hour. A WebSocket is not
subject to it once upgraded (its own keepalive is the protocol's)."""
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
            keepalive_timeout=IDLE_TIMEOUT_S,
        )
        await runner.setup()
        self._runner = runner
        site = web.SockSite(runner, sock, backlog=LISTEN_BACKLOG, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await site.start()
        self.host, self.port = sock.getsockname()[:2]
        self._publisher = asyncio.get_running_loop().create_task(self._publish_forever())

    async def _publish_forever(self) -> None:
        while True:
            await asyncio.sleep(PUBLISH_INTERVAL_S)
            self.ctx.stats.publish()

    @property
    def url(self) -> str:
        """http://HOST:PORT/ of the port (for the listening line)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    async def stop(self) -> None:
        """Stop accepting and end every request (the gateway has closed the WebSocket sessions already)."""
        if self._publisher is not None:
            self._publisher.cancel()
        runner, self._runner = self._runner, None
        if runner is not None:
            with contextlib.suppress(Exception):
                await runner.cleanup()
