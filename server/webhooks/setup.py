"""Building the webhook dispatcher in the process that runs the desk (the core process, or the one process of
``workers = 0``): `build_webhooks` before the log starts, then `Dispatcher.start()` and, at the stop, after the log's
last commits, `Dispatcher.close()`."""

from __future__ import annotations

import asyncio
from typing import Any

from kefu.protocol.frames import SERVICE_BASE

from .. import log as logmod
from ..engine.messages import StoredMessage
from ..storage.records import Write
from .dispatcher import Dispatcher, Settings, attach, stored_since

__all__ = ["build_webhooks"]


def build_webhooks(config: Any, side: Any, metrics: Any, loop: asyncio.AbstractEventLoop) -> Dispatcher | None:
    """The dispatcher over `side` (a `kefu.server.wiring.CoreSide`: its store, log and desk), its subscriptions'
    unhandled events queued from the store (`Dispatcher.recover`) and the log's batches watched; None with
    [webhooks] enabled = false. Call before the log takes writes."""
    if not config.webhooks.enabled:
        return None
    log, desk = side.log, side.desk

    def read(conversation_id: int, seq: int) -> StoredMessage | None:
        found = log.read_range(conversation_id, seq - 1, seq, 1)
        return found[0] if found and found[0].seq == seq else None

    def tenant_of(conversation_id: int) -> str | None:
        conv = desk.find(conversation_id)
        return None if conv is None else str(conv.tenant)

    def scan(since_ms: int) -> list[tuple[int, int, int]]:
        """The durable messages from `since_ms` on: indexed, and in the log's overlay (not indexed yet)."""
        view = log.view

        def merged() -> list[tuple[int, int, int]]:
            found = set(stored_since(side.store, since_ms))
            for batch in view.overlay.unindexed(1 << 62):
                for _, record in batch.records:
                    if (
                        isinstance(record, Write) and record.message_raw and record.timestamp_ms >= since_ms
                        and record.conversation_id >= SERVICE_BASE
                    ):  # fmt: skip
                        found.add((record.timestamp_ms, record.conversation_id, record.last_seq))
            return sorted(found)

        return list(view.consistent(merged))

    dispatcher = Dispatcher(side.store, read, tenant_of, Settings.of(config), loop, metrics=metrics, scan=scan)
    try:
        dispatcher.recover()
    except Exception as exc:  # a damaged page of the index (reported by the store): webhooks must not stop a start
        queued = sum(feed.backlog for feed in dispatcher.feeds.values())
        logmod.error("webhooks.recover_failed", reason=repr(exc), queued=queued)
    attach(log, dispatcher.on_batch)
    return dispatcher
