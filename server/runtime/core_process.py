"""The core worker process: the store and its write path (one fsync stream for the whole host), the delivery core
and the customer-service desk, serving every gateway over its link. Started by the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable
from typing import Any

from .. import log as logmod
from .. import wiring
from ..api.app import ApiServer
from ..api.context import ApiContext
from ..engine.audit import Action, Result
from ..identity.keys import AppDirectory
from ..link.core_side import GatewayLink
from ..metrics import Metrics
from ..service.setup import start_desk, tick_forever
from ..storage import audit, maintenance
from ..storage.indexer import Spawn
from ..webhooks.api import EXTRAS_KEY as WEBHOOKS_KEY
from ..webhooks.setup import build_webhooks
from . import process, reload, sdnotify
from .control import Control
from .datakeys import DataKeys
from .single import EXIT_LOG_FAILED

__all__ = ["run_core"]


class CoreProcess:
    """The core worker: the core side of kefu and one link per gateway."""

    def __init__(
        self,
        config: Any,
        load: Callable[[], Any],
        loop: asyncio.AbstractEventLoop,
        *,
        web_port: int = -1,
        spawn: Spawn | None = None,
    ) -> None:
        """`spawn`: how the indexer process starts (default: a subprocess)."""
        self.config = config
        self.web_port = web_port
        """The web port the gateways serve (-1: none): the API's default CORS origin."""
        self._load = load
        self.loop = loop
        self.metrics = Metrics() if config.metrics.enabled else None
        self.store = wiring.open_store(config, check_at_open="tops")  # the supervisor's open checked every page
        self.apps = AppDirectory(self.store)
        self.side = wiring.build_core(
            config, loop, self.store, self.apps, self.metrics, on_fatal=self._log_failed, spawn=spawn
        )
        self.data_keys = DataKeys(config, self.store, self.side.log, metrics=self.metrics)
        self.audit = audit.AuditWriter(self.store, name="core")
        self.side.desk.audit = self.audit
        self.webhooks = build_webhooks(config, self.side, self.metrics, loop)
        """Webhook deliveries ([webhooks], spec section 18): None when off."""
        self.exit_status = 0
        self.links: dict[int, GatewayLink] = {}
        self.control: Control | None = None
        self.api: ApiServer | None = None
        """The HTTP integration API ([api]), beside the desk."""
        self.done = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, control: socket.socket, links: list[tuple[int, socket.socket]]) -> None:
        """Start the log and the desk, take every gateway's link, and tell the supervisor."""
        self.side.log.start()
        self.data_keys.start()
        await start_desk(self.side.desk, self.config)
        if self.webhooks is not None:
            await self.webhooks.start()
        if self.config.api.enabled:
            ctx = ApiContext(self.config, self.side.core, self.side.desk, self.store, self.apps, self.audit)
            if self.webhooks is not None:
                ctx.extras[WEBHOOKS_KEY] = self.webhooks  # /v1/webhooks changes reach it at once
            ctx.web_port = max(0, self.web_port)
            ctx.metrics = self.metrics
            self.api = ApiServer(ctx, reuse_port=True)  # the supervisor holds the port (SO_REUSEPORT)
            await self.api.start()
        self.control = Control(control, self.loop, self._on_control, self._supervisor_gone)
        for index, sock in links:
            await self._attach(index, sock)
        self._tasks = [
            self.loop.create_task(tick_forever(self.side.desk)),
            self.loop.create_task(process.sweep_forever(self.config, self._sweep)),
            self.loop.create_task(audit.anchor_forever(self.store, self.config.audit.anchor_interval_s)),
        ]
        if self.metrics is not None:
            self._tasks.append(self.loop.create_task(self.metrics.watch_loop_lag()))
        self.audit.record("kefu", Action.SERVER_START, details={"pid": os.getpid(), "gateways": sorted(self.links)})
        self.control.send({"op": "ready", "role": "core", "pid": os.getpid()})

    async def _attach(self, index: int, sock: socket.socket) -> None:
        old = self.links.pop(index, None)
        if old is not None:
            old.channel.close("replaced by a new link")
        link = GatewayLink(self.side.core, self.loop, self._link_lost)
        link.gateway = index
        self.links[index] = link
        await self.loop.create_unix_connection(lambda: link.channel, sock=sock)

    def _log_failed(self, exc: BaseException) -> None:
        """The write-ahead log failed: stop and exit with EXIT_LOG_FAILED; the supervisor starts a new core, whose
        start-up replays the log, and the gateways send it what went unanswered."""
        logmod.error("storage.log_failed", reason=repr(exc), exit_status=EXIT_LOG_FAILED)
        self.exit_status = EXIT_LOG_FAILED
        self.loop.create_task(self.stop())

    def _link_lost(self, link: GatewayLink) -> None:
        if self.links.get(link.gateway) is link:
            del self.links[link.gateway]

    async def _sweep(self) -> None:
        await process.sweep(self.loop, self.config, self.store, maintenance.expire)

    # --- the supervisor's orders ------------------------------------------------------------------------------

    def _on_control(self, message: dict[str, Any], fds: list[int]) -> None:
        op = message.get("op")
        if op == "link" and fds:
            self.loop.create_task(self._attach(int(message["gateway"]), socket.socket(fileno=fds[0])))
            return
        if op == "ping":
            self._reply({"op": "pong", "n": message.get("n"), "health": self.health()})
        elif op == "metrics":
            text = self.metrics.exposition().decode() if self.metrics is not None else ""
            self._reply({"op": "metrics", "n": message.get("n"), "text": text})
        elif op == "reload":
            self._reload()
        elif op == "stop":
            self.loop.create_task(self.stop())
        for fd in fds:
            os.close(fd)

    def _reply(self, message: dict[str, Any]) -> None:
        if self.control is not None:
            self.control.send(message)

    def _supervisor_gone(self) -> None:
        if not self.done.is_set():
            logmod.warning("core.supervisor_gone")
            self.loop.create_task(self.stop())

    def _reload(self) -> None:
        config = process.reloaded(self.config, self._load)
        if config is None:
            self.audit.record("kefu", Action.CONFIG_RELOAD, "", Result.FAILED, {"reason": "invalid configuration"})
            return
        details = audit.changes(self.config.diff(config))
        self.config = config
        self.side.core.reconfigure(self.config)
        self.side.log.reconfigure(self.config)
        if self.api is not None:
            self.api.ctx.reconfigure(self.config)
        self.apps.invalidate()
        self.data_keys.reload_soon()
        reload.reload_service(self.side.desk, self.config, details)
        logmod.set_level(self.config.log.level)
        result = Result.FAILED if "service_failed" in details else Result.OK
        self.audit.record("kefu", Action.CONFIG_RELOAD, "", result, details)

    def health(self) -> dict[str, Any]:
        """This worker's part of /healthz."""
        return {
            "connections": self.side.core.connections,
            "gateways": sorted(self.links),
            "commit_queue": self.side.log.queue_depth,
        }

    async def stop(self) -> None:
        """Finish every write submitted, close the desk and the store, end the process's main coroutine."""
        if self.done.is_set():
            return
        self.side.core.draining = True
        if self.api is not None:
            await self.api.stop()  # its requests in progress finish first: their SENDs still reach the log
        for task in self._tasks:
            task.cancel()
        await self.loop.run_in_executor(None, self.data_keys.stop)
        deadline = self.config.server.drain_timeout_s
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.side.log.close(), timeout=max(1.0, deadline * 0.8))
        if self.webhooks is not None:
            await self.webhooks.close()  # after the last commits: their events queued, the cursors written
        for link in list(self.links.values()):
            link.channel.flush()
        try:
            await asyncio.wait_for(self.side.desk.aclose(), timeout=max(0.1, deadline * 0.1))
        except Exception as exc:  # the service workers must not turn a clean stop into a failed exit
            logmod.error("service.close_failed", reason=repr(exc))
        details = {"pid": os.getpid(), "exit_status": self.exit_status}
        stopped = audit.Draft.of("kefu", Action.SERVER_STOP, details=details)
        await self.loop.run_in_executor(None, lambda: self.audit.close(last=stopped))
        audit.log_anchor(self.store)
        self.done.set()

    def close(self) -> None:
        """After `done`: close the links and the store."""
        for link in list(self.links.values()):
            link.channel.close("core stopping")
        self.store.close()
        if self.control is not None:
            self.control.send({"op": "stopped"})
            self.control.close()


async def run_core(
    config: Any,
    load: Callable[[], Any],
    *,
    control: int,
    links: list[tuple[int, int]],
    web_port: int = -1,
    spawn: Spawn | None = None,
) -> int:
    """Run the core until the supervisor says stop (or goes away); its exit status. `web_port`: the port the
    gateways serve the web port on (-1: none); `spawn`: how the indexer process starts."""
    loop = asyncio.get_running_loop()
    worker = CoreProcess(config, load, loop, web_port=web_port, spawn=spawn)
    sdnotify.install_debug_stall(loop)  # test-only; inert unless KEFU_DEBUG_STALL_ON_SIGNAL is set
    await worker.start(socket.socket(fileno=control), [(i, socket.socket(fileno=fd)) for i, fd in links])
    collector = process.tame_collector(loop)
    await worker.done.wait()
    collector.cancel()
    await asyncio.sleep(0.05)
    worker.close()
    return worker.exit_status
