"""Everything in one process (``[server] workers = 0``): the core and one gateway, connected directly.

Start: the store, keys and apps, the core side (log, delivery core, desk), the gateway, the listening socket, the
metrics endpoint. SIGTERM/SIGINT: GOAWAY to every client, stop accepting, finish the writes in flight, close, exit,
bounded by [server] drain_timeout_s. SIGHUP: reload the reloadable settings.

The process-level chores that every kefu process shares (the collector schedule, signals, systemd notifications)
are in `kefu.server.runtime.process`.
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
from ..api.app import ApiServer
from ..api.context import ApiContext
from ..edge.operator import SessionOrders
from ..engine.audit import Action, Result
from ..identity import keys as keymod
from ..identity.tickets import SharedTicketGuard, open_claims, purge_forever
from ..metrics import Metrics, MetricsServer
from ..service.setup import start_desk, tick_forever
from ..storage import audit, maintenance
from ..storage.datadir import lock_data_dir
from ..storage.indexer import Spawn
from ..storage.modes import private_dir, tighten
from ..web.app import WebContext
from ..web.port import WebPort
from ..web.port import announce as announce_web
from ..web.port import bind as bind_web
from ..webhooks.api import EXTRAS_KEY as WEBHOOKS_KEY
from ..webhooks.setup import build_webhooks
from . import process, reload, sdnotify
from .datakeys import DataKeys
from .operator import OperatorSocket, socket_path

__all__ = ["EXIT_LOG_FAILED", "LISTEN_BACKLOG", "Server", "run"]

EXIT_LOG_FAILED = 70
"""The exit status after the write-ahead log failed (EX_SOFTWARE): systemd or the supervisor restarts the server,
whose start-up replays the log."""

LISTEN_BACKLOG = 4096
"""Accept queue depth: a reconnect storm of thousands of clients must not see refused SYNs (the kernel caps it at
net.core.somaxconn; the sysctl drop-in raises that)."""


class Server:
    """One running single-process server: everything `run` starts, and how to stop it."""

    def __init__(self, config: Any, loop: asyncio.AbstractEventLoop, metrics: Any, spawn: Spawn | None = None) -> None:
        """`spawn`: how the indexer process starts (default: a subprocess)."""
        self.config = config
        self.loop = loop
        self.metrics = metrics
        data_dir = private_dir(Path(config.server.data_dir))
        self.data_dir_lock = lock_data_dir(data_dir)  # one server per data directory; `kefu restore` takes it too
        tighten(data_dir)
        self.store = wiring.open_store(config)
        self.keyring = keymod.load_or_create(data_dir, self.store)
        keymod.write_pins(data_dir)
        self.side = wiring.build_core(
            config, loop, self.store, self.keyring.apps, metrics, on_fatal=self._log_failed, spawn=spawn
        )
        self.data_keys = DataKeys(config, self.store, self.side.log, metrics=metrics)
        self.guard = SharedTicketGuard(open_claims(data_dir))  # claims outlive restarts, as with worker processes
        self.gateway = wiring.build_gateway(config, loop, self.keyring, guard=self.guard, metrics=metrics)
        wiring.connect_local(self.side.core, self.gateway)
        self.audit = audit.AuditWriter(self.store, name="server")
        self.side.desk.audit = self.gateway.audit = self.audit
        self.webhooks = build_webhooks(config, self.side, metrics, loop)
        """Webhook deliveries ([webhooks], spec section 18): None when off."""
        self.orders = SessionOrders(self.gateway, self.store.app_orders, self.keyring.apps, name="server")
        self.operator = OperatorSocket(socket_path(data_dir, "server"), self.orders)
        self.listener: asyncio.AbstractServer | None = None
        self.api: ApiServer | None = None
        """The HTTP integration API ([api]), beside the desk."""
        self.web: WebPort | None = None
        """The web port ([web]): WebSocket sessions of the same gateway, the console, the widget."""
        self.stopped = asyncio.Event()
        self.failed = asyncio.Event()
        """Set when the write-ahead log failed: `run` drains and exits with EXIT_LOG_FAILED."""
        self.started = time.time()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen and serve; on `sock`, a listening socket systemd passed (socket activation), if given."""
        self.side.log.start()
        self.data_keys.start()
        desk = self.side.desk
        await start_desk(desk, self.config)
        if self.webhooks is not None:
            await self.webhooks.start()
        self._tasks = [
            self.loop.create_task(tick_forever(desk)),
            self.loop.create_task(process.sweep_forever(self.config, self._sweep)),
            self.loop.create_task(process.publish_forever(self.gateway.publish_counters)),
            self.loop.create_task(self.orders.poll_forever()),
            self.loop.create_task(purge_forever(self.guard)),
            self.loop.create_task(audit.anchor_forever(self.store, self.config.audit.anchor_interval_s)),
        ]
        self.audit.record("kefu", Action.SERVER_START, details={"pid": os.getpid(), "workers": 0})
        await self.operator.start()
        if self.config.api.enabled:
            ctx = ApiContext(self.config, self.side.core, desk, self.store, self.keyring.apps, self.audit)
            ctx.metrics = self.metrics
            if self.webhooks is not None:
                ctx.extras[WEBHOOKS_KEY] = self.webhooks  # /v1/webhooks changes reach it at once
            self.api = ApiServer(ctx)
            await self.api.start()
        s = self.config.server
        factory = self.gateway.protocol_factory
        if sock is not None:
            self.listener = await self.loop.create_server(factory, sock=sock, backlog=LISTEN_BACKLOG)
        else:
            self.listener = await self.loop.create_server(
                factory, s.host, s.port, backlog=LISTEN_BACKLOG, reuse_address=True
            )
        host, port = self.listener.sockets[0].getsockname()[:2]
        if self.config.web.enabled:
            api = self.api
            self.web = WebPort(WebContext(self.config, self.gateway, self.keyring.pins, store=self.store,
                                          metrics=self.metrics,
                                          api_address=lambda: api.address if api is not None else None))  # fmt: skip
            await self.web.start(bind_web(self.config.web.host, self.config.web.port, reuse_port=False))
            announce_web(self.web.host, self.web.port)
            if self.api is not None:
                self.api.ctx.web_port = self.web.port
        logmod.event("server.listening", host=host, port=port, inherited=sock is not None, workers=0)
        print(f"kefu: listening on {host}:{port}", flush=True)

    async def stop(self) -> None:
        """Graceful drain: GOAWAY, stop accepting, finish the writes, close; bounded by drain_timeout_s."""
        if self.stopped.is_set():
            return
        deadline = self.config.server.drain_timeout_s
        logmod.event("server.draining", connections=len(self.gateway.sessions))
        self.side.core.draining = True
        self.gateway.goaway_all()
        if self.listener is not None:
            self.listener.close()
        self.operator.close()
        if self.api is not None:
            await self.api.stop()  # its requests in progress finish first: their SENDs still reach the log
        for task in self._tasks:
            task.cancel()
        await self.loop.run_in_executor(None, self.data_keys.stop)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.side.log.close(), timeout=deadline * 0.8)
        if self.webhooks is not None:
            await self.webhooks.close()  # after the last commits: their events queued, the cursors written
        try:
            await asyncio.wait_for(self.side.desk.aclose(), timeout=max(0.1, deadline * 0.1))
        except Exception as exc:  # the service workers must not turn a clean drain into a failed exit
            logmod.error("service.close_failed", reason=repr(exc))
        self.gateway.close_all()
        await asyncio.sleep(0.05)
        if self.web is not None:
            await self.web.stop()
        stopped = audit.Draft.of("kefu", Action.SERVER_STOP, details={"pid": os.getpid()})
        await self.loop.run_in_executor(None, lambda: self.audit.close(last=stopped))
        audit.log_anchor(self.store)
        self.store.close()
        self.guard.close()
        self.data_dir_lock.release()  # after the store is closed
        logmod.event("server.stopped")
        self.stopped.set()

    def _log_failed(self, exc: BaseException) -> None:
        logmod.error("storage.log_failed", reason=repr(exc), exit_status=EXIT_LOG_FAILED)
        self.failed.set()

    async def _sweep(self) -> None:
        """One retention pass in a worker thread (it archives, fsyncs and deletes in bounded batches)."""
        await process.sweep(self.loop, self.config, self.store, maintenance.expire)

    def reload(self, new_config: Any) -> None:
        """SIGHUP: apply the settings that are safe to change while running, the service directory, the data keys;
        re-read app credentials; log what changed and what needs a restart (`kefu.server.runtime.reload`)."""
        details = reload.config_details(self.config, new_config)
        self.config = self.config.reload_from(new_config)
        self.side.core.reconfigure(self.config)
        self.side.log.reconfigure(self.config)
        self.gateway.reconfigure(self.config)
        if self.api is not None:
            self.api.ctx.reconfigure(self.config)
        self.keyring.apps.invalidate()
        self.data_keys.reload_soon()
        reload.reload_service(self.side.desk, self.config, details)
        details["new_keys"] = reload.server_keys(self.config.data_path, self.keyring.pins)
        logmod.set_level(self.config.log.level)
        reload.log_reloaded(details)
        result = Result.FAILED if "service_failed" in details else Result.OK
        self.audit.record("kefu", Action.CONFIG_RELOAD, "", result, details)

    def health(self) -> dict[str, Any]:
        """The /healthz payload."""
        return {
            "status": "draining" if self.gateway.draining else "ok",
            "connections": len(self.gateway.sessions),
            "uptime_s": round(time.time() - self.started, 1),
            "workers": 0,
        }


