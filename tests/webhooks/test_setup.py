"""The dispatcher as the core process builds it (`build_webhooks`) over a real log: the group commit's batches reach
it, and a subscription picked up while running catches up from what the log holds that is not indexed yet."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from kefu.protocol.frames import SERVICE_BASE, SYSTEM_SENDER, ContentType
from kefu.server.config import Config
from kefu.server.engine.messages import SendRequest, SendResult
from kefu.server.storage.conversations import LogSettings, open_conversations
from kefu.server.storage.store import Store
from kefu.server.webhooks import subscriptions
from kefu.server.webhooks.dispatcher import stored_since
from kefu.server.webhooks.setup import build_webhooks

pytestmark = pytest.mark.asyncio

CONV = SERVICE_BASE + 1


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store", tables=subscriptions.TABLES)
    yield s
    s.close()


async def write(log: object, request: SendRequest) -> SendResult:
    done: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
    log.submit(request, done.set_result)  # type: ignore[attr-defined]
    return await done


async def test_the_log_feeds_the_dispatcher_and_a_new_subscription_catches_up_from_the_overlay(store: Store) -> None:
    log = open_conversations(store, asyncio.get_running_loop(), LogSettings(window_s=0.001, index_interval_s=3600))
    desk = SimpleNamespace(find=lambda conv: SimpleNamespace(tenant="bank") if conv == CONV else None)
    d = build_webhooks(Config(), SimpleNamespace(store=store, log=log, desk=desk), None, asyncio.get_running_loop())
    assert d is not None
    log.start()
    try:
        sub = subscriptions.new_subscription("http://127.0.0.1:9/x", ["all"], "bank", now_ms=int(time.time() * 1000))
        subscriptions.add(store, sub)
        time.sleep(0.002)
        opened = json.dumps({"event": "opened", "group": "g"}).encode()
        await write(log, SendRequest(SYSTEM_SENDER, os.urandom(16), CONV, ContentType.EVENT, opened, (), ("v",), True))
        await write(log, SendRequest("v", os.urandom(16), CONV, ContentType.TEXT, b"hi", ()))
        assert list(stored_since(store, 0)) == [], "not indexed yet: only in the log and its overlay"
        assert [(c, s) for _, c, s in d._scan(sub.created_ms)] == [(CONV, 1), (CONV, 2)]
        d.reload()  # the subscription is read while both wait in the overlay: it catches up
        await write(log, SendRequest("v", os.urandom(16), CONV, ContentType.TEXT, b"live", ()))  # the live feed
        queue = d.feeds[sub.id].queues[CONV]
        assert [(i.seq, i.event is not None) for i in queue] == [(1, False), (2, False), (3, True)]
    finally:
        await d.close()
        await log.close()
