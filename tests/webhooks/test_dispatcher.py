"""The dispatcher against a real store (LMDB, written through `Store.commit`), a real HTTP receiver on loopback and
the real signing code; the group commit's batches are handed to it as the log would (`on_batch`)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from kefu.protocol.frames import SERVICE_BASE, STAFF_BIT, SYSTEM_SENDER, ContentType
from kefu.server.engine.messages import SendRequest, SendResult, StoredMessage
from kefu.server.metrics import Metrics
from kefu.server.storage.store import Store
from kefu.server.webhooks import subscriptions
from kefu.server.webhooks.dispatcher import Dispatcher, Settings
from kefu.server.webhooks.subscriptions import Subscription

from .receiver import Receiver, per_conversation

pytestmark = pytest.mark.asyncio

FAST = Settings(backoff_initial_s=0.02, backoff_max_s=0.2, cursor_save_s=0.05, timeout_s=2.0, concurrency=4)
TENANTS = {SERVICE_BASE + 1: "bank", SERVICE_BASE + 2: "bank", SERVICE_BASE + 3: "other"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "store", tables=subscriptions.TABLES)
    yield s
    s.close()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


def event_body(kind: str, **fields: object) -> bytes:
    return json.dumps({"event": kind, **fields}).encode()


class Log:
    """Writes like the desk's through `Store.commit`, and hands each batch's results to the dispatchers."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dispatchers: list[Dispatcher] = []

    def write(self, *requests: SendRequest) -> list[SendResult]:
        results = self.store.commit(list(requests), [], now_ms=int(time.time() * 1000))
        assert all(r.status == 0 for r in results), results
        for dispatcher in self.dispatchers:
            dispatcher.on_batch(list(zip(requests, results, strict=True)))
        return results

    def opened(self, conv: int) -> list[SendResult]:
        body = event_body("opened", group="g")
        return self.write(
            SendRequest(SYSTEM_SENDER, os.urandom(16), conv, ContentType.EVENT, body, (), ("v",), system=True)
        )

    def system(self, conv: int, kind: str, **fields: object) -> list[SendResult]:
        members = ("a",) if conv & STAFF_BIT else None
        body = event_body(kind, **fields)
        return self.write(
            SendRequest(
                SYSTEM_SENDER, os.urandom(16), conv, ContentType.EVENT, body, (), ("a",), True, set_members=members
            )
        )

    def text(self, conv: int, text: str) -> list[SendResult]:
        return self.write(SendRequest("v", os.urandom(16), conv, ContentType.TEXT, text.encode(), ()))


def dispatcher(store: Store, log: Log, settings: Settings = FAST, metrics: Metrics | None = None) -> Dispatcher:
    def read(conversation_id: int, seq: int) -> StoredMessage | None:
        found = store.read_range(conversation_id, seq - 1, seq, 1)
        return found[0] if found else None

    loop = asyncio.get_running_loop()
    d = Dispatcher(store, read, TENANTS.get, settings, loop, metrics=metrics)
    log.dispatchers.append(d)
    return d


def subscribe(store: Store, url: str, events: tuple[str, ...] = ("all",), tenant: str = "bank") -> Subscription:
    sub = subscriptions.new_subscription(url, events, tenant, now_ms=int(time.time() * 1000) - 1)
    subscriptions.add(store, sub)
    return sub


async def test_every_kind_arrives_signed_in_order_per_conversation_and_only_its_tenants(
    store: Store, receiver: Receiver
) -> None:
    sub = subscribe(store, receiver.url)
    log = Log(store)
    d = dispatcher(store, log)
    assert d.recover() == 0
    await d.start()
    try:
        one, two, other = SERVICE_BASE + 1, SERVICE_BASE + 2, SERVICE_BASE + 3
        log.opened(one)
        log.opened(two)
        log.opened(other)
        log.text(one, "你好")
        log.system(one, "assigned", agent="a", group="g")
        log.system(one, "queued", group="g")  # not an event of the webhooks
        log.text(two, "hello")
        log.system(one | STAFF_BIT, "draft_approve", draft_seq=3)
        log.system(one | STAFF_BIT, "transferred", group="cards")  # to a group: a transfer the conversation only queues
        log.system(one, "transferred", agent="b", group="cards")
        log.text(other, "not for bank")
        log.system(one, "closed", by="a")
        await receiver.wait_for(lambda r: len(r.accepted()) == 9)
        await asyncio.sleep(0.05)  # nothing more comes
        events = receiver.accepted()
        assert len(events) == len(receiver.deliveries) == 9
        by_conv = per_conversation(events)
        assert set(by_conv) == {one, two}
        assert [e["type"] for e in by_conv[one]] == [
            "conversation.opened", "message.committed", "conversation.assigned", "draft.decided",
            "conversation.transferred", "conversation.transferred", "conversation.ended",
        ]  # fmt: skip
        assert [e["type"] for e in by_conv[two]] == ["conversation.opened", "message.committed"]
        assert by_conv[one][1]["data"] == {"sender": "v", "content_type": 1, "text": "你好"}
        assert by_conv[one][3]["data"] == {"decision": "approve", "draft_seq": 3} and by_conv[one][3]["staff_channel"]
        assert by_conv[one][4]["data"] == {"group": "cards"} and by_conv[one][5]["data"]["agent"] == "b"
        assert all(e["tenant"] == "bank" for e in events)
        for delivery in receiver.deliveries:
            assert delivery.verify(sub.secret) == ["hmac-sm3", "hmac-sha256"]
            assert delivery.headers["Kefu-Webhook-Id"] == delivery.event["id"]
            assert delivery.headers["Kefu-Webhook-Subscription"] == sub.id
        assert d.dead_letters == 0
    finally:
        await d.close()


