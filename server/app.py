"""Wiring and lifecycle of one server process: `kefu serve` ends up in `serve(config)`.

Start: uvloop, the store (recovery is O(1)), keys and apps, the group committer, the hub, the listening
socket, the metrics endpoint. SIGTERM/SIGINT: GOAWAY to every client, stop accepting, finish the commits in
flight, close, exit — bounded by [server] drain_timeout_s. SIGHUP: reload the reloadable settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kefu.protocol.frames import FrameTally
from kefu.protocol.handshake import ServerConfig
from kefu.protocol.tickets import TicketGuard

from . import keys as keymod
from . import log as logmod
from . import sdnotify
from .datadir import DataDirBusy, lock_data_dir
from .gateway import Session
from .hub import Hub
from .metrics import Metrics, MetricsServer
from .service.setup import ServiceSetupError, build_desk, reload_desk, start_desk, tick_forever
from .store import GroupCommitter, Store

GC_FREEZE_INTERVAL_S = 1.0
"""Every second the objects that survived (sessions, streams, caches) move to the collector's permanent generation.
With 10,000 connections, full collections over them stalled the loop: p99 delivery latency was 174 ms at 5,000
msg/s, and 20 ms with the collector off (bench/RESULTS.md). Sessions are freed by reference counting (uvloop drops
the transport's protocol on close, so there is no cycle to need the collector); cyclic garbage alive at a freeze
is kept, which `gc.collect(1)` just before keeps small. That collection walks every object allocated since the
previous freeze and still alive, with the loop stopped: every 10 s it took 37-57 ms after 10,000 connections were
set up (their handshakes' survivors). Every second, and with the protocol core no longer making a fresh list per
message, it measured 0.4 ms (median) and 3.6 ms at worst over a whole chat run, set-up included."""

GC_THRESHOLD_0 = 20_000
"""Young collections every 20,000 allocations instead of 700: a message makes dozens of short-lived objects."""

LISTEN_BACKLOG = 4096
"""Accept queue depth: a reconnect storm of thousands of clients must not see refused SYNs (the kernel caps it
at net.core.somaxconn; the sysctl drop-in raises that)."""


class Server:
    """One running server: everything `serve` starts, and how to stop it."""

    def __init__(self, config: Any, loop: asyncio.AbstractEventLoop, log: Any, metrics: Any) -> None:
        self.config = config
        self.loop = loop
        self.log = log
        self.metrics = metrics
        data_dir = Path(config.server.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        # --- ops: one server per data directory (server/datadir.py); `kefu restore` takes the same lock -----
        self.data_dir_lock = lock_data_dir(data_dir)
        # ---
        storage = config.storage
        self.store = Store(
            config.store_path,
            map_size=storage.map_size_mb << 20,
            max_map_size=storage.max_map_size_gb << 30,
            idempotency_window_s=storage.idempotency_window_s,
        )
        self.keyring = keymod.load_or_create(data_dir, self.store)
        pins = config.keys_path / "pins.txt"
        pins.write_text("".join(f"{pin}\n" for pin in self.keyring.pins), encoding="utf-8")  # public: what clients pin
        self.committer = GroupCommitter(
            self.store,
            loop,
            window_s=config.delivery.commit_window_ms / 1000,
            max_batch=config.delivery.max_batch,
            nice=config.delivery.commit_thread_nice,
            observer=metrics.observe_commit if metrics is not None else None,
        )
        self.server_config = ServerConfig(
            keys=self.keyring.signing_keys(),
            apps=self.keyring.apps,
            suites=config.server.suite_ids(),
            ticket_keys=self.keyring.ticket_keys,
            ticket_guard=TicketGuard(),
            ticket_lifetime_s=config.server.ticket_lifetime_s,
            min_keepalive_ms=int(config.server.keepalive_min_s * 1000),
            max_keepalive_ms=int(config.server.keepalive_max_s * 1000),
            handshake_timeout_s=config.server.handshake_timeout_s,
            frame_tally=FrameTally() if metrics is not None else None,
        )
        self.hub = Hub(
            config=config,
            server_config=self.server_config,
            store=self.store,
            committer=self.committer,
            loop=loop,
            metrics=metrics,
            log=log,
        )
        self.committer.on_committed = self.hub.cursors.committed
        self.desk = build_desk(self.hub, self.keyring.apps, config)
        self.hub.desk = self.desk
        self.listener: asyncio.AbstractServer | None = None
        self.stopped = asyncio.Event()
        self.started = time.time()

    async def start(self, sock: socket.socket | None = None) -> None:
        """Listen and serve; on `sock`, a listening socket systemd passed (socket activation), if given."""
        self.committer.start()
        await start_desk(self.desk, self.config)
        self._desk_tick = self.loop.create_task(tick_forever(self.desk))
        s = self.config.server
        # --- ops: socket activation (server/sdnotify.py listen_socket); [server] host/port then do not apply ---
        if sock is not None:
            self.listener = await self.loop.create_server(lambda: Session(self.hub), sock=sock, backlog=LISTEN_BACKLOG)
        else:  # ---
            self.listener = await self.loop.create_server(
                lambda: Session(self.hub), s.host, s.port, backlog=LISTEN_BACKLOG, reuse_address=True
            )
        host, port = self.listener.sockets[0].getsockname()[:2]
        self.log("server.listening", host=host, port=port, inherited=sock is not None)
        print(f"kefu: listening on {host}:{port}", flush=True)

    async def stop(self) -> None:
        """Graceful drain: GOAWAY, stop accepting, finish commits, close; bounded by drain_timeout_s."""
        if self.stopped.is_set():
            return
        deadline = self.config.server.drain_timeout_s
        self.log("server.draining", connections=len(self.hub.sessions))
        self.hub.goaway_all()
        if self.listener is not None:
            self.listener.close()
        self._desk_tick.cancel()
        self.hub.save_cursors(final=True)  # before the committer stops taking work
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.committer.stop(), timeout=deadline * 0.8)
        try:
            await asyncio.wait_for(self.desk.aclose(), timeout=max(0.1, deadline * 0.1))
        except Exception as exc:  # the service workers must not turn a clean drain into a failed exit
            logmod.error("service.close_failed", reason=repr(exc))
        self.hub.close_all()
        await asyncio.sleep(0.05)
        self.store.close()
        self.data_dir_lock.release()  # ops: after the store is closed (server/datadir.py)
        self.log("server.stopped")
        self.stopped.set()

    async def freeze_forever(self, interval_s: float = GC_FREEZE_INTERVAL_S) -> None:
        """Keep long-lived objects out of the cyclic collector's full scans (see GC_FREEZE_INTERVAL_S)."""
        while True:
            await asyncio.sleep(interval_s)
            gc.collect(1)  # young cyclic garbage first, so that little of it is frozen with the survivors
            gc.freeze()

    async def publish_forever(self, interval_s: float = 1.0) -> None:
        """Hand the hub's plain counters to Prometheus, and an idle server's due cursors to the store, once a
        second."""
        while True:
            await asyncio.sleep(interval_s)
            self.hub.publish_counters()
            self.hub.save_cursors()

    async def sweep_forever(self) -> None:
        """Retention ([storage] retention_*) and the idempotency purge, every sweep_interval_s, off the loop."""
        while True:
            await asyncio.sleep(self.config.storage.sweep_interval_s)
            await self.sweep()

    async def sweep(self) -> None:
        """One retention pass in a worker thread (it archives, fsyncs and deletes in bounded batches)."""
        storage = self.config.storage
        max_age = storage.retention_max_age_days * 86400 or None
        max_bytes = int(storage.retention_max_gb * (1 << 30)) or None
        try:
            stats = await self.loop.run_in_executor(
                None,
                lambda: self.store.expire(
                    now_ms=int(time.time() * 1000),
                    max_age_s=max_age,
                    max_bytes=max_bytes,
                    archive_dir=self.config.archive_path,
                ),
            )
        except Exception as exc:  # a failed sweep is retried next interval; serving goes on
            logmod.error("storage.sweep_failed", reason=repr(exc))
            return
        self.log(
            "storage.swept",
            expired=stats.messages_expired,
            archives=len(stats.archives),
            idempotency_purged=stats.idempotency_purged,
        )

    def reload(self, new_config: Any) -> None:
        """SIGHUP: apply the settings that are safe to change while running; re-read app credentials."""
        self.config = self.config.reload_from(new_config)
        self.hub.reconfigure(self.config)
        self.keyring.apps.invalidate()
        try:
            reload_desk(self.desk, self.config)
        except ServiceSetupError as exc:
            logmod.error("service.reload_failed", reason=str(exc))
        logmod.set_level(self.config.log.level)
        self.log("server.reloaded")

    def health(self) -> dict[str, Any]:
        """The /healthz payload."""
        return {
            "status": "draining" if self.hub.draining else "ok",
            "connections": len(self.hub.sessions),
            "uptime_s": round(time.time() - self.started, 1),
        }


async def run(config: Any, reload: Callable[[], Any] | None = None) -> None:
    """Run until SIGTERM/SIGINT; SIGHUP calls `reload()` for a fresh configuration and applies it."""
    loop = asyncio.get_running_loop()
    metrics = Metrics() if config.metrics.enabled else None
    # --- ops: systemd (server/sdnotify.py): an inherited listener, READY/STATUS/WATCHDOG/STOPPING ---------
    inherited = sdnotify.listen_socket()
    notifier = sdnotify.Notifier.from_environment()
    sdnotify.install_debug_stall(loop)  # test-only; inert unless KEFU_DEBUG_STALL_ON_SIGNAL is set
    # ---
    server = Server(config, loop, logmod.event, metrics)
    # Signal handlers go in before the server says it is listening: a SIGTERM or SIGHUP that follows the
    # "listening" line at once must not meet the default action (which kills the process).
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, lambda: _reload(server, reload))
    await server.start(sock=inherited)  # ops: sock=
    exporter = None
    lag_task = None
    if metrics is not None:
        exporter = MetricsServer(metrics, config.metrics.host, config.metrics.port, server.health).start()
        lag_task = loop.create_task(metrics.watch_loop_lag())
        print(f"kefu: metrics on http://{config.metrics.host}:{exporter.port}/metrics", flush=True)
    sweeper = loop.create_task(server.sweep_forever())
    freezer = loop.create_task(server.freeze_forever())
    gc.set_threshold(GC_THRESHOLD_0, *gc.get_threshold()[1:])
    publisher = loop.create_task(server.publish_forever())
    gc.freeze()  # everything allocated at start-up is long-lived: keep the collector off it
    # --- ops: systemd readiness, then status and watchdog pings from this loop until the drain is over ----
    notifier.ready(_status(server))
    watchdog = loop.create_task(notifier.run(lambda: _status(server)))
    # ---
    await stop.wait()
    notifier.stopping(_status(server, "draining"))  # ops
    sweeper.cancel()
    publisher.cancel()
    freezer.cancel()
    await server.stop()
    watchdog.cancel()  # ops
    notifier.close()  # ops
    if lag_task is not None:
        lag_task.cancel()
    if exporter is not None:
        exporter.stop()


def _status(server: Server, state: str | None = None) -> str:
    """systemd's STATUS= line (ops): what `systemctl status kefu` shows."""
    health = server.health()
    return f"{state or health['status']}: {health['connections']} connections"


def _reload(server: Server, reload: Callable[[], Any]) -> None:
    try:
        server.reload(reload())
    except Exception as exc:
        logmod.error("server.reload_failed", reason=str(exc))


def serve(config: Any, reload: Callable[[], Any] | None = None) -> int:
    """`kefu serve`: run the server on uvloop until signalled; returns the exit status."""
    try:
        import uvloop  # noqa: PLC0415 - only the server needs it, and it is an optional extra
    except ImportError:
        print("kefu serve needs the server extra: pip install 'kefu[server]'", file=sys.stderr)
        return 2
    # --- ops: refusals that are the operator's to fix, reported as one line, not a traceback ---------------
    try:
        uvloop.run(run(config, reload))
    except (DataDirBusy, sdnotify.ActivationError, ServiceSetupError) as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        return 1
    # ---
    return 0


__all__ = ["Server", "run", "serve"]
