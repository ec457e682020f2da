"""A gateway worker process: client connections (accept, handshakes, records, keepalive, limits, delivery windows),
talking to the core over its link. Started by the supervisor (`kefu.server.runtime.supervisor`).

Listening: each gateway binds its own socket to the server's address with SO_REUSEPORT, so that the kernel spreads
new connections evenly over the gateways; with socket activation every gateway accepts on the one socket systemd
passed. The supervisor holds the port from start to stop, so a restarted gateway rejoins on the same one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import log as logmod
from .. import wiring
from ..edge.gateway import Gateway
from ..edge.operator import SessionOrders
from ..identity import keys as keymod
from ..identity.tickets import SharedTicketGuard, claims_path
from ..link.gateway_side import CoreLink
from ..metrics import Metrics
from ..storage import audit
from ..web.app import WebContext
from ..web.port import WebPort
from ..web.port import bind as bind_port
from . import datakeys, process, sdnotify
from .control import Control
from .operator import OperatorSocket, socket_path

__all__ = ["run_gateway"]

LISTEN_BACKLOG = 4096
"""Accept queue depth of each gateway's socket (the kernel caps it at net.core.somaxconn)."""
TICKET_PURGE_INTERVAL_S = 60.0


class GatewayProcess:
    """One gateway worker: its gateway, its link to the core, its listening socket and its control channel."""

    def __init__(
        self, config: Any, load: Callable[[], Any], index: int, loop: asyncio.AbstractEventLoop, *, keys: str = ""
    ) -> None:
        self.config = config
        self._load = load
        self.index = index
        self.loop = loop
        self.metrics = Metrics() if config.metrics.enabled else None
        data_dir = Path(config.server.data_dir)
        # Opened for writing, as the core opens it: the gateway appends its failed-login tallies to the audit trail.
        # Safe beside the core: the supervisor's `prepare` has made, upgraded and checked the store (and its data
        # key) before any worker starts, so this open finds the current schema and writes nothing but what
        # LMDB's write lock orders among the processes.
        self.apps_store = wiring.open_store(config, check_at_open="tops")  # the supervisor checked it all
        if self.metrics is not None:
            self.apps_store.damage.on_damaged = self.metrics.storage_damaged
        self.keyring = keymod.load(data_dir, self.apps_store, newest=keys)
        self.guard = SharedTicketGuard(claims_path(data_dir))
        self.gateway: Gateway = wiring.build_gateway(
            config, loop, self.keyring, guard=self.guard, metrics=self.metrics, name=f"gateway-{index}"
        )
        self.audit = audit.AuditWriter(self.apps_store, name=f"gateway-{index}")
        self.gateway.audit = self.audit
        self.link = CoreLink(self.gateway, self.gateway, loop, gateway=index, on_lost=self._link_lost)
        self.gateway.attach(self.link)
        name = f"gateway-{index}"
        self.orders = SessionOrders(self.gateway, self.apps_store.app_orders, self.keyring.apps, name=name)
        self.operator = OperatorSocket(socket_path(data_dir, name), self.orders)
        self.control: Control | None = None
        self.listener: asyncio.AbstractServer | None = None
        self.web: WebPort | None = None
        """This gateway's share of the web port ([web]): its WebSocket connections are sessions of this gateway."""
        self.done = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(
        self, control: socket.socket, link: socket.socket, listen_fd: int, port: int, web_port: int = -1
    ) -> None:
        """Join the core, listen (and on the web port, when `web_port` >= 0), and tell the supervisor."""
        self.control = Control(control, self.loop, self._on_control, self._supervisor_gone)
        await self.link.attach(link)
        await self.operator.start()
        if listen_fd >= 0:
            sock = socket.socket(fileno=listen_fd)
        else:
            sock = bind_port(self.config.server.host, port, reuse_port=True)
        self.listener = await self.loop.create_server(self.gateway.protocol_factory, sock=sock, backlog=LISTEN_BACKLOG)
        if web_port >= 0 and self.config.web.enabled:
            ctx = WebContext(self.config, self.gateway, self.keyring.pins, store=self.apps_store, metrics=self.metrics)
            self.web = WebPort(ctx)
            await self.web.start(bind_port(self.config.web.host, web_port, reuse_port=True))
        self._tasks = [
            self.loop.create_task(process.publish_forever(self.gateway.publish_counters)),
            self.loop.create_task(self._purge_claims_forever()),
            self.loop.create_task(self.orders.poll_forever()),
        ]
        if self.metrics is not None:
            self._tasks.append(self.loop.create_task(self.metrics.watch_loop_lag()))
        self.control.send({"op": "ready", "role": "gateway", "index": self.index, "pid": os.getpid()})

    async def _purge_claims_forever(self) -> None:
        while True:
            await asyncio.sleep(TICKET_PURGE_INTERVAL_S)
            if self.index == 0:  # one gateway purges for all: the claims are shared
                await self.loop.run_in_executor(None, lambda: self.guard.purge(now=time.time()))

    # --- the supervisor's orders ------------------------------------------------------------------------------

    def _on_control(self, message: dict[str, Any], fds: list[int]) -> None:
        op = message.get("op")
        if op == "ping":
            self._reply({"op": "pong", "n": message.get("n"), "health": self.health()})
        elif op == "metrics":
            text = self.metrics.exposition().decode() if self.metrics is not None else ""
            self._reply({"op": "metrics", "n": message.get("n"), "text": text})
        elif op == "link" and fds:
            self.loop.create_task(self.link.attach(socket.socket(fileno=fds[0])))
            return
        elif op == "reload":
            self._reload()
        elif op == "drain":
            self.loop.create_task(self.drain())
        elif op == "stop":
            self.stop()
        for fd in fds:
            os.close(fd)

    def _reply(self, message: dict[str, Any]) -> None:
        if self.control is not None:
            self.control.send(message)

    def _link_lost(self, reason: str) -> None:
        self._reply({"op": "link_lost", "reason": reason})

    def _supervisor_gone(self) -> None:
        if not self.done.is_set():
            logmod.warning("gateway.supervisor_gone", index=self.index)
            self.stop()

    def _reload(self) -> None:
        config = process.reloaded(self.config, self._load)
        if config is None:
            return
        self.config = config
        self.gateway.reconfigure(self.config)
        datakeys.reload_reader(self.apps_store, config.data_path)
        self.keyring.apps.invalidate()
        logmod.set_level(self.config.log.level)

    def health(self) -> dict[str, Any]:
        """This worker's part of /healthz."""
        return {**self.gateway.health(), "link": self.link.up, "waiting": self.link.waiting}

    # --- stopping -------------------------------------------------------------------------------------------

    async def drain(self) -> None:
        """GOAWAY to every client, stop accepting, wait for the core's answers to what they asked (bounded by
        [server] drain_timeout_s), then close every connection and exit."""
        if self.gateway.draining:
            return
        self.gateway.goaway_all()
        if self.listener is not None:
            self.listener.close()
        deadline = self.loop.time() + self.config.server.drain_timeout_s * 0.8
        while self.link.waiting and self.loop.time() < deadline:  # the answers to what the clients already asked
            await asyncio.sleep(0.02)
        self.stop()

    def stop(self) -> None:
        """Close every connection cleanly and end the process's main coroutine."""
        self.gateway.draining = True
        if self.listener is not None:
            self.listener.close()
        self.operator.close()
        self.gateway.close_all()
        for task in self._tasks:
            task.cancel()
        self.done.set()

    async def close(self) -> None:
        """After `done`: let the last writes go out, then release everything."""
        await asyncio.sleep(0.05)
        if self.web is not None:
            await self.web.stop()
        self.link.close()
        with contextlib.suppress(Exception):
            self.guard.close()
        await self.loop.run_in_executor(None, self.audit.close)  # its last tallies, before the store closes
        self.apps_store.close()
        if self.control is not None:
            self.control.send({"op": "stopped"})
            self.control.close()


async def run_gateway(config: Any, load: Callable[[], Any], *, index: int, control: int, link: int, listen: int,
                      port: int, keys: str = "", web_port: int = -1) -> None:  # fmt: skip
    """Run one gateway until the supervisor says stop (or goes away); `keys`: the signing keys of the server's
    start (`keymod.load`)."""
    loop = asyncio.get_running_loop()
    worker = GatewayProcess(config, load, index, loop, keys=keys)
    sdnotify.install_debug_stall(loop)  # test-only; inert unless KEFU_DEBUG_STALL_ON_SIGNAL is set
    await worker.start(socket.socket(fileno=control), socket.socket(fileno=link), listen, port, web_port)
    collector = process.tame_collector(loop)
    await worker.done.wait()
    collector.cancel()
    await worker.close()