async def test_a_failing_receiver_gets_retries_with_growing_backoff_then_a_dead_letter(
    store: Store, receiver: Receiver
) -> None:
    receiver.answer = lambda n: 500 if n < 3 else 204
    subscribe(store, receiver.url, ("conversation.opened", "message.committed"))
    metrics = Metrics(process=False)
    log = Log(store)
    settings = Settings(backoff_initial_s=0.05, backoff_max_s=1.0, max_attempts=3, cursor_save_s=0.05)
    d = dispatcher(store, log, settings, metrics)
    d.recover()
    await d.start()
    try:
        conv = SERVICE_BASE + 1
        log.opened(conv)
        log.text(conv, "after the dead letter")
        await receiver.wait_for(lambda r: len(r.accepted()) == 1)
        while d.delivered < 1:
            await asyncio.sleep(0.01)
        first, second, third, fourth = receiver.deliveries
        assert first.event["id"] == second.event["id"] == third.event["id"] != fourth.event["id"]
        assert fourth.event["type"] == "message.committed", "the conversation's next event went once the first died"
        assert d.dead_letters == 1
        # Equal jitter: each wait is at least half its step, and the steps double (0.05 s, then 0.1 s).
        assert second.at - first.at >= 0.025 and third.at - second.at >= 0.05
        text = metrics.exposition().decode()
        assert 'kefu_webhook_dead_letters_total{reason="attempts"} 1.0' in text
        assert 'kefu_webhook_deliveries_total{result="rejected"} 3.0' in text
        assert 'kefu_webhook_deliveries_total{result="ok"} 1.0' in text
    finally:
        await d.close()


async def test_an_event_older_than_max_age_is_given_up_after_one_failure(store: Store, receiver: Receiver) -> None:
    receiver.answer = lambda n: 503
    subscribe(store, receiver.url)
    metrics = Metrics(process=False)
    log = Log(store)
    d = dispatcher(store, log, Settings(max_age_s=0.0, backoff_initial_s=0.01, cursor_save_s=0.05), metrics)
    d.recover()
    await d.start()
    try:
        log.opened(SERVICE_BASE + 1)
        log.text(SERVICE_BASE + 1, "x")
        await receiver.wait_for(lambda r: len(r.deliveries) == 2)
        await asyncio.sleep(0.05)
        assert len(receiver.deliveries) == 2 and d.dead_letters == 2
        assert 'kefu_webhook_dead_letters_total{reason="age"} 2.0' in metrics.exposition().decode()
    finally:
        await d.close()


async def test_a_restart_delivers_what_was_not_handled_and_not_what_was(store: Store, receiver: Receiver) -> None:
    subscribe(store, receiver.url)
    log = Log(store)
    conv = SERVICE_BASE + 1
    first = dispatcher(store, log)
    first.recover()
    await first.start()
    log.opened(conv)
    log.text(conv, "one")
    await receiver.wait_for(lambda r: len(r.accepted()) == 2)
    while first.delivered < 2:  # the answer to the second reached the dispatcher (else it is in flight: sent again)
        await asyncio.sleep(0.01)
    await first.close()  # writes its cursor
    log.dispatchers.clear()
    # Stored while no dispatcher ran (a crash between the commit and the delivery): found in the durable log.
    log.text(conv, "two")
    log.opened(SERVICE_BASE + 2)
    log.system(conv, "closed", by="v")
    second = dispatcher(store, log)
    assert second.recover() == 3
    await second.start()
    try:
        await receiver.wait_for(lambda r: len(r.accepted()) == 5)
        await asyncio.sleep(0.05)
        assert len(receiver.deliveries) == 5, "what the first delivered is not delivered again"
        texts = [e["data"].get("text") for e in per_conversation(receiver.accepted())[conv]]
        assert texts == [None, "one", "two", None]
    finally:
        await second.close()