async def run(config: Any, load: Callable[[], Any] | None = None, spawn: Spawn | None = None) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP calls `load()` for a fresh configuration and applies it. `spawn`: how the
    indexer process starts (default: a subprocess)."""
    loop = asyncio.get_running_loop()
    metrics = Metrics() if config.metrics.enabled else None
    inherited = sdnotify.listen_socket()
    notifier = sdnotify.Notifier.from_environment()
    sdnotify.install_debug_stall(loop)  # test-only; inert unless KEFU_DEBUG_STALL_ON_SIGNAL is set
    server = Server(config, loop, metrics, spawn)

    def on_hup() -> None:
        fresh = reload.load_fresh(load) if load is not None else None
        if fresh is not None:
            server.reload(fresh)
        else:
            server.audit.record("kefu", Action.CONFIG_RELOAD, "", Result.FAILED, {"reason": "invalid configuration"})

    stop = process.install_signals(loop, on_hup if load is not None else None)
    await server.start(sock=inherited)
    exporter = None
    lag_task = None
    if metrics is not None:
        exporter = MetricsServer(metrics, config.metrics.host, config.metrics.port, server.health).start()
        lag_task = loop.create_task(metrics.watch_loop_lag())
        print(f"kefu: metrics on http://{config.metrics.host}:{exporter.port}/metrics", flush=True)
    collector = process.tame_collector(loop)
    notifier.ready(_status(server))
    watchdog = loop.create_task(notifier.run(lambda: _status(server)))
    waits = [loop.create_task(stop.wait()), loop.create_task(server.failed.wait())]
    await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    notifier.stopping(_status(server, "draining"))
    collector.cancel()
    await server.stop()
    watchdog.cancel()
    notifier.close()
    if lag_task is not None:
        lag_task.cancel()
    if exporter is not None:
        exporter.stop()
    if server.failed.is_set():
        raise SystemExit(EXIT_LOG_FAILED)


def _status(server: Server, state: str | None = None) -> str:
    """systemd's STATUS= line: what `systemctl status kefu` shows."""
    health = server.health()
    return f"{state or health['status']}: {health['connections']} connections"
