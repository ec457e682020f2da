"""The one place where kefu's concrete classes are put together.

Every other module depends on interfaces (`kefu.server.engine.ports`) or on the layer below it; this module knows them
all and builds:

- the **core side** (`build_core`): the store with the desk's tables registered, the group committer, the message log,
  the delivery core and the customer-service desk as its conversation policy;
- a **gateway** (`build_gateway`): the protocol's server configuration (keys, apps, tickets) and the connections'
  side of the engine;
- their connection in one process (`connect_local`), where the gateway calls the core directly. With worker
  processes, `kefu.server.runtime` connects them over a link instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kefu.protocol.frames import FrameTally
from kefu.protocol.handshake import ServerConfig
from kefu.protocol.tickets import TicketGuard

from .edge.admission import per_gateway
from .edge.gateway import Gateway
from .engine.core import Core
from .engine.local import LocalCore
from .identity.datakeys import load_data_keys, sealer_of
from .identity.keys import AppDirectory, Keyring
from .identity.staff import TABLES as IDENTITY_TABLES
from .runtime.process import usable_cores, worker_count
from .service.desk import TABLES as DESK_TABLES
from .service.desk import Desk
from .service.setup import build_desk
from .storage import deployment, salvage
from .storage.conversations import Conversations, LogSettings, open_conversations
from .storage.datadir import migrate_store_dir
from .storage.indexer import Spawn
from .storage.sealing import Sealer
from .storage.store import Store
from .webhooks.subscriptions import TABLES as WEBHOOK_TABLES

__all__ = [
    "CoreSide", "build_core", "build_gateway", "connect_local", "open_store", "server_config", "store_sealer",
]  # fmt: skip


def store_sealer(config: Any, *, readonly: bool = False) -> Sealer | None:
    """The `Sealer` of the data keys in `config`'s data directory (for writing, the first key is made with
    [storage] seal_cipher if there is none; read-only, None then), or None with [storage] seal = false."""
    storage = config.storage
    if not storage.seal:
        return None
    if readonly:
        keys = load_data_keys(config.data_path)
        return Sealer(keys) if keys else None
    return sealer_of(config.data_path, storage.seal_cipher)


def open_store(config: Any, *, readonly: bool = False, check_at_open: str | None = None) -> Store:
    """The message store of `config`'s data directory, with the desk's and the webhooks' tables registered and its
    values sealed with the data keys (`store_sealer`) (a store still in the old place, data_dir/wal, is moved first; a
    read-only open reads it there). An open for writing is checked against the data directory's deployment marker
    (`kefu.server.storage.deployment`: OpenRefused). `check_at_open`: [storage] check_at_open unless given (a
    gateway, started after the supervisor's open checked the whole file, checks the tops only)."""
    storage = config.storage
    path = Path(config.store_path)
    path = migrate_store_dir(path, readonly=readonly)

    def opened() -> Store:
        return Store(
            path,
            map_size=storage.map_size_mb << 20,
            max_map_size=storage.max_map_size_gb << 30,
            idempotency_window_s=storage.idempotency_window_s,
            tables=(*DESK_TABLES, *IDENTITY_TABLES, *WEBHOOK_TABLES),
            readonly=readonly,
            sealer=store_sealer(config, readonly=readonly),
            check_at_open=check_at_open or storage.check_at_open,
        )

    return opened() if readonly else deployment.open_checked(config.data_path, path, opened)


@dataclass(slots=True)
class CoreSide:
    """What runs once per host: the store, its log, the delivery core and the desk."""

    store: Store
    log: Conversations
    core: Core
    desk: Desk


def build_core(
    config: Any,
    loop: asyncio.AbstractEventLoop,
    store: Store,
    apps: AppDirectory,
    metrics: Any = None,
    *,
    on_fatal: Callable[[BaseException], None] | None = None,
    spawn: Spawn | None = None,
) -> CoreSide:
    """The core side over `store` (the desk's directory, rules and plugins loaded: ServiceSetupError if invalid).
    The log's tail is replayed into the store first. `on_fatal(exc)` runs on the loop if the log fails: the process
    must then exit (kefu.server.storage.committer). `spawn` starts the indexer process (default: a subprocess)."""
    delivery, storage = config.delivery, config.storage
    settings = LogSettings(
        window_s=delivery.commit_window_ms / 1000,
        max_batch=delivery.max_batch,
        nice=delivery.commit_thread_nice,
        cursor_delay_s=delivery.cursor_save_delay_ms / 1000,
        segment_bytes=storage.log_segment_mb << 20,
        index_interval_s=storage.index_interval_ms / 1000,
        index_batch_bytes=storage.index_batch_mb << 20,
        max_unindexed_bytes=storage.max_unindexed_mb << 20,
    )
    log = open_conversations(
        store,
        loop,
        settings,
        observer=metrics.observe_commit if metrics is not None else None,
        # kefu_store_written_bytes_total{part} and messages: the metrics' hook, once it exists
        written=getattr(metrics, "observe_store_written", None),
        on_fatal=on_fatal,
        data_dir=config.data_path,
        spawn=spawn,
    )
    if metrics is not None:
        store.damage.on_damaged = metrics.storage_damaged
        store.damage.add_counts(salvage.take_report(store))  # what the check at open lost, counted once
    core = Core(config=config, log=log, loop=loop, metrics=metrics)
    desk = build_desk(core, apps, config)
    core.policy = desk
    return CoreSide(store, log, core, desk)


def server_config(
    config: Any, keyring: Keyring, *, guard: TicketGuard | None = None, metrics: Any = None
) -> ServerConfig:
    """The protocol's server configuration: keys, apps, suites, tickets and timing policy."""
    s = config.server
    return ServerConfig(
        keys=keyring.signing_keys(),
        apps=keyring.apps,
        suites=s.suite_ids(),
        ticket_keys=keyring.ticket_keys,
        ticket_guard=guard if guard is not None else TicketGuard(),
        ticket_lifetime_s=s.ticket_lifetime_s,
        min_keepalive_ms=int(s.keepalive_min_s * 1000),
        max_keepalive_ms=int(s.keepalive_max_s * 1000),
        handshake_timeout_s=s.handshake_timeout_s,
        frame_tally=FrameTally() if metrics is not None else None,
    )


def build_gateway(
    config: Any,
    loop: asyncio.AbstractEventLoop,
    keyring: Keyring,
    *,
    guard: TicketGuard | None = None,
    metrics: Any = None,
    name: str = "gateway",
) -> Gateway:
    """A gateway with the protocol's configuration; attach it to a core before serving."""
    protocol = server_config(config, keyring, guard=guard, metrics=metrics)
    share = per_gateway(1.0, usable_cores(), worker_count(config) or 1)
    return Gateway(
        config=config, server_config=protocol, loop=loop, metrics=metrics, name=name, cores_per_gateway=share
    )


def connect_local(core: Core, gateway: Gateway) -> None:
    """Connect a gateway to a core of the same process."""
    gateway.attach(LocalCore(core, gateway))
