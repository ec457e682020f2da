"""Chores every kefu process shares: signals, the garbage collector's schedule, periodic work."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .. import log as logmod

__all__ = [
    "GC_FREEZE_INTERVAL_S",
    "GC_THRESHOLD_0",
    "install_signals",
    "publish_forever",
    "reloaded",
    "sweep",
    "sweep_forever",
    "tame_collector",
    "usable_cores",
    "worker_count",
]

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


def install_signals(loop: asyncio.AbstractEventLoop, reload: Callable[[], None] | None) -> asyncio.Event:
    """SIGTERM/SIGINT set the returned event; SIGHUP calls `reload` (its failure is logged, never fatal).

    Installed before the process says it is listening: a SIGTERM or SIGHUP that follows the "listening" line at once
    must not meet the default action (which kills the process)."""
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    if reload is not None:

        def on_hup() -> None:
            try:
                reload()
            except Exception as exc:
                logmod.error("server.reload_failed", reason=str(exc))

        loop.add_signal_handler(signal.SIGHUP, on_hup)
    return stop


def reloaded(current: Any, load: Callable[[], Any]) -> Any | None:
    """SIGHUP in a worker process: `current` with the reloadable settings of a freshly loaded configuration, or None
    (logged) if it does not load. Each change is not logged here (the supervisor logs them once): one
    `worker.reloaded` line names the settings this process applied."""
    try:
        fresh = load()
        applied, _ = current.reload_changes(fresh)
        config = current.reload_from(fresh, quiet=True)
    except Exception as exc:
        logmod.error("server.reload_failed", reason=str(exc))
        return None
    logmod.event("worker.reloaded", applied=",".join(c.name for c in applied) or "none")
    return config


def tame_collector(loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
    """Fewer young collections, and long-lived objects frozen every second (see GC_FREEZE_INTERVAL_S). Call once
    start-up is done: everything allocated so far is long-lived."""
    gc.set_threshold(GC_THRESHOLD_0, *gc.get_threshold()[1:])
    gc.freeze()
    return loop.create_task(_freeze_forever())


async def _freeze_forever(interval_s: float = GC_FREEZE_INTERVAL_S) -> None:
    while True:
        await asyncio.sleep(interval_s)
        gc.collect(1)  # young cyclic garbage first, so that little of it is frozen with the survivors
        gc.freeze()


async def publish_forever(publish: Callable[[], None], interval_s: float = 1.0) -> None:
    """Hand plain counters to Prometheus once a second."""
    while True:
        await asyncio.sleep(interval_s)
        publish()


async def sweep_forever(config: Any, sweep_once: Callable[[], Awaitable[None]]) -> None:
    """Retention ([storage] retention_*) and the idempotency purge, every sweep_interval_s."""
    while True:
        await asyncio.sleep(config.storage.sweep_interval_s)
        await sweep_once()


async def sweep(loop: asyncio.AbstractEventLoop, config: Any, store: Any, expire: Callable[..., Any]) -> None:
    """One retention pass in a worker thread (it archives, fsyncs and deletes in bounded batches)."""
    storage = config.storage
    max_age = storage.retention_max_age_days * 86400 or None
    max_bytes = int(storage.retention_max_gb * (1 << 30)) or None
    try:
        stats = await loop.run_in_executor(
            None,
            lambda: expire(
                store,
                now_ms=int(time.time() * 1000),
                max_age_s=max_age,
                max_bytes=max_bytes,
                archive_dir=Path(config.archive_path),
            ),
        )
    except Exception as exc:  # a failed sweep is retried next interval; serving goes on
        logmod.error("storage.sweep_failed", reason=repr(exc))
        return
    logmod.event(
        "storage.swept",
        expired=stats.messages_expired,
        archives=len(stats.archives),
        idempotency_purged=stats.idempotency_purged,
    )


def usable_cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def worker_count(config: Any) -> int:
    """[server] workers, with -1 resolved to one gateway per usable core."""
    workers: int = config.server.workers
    return usable_cores() if workers < 0 else workers