async def test_a_subscription_added_while_stopped_starts_from_its_creation(store: Store, receiver: Receiver) -> None:
    log = Log(store)
    log.opened(SERVICE_BASE + 1)  # before the subscription: not for it
    time.sleep(0.002)
    subscribe(store, receiver.url)
    log.text(SERVICE_BASE + 1, "after")
    d = dispatcher(store, log)
    assert d.recover() == 1
    await d.start()
    try:
        await receiver.wait_for(lambda r: len(r.accepted()) == 1)
        assert receiver.accepted()[0]["data"]["text"] == "after"
    finally:
        await d.close()


async def test_redirects_are_not_followed(store: Store, receiver: Receiver) -> None:
    elsewhere = await Receiver().start()
    try:
        receiver.redirect_to = elsewhere.url
        subscribe(store, receiver.url)
        metrics = Metrics(process=False)
        log = Log(store)
        d = dispatcher(store, log, Settings(max_attempts=1, cursor_save_s=0.05), metrics)
        d.recover()
        await d.start()
        try:
            log.opened(SERVICE_BASE + 1)
            await receiver.wait_for(lambda r: len(r.deliveries) == 1)
            await asyncio.sleep(0.1)
            assert elsewhere.deliveries == [] and d.dead_letters == 1
            assert 'kefu_webhook_deliveries_total{result="rejected"} 1.0' in metrics.exposition().decode()
        finally:
            await d.close()
    finally:
        await elsewhere.stop()


async def test_subscriptions_come_and_go_without_a_restart(store: Store, receiver: Receiver) -> None:
    log = Log(store)
    d = dispatcher(store, log)
    d.recover()
    await d.start()
    try:
        sub = subscribe(store, receiver.url)
        log.opened(SERVICE_BASE + 1)  # after the subscription was made, before the server read it: caught up
        d.reload()
        log.text(SERVICE_BASE + 1, "live")
        await receiver.wait_for(lambda r: len(r.accepted()) == 2)
        assert [e["type"] for e in receiver.accepted()] == ["conversation.opened", "message.committed"]
        assert subscriptions.remove(store, sub.id)
        d.reload()
        log.opened(SERVICE_BASE + 2)
        await asyncio.sleep(0.1)
        assert len(receiver.deliveries) == 2 and d.feeds == {}
        assert subscriptions.load_cursors(store) == {}, "the cursor went with its subscription"
    finally:
        await d.close()


async def test_a_full_backlog_dead_letters_new_events(store: Store, receiver: Receiver) -> None:
    receiver.answer = lambda n: 500
    subscribe(store, receiver.url)
    log = Log(store)
    d = dispatcher(store, log, Settings(max_backlog=2, backoff_initial_s=10.0, cursor_save_s=0.05))
    d.recover()
    await d.start()
    try:
        log.opened(SERVICE_BASE + 1)
        log.text(SERVICE_BASE + 1, "queued")
        log.text(SERVICE_BASE + 1, "no room")
        assert d.dead_letters == 1 and d.status()[next(iter(d.feeds))]["backlog"] == 2
    finally:
        await d.close()


async def test_a_hanging_receiver_times_out_and_a_gone_one_is_an_error(store: Store, receiver: Receiver) -> None:
    receiver.delay_s = 1.0  # ten times the timeout
    subscribe(store, receiver.url)
    gone = subscribe(store, "http://127.0.0.1:9/nobody-listens")  # the discard port: nothing listens on loopback
    metrics = Metrics(process=False)
    log = Log(store)
    d = dispatcher(store, log, Settings(timeout_s=0.1, max_attempts=2, backoff_initial_s=0.01, cursor_save_s=0.05),
                   metrics)  # fmt: skip
    d.recover()
    await d.start()
    try:
        log.opened(SERVICE_BASE + 1)
        async with asyncio.timeout(10):
            while d.dead_letters < 2:
                await asyncio.sleep(0.02)
        text = metrics.exposition().decode()
        assert 'kefu_webhook_deliveries_total{result="timeout"} 2.0' in text
        assert 'kefu_webhook_deliveries_total{result="error"} 2.0' in text
        assert d.feeds[gone.id].backlog == 0
    finally:
        await d.close()
