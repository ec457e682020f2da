"""Delivery end to end against the real server: both suites, dedup, offline recipients, retries, order."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kefu.protocol import frames
from kefu.protocol.crypto import Suite

from .conftest import APPS, ServerProcess, add_apps, running_server
from .peer import Peer

pytestmark = pytest.mark.asyncio


@dataclass
class Apps:
    """A test's own apps alice, bob, carol and dave on a server (registered under names no other test uses) and its
    own conversation ids, so that tests sharing the module's server cannot see each other's messages."""

    server: ServerProcess
    ids: dict[str, str]
    """App id by role name ("alice" -> "alice-1f0c...")."""
    base: int
    """Added to every conversation number of the test."""

    def __getitem__(self, name: str) -> str:
        return self.ids[name]

    def conversation(self, number: int) -> int:
        return self.base + number

    async def peer(self, name: str, suite: Suite = Suite.NATIONAL) -> Peer:
        app_id = self.ids[name]
        return await Peer.connect(self.server.port, app_id, self.server.secrets[app_id], self.server.pins, suite=suite)


def own_apps(server: ServerProcess) -> Apps:
    """Register alice, bob, carol and dave under fresh names on the running server (one `kefu app add` process;
    the server finds new apps at once)."""
    tag = os.urandom(4).hex()
    ids = {name: f"{name}-{tag}" for name in APPS}
    server.secrets.update(add_apps(server.data_dir, tuple(ids.values())))
    return Apps(server, ids, int.from_bytes(os.urandom(5), "big") << 16)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module (a start costs seconds); each test brings its own apps (`own_apps`)."""
    yield from running_server(tmp_path_factory.mktemp("delivery"), {}, ())


@pytest.fixture
def apps(shared_server: ServerProcess) -> Apps:
    return own_apps(shared_server)


@pytest.mark.parametrize("suite", list(Suite), ids=lambda s: s.name.lower())
async def test_both_suites_end_to_end(apps: Apps, suite: Suite) -> None:
    alice, bob = await apps.peer("alice", suite), await apps.peer("bob", suite)
    conversation = apps.conversation(100)
    alice.send(conversation, "你好，我想查询信用卡账单".encode(), to=(apps["bob"],))
    ack = await alice.next(frames.SendAck)
    assert ack.status == 0 and ack.seq == 1 and ack.conversation_id == conversation
    deliver = await bob.next(frames.Deliver)
    assert (deliver.conversation_id, deliver.seq, deliver.sender) == (conversation, 1, apps["alice"])
    assert deliver.body.decode() == "你好，我想查询信用卡账单"
    bob.send(conversation, b"reply")
    assert (await bob.next(frames.SendAck)).seq == 2
    assert (await alice.next(frames.Deliver)).body == b"reply"
    alice.close()
    bob.close()


async def test_repeated_send_is_stored_once(apps: Apps) -> None:
    alice, bob = await apps.peer("alice"), await apps.peer("bob")
    cmid = os.urandom(16)
    conversation = apps.conversation(7)
    alice.send(conversation, b"once", to=(apps["bob"],), cmid=cmid)
    first = await alice.next(frames.SendAck)
    alice.send(conversation, b"once", to=(apps["bob"],), cmid=cmid)
    second = await alice.next(frames.SendAck)
    assert (second.server_msg_id, second.seq) == (first.server_msg_id, first.seq)
    assert second.flags & frames.Flag.DUPLICATE and not first.flags & frames.Flag.DUPLICATE
    assert (await bob.next(frames.Deliver)).seq == 1
    alice.send(conversation, b"next", to=(apps["bob"],))
    assert (await bob.next(frames.Deliver)).seq == 2, "the duplicate was not delivered again"


async def test_offline_recipient_gets_everything_in_order_on_sync(apps: Apps) -> None:
    alice = await apps.peer("alice")
    for i in range(20):
        alice.send(apps.conversation(9), f"m{i}".encode(), to=(apps["bob"],))
    for _ in range(20):
        assert (await alice.next(frames.SendAck)).status == 0
    bob = await apps.peer("bob")
    bob.send_frame(frames.Sync(0, 0, 0, 0, request_id=1))
    got = [await bob.next(frames.Deliver) for _ in range(20)]
    assert [d.seq for d in got] == list(range(1, 21))
    assert [d.body for d in got] == [f"m{i}".encode() for i in range(20)]
    await asyncio.sleep(0.3)  # cursor updates are committed with the next batch
    bob.close()
    again = await apps.peer("bob")
    again.send_frame(frames.Sync(0, 0, 0, 0, request_id=2))
    done = await again.next(frames.SyncDone)
    assert done.last_seq == 0, "nothing pending: every message was acknowledged"


async def test_unacknowledged_deliver_is_retried(apps: Apps) -> None:
    alice, bob = await apps.peer("alice"), await apps.peer("bob")
    bob.auto_ack = False
    conversation = apps.conversation(11)
    alice.send(conversation, b"ack me", to=(apps["bob"],))
    first = await bob.next(frames.Deliver)
    assert not first.flags & frames.Flag.REDELIVERY
    retry = await bob.next(frames.Deliver, timeout=5)
    assert retry.seq == first.seq and retry.flags & frames.Flag.REDELIVERY
    bob.send_frame(frames.DeliverAck((frames.AckEntry(conversation, 1),)))
    with pytest.raises(TimeoutError):
        await bob.next(frames.Deliver, timeout=2.5)


async def test_every_device_of_a_user_receives(apps: Apps) -> None:
    alice = await apps.peer("alice")
    phone, desk = await apps.peer("bob"), await apps.peer("bob")
    alice.send(apps.conversation(12), b"both", to=(apps["bob"],))
    assert (await phone.next(frames.Deliver)).body == b"both"
    assert (await desk.next(frames.Deliver)).body == b"both"


async def test_ordering_with_many_concurrent_senders(apps: Apps) -> None:
    names = ("alice", "bob", "carol")
    senders = [await apps.peer(n) for n in names]
    reader = await apps.peer("dave")
    conversation = apps.conversation(13)
    senders[0].send(conversation, b"open", to=(apps["bob"], apps["carol"], apps["dave"]))
    await senders[0].next(frames.SendAck)
    per_sender = 60
    for i in range(per_sender):
        for s in senders:
            s.send(conversation, f"{i}".encode())
    acks = [[await s.next(frames.SendAck) for _ in range(per_sender)] for s in senders]
    for sender_acks in acks:
        seqs = [a.seq for a in sender_acks]
        assert seqs == sorted(seqs), "one sender's messages keep their order"
    total = 1 + per_sender * len(senders)
    got = [await reader.next(frames.Deliver) for _ in range(total)]
    assert [d.seq for d in got] == list(range(1, total + 1)), "gapless, in order"


async def test_non_member_is_refused(apps: Apps) -> None:
    alice, carol = await apps.peer("alice"), await apps.peer("carol")
    private, nowhere = apps.conversation(14), apps.conversation(15)
    alice.send(private, b"private", to=(apps["bob"],))
    await alice.next(frames.SendAck)
    carol.send(private, b"intrude")
    carol.send(nowhere, b"nowhere")
    refusals = [await carol.next(frames.SendAck) for _ in range(2)]
    assert [a.status for a in refusals] == [404, 404], "a non-member is told as if there were no such conversation"
    carol.send_frame(frames.Sync(private, 0, 10, 10, request_id=5))
    carol.send_frame(frames.Sync(nowhere, 0, 10, 10, request_id=6))
    errors = [await carol.next(frames.Error) for _ in range(2)]
    assert [(e.code, e.reason) for e in errors] == [(404, "not_found")] * 2


async def test_a_device_never_gets_its_own_messages_back(loaded_server: ServerProcess) -> None:
    """Two members pipeline messages into one conversation (8 in flight each, acking as they go): each receives
    exactly the other's messages, once, in order, and none of its own (the harness saw 300k echoes here)."""
    apps = Apps(loaded_server, {name: name for name in APPS}, 0)  # a server of its own, with the rate limits lifted
    alice, bob = await apps.peer("alice"), await apps.peer("bob")
    alice.send(15, b"open", to=("bob",))
    await alice.next(frames.SendAck)
    received: dict[str, list[frames.Deliver]] = {"alice": [], "bob": []}

    async def converse(me: Peer, name: str, count: int) -> None:
        sent = in_flight = 0
        while sent < count or in_flight:
            while sent < count and in_flight < 8:
                me.send(15, f"{name}-{sent}".encode())
                sent += 1
                in_flight += 1
            event = await me.next((frames.SendAck, frames.Deliver))
            if isinstance(event, frames.SendAck):
                in_flight -= 1
            else:
                received[name].append(event)

    await asyncio.gather(converse(alice, "alice", 400), converse(bob, "bob", 400))
    for me, name in ((alice, "alice"), (bob, "bob")):
        with contextlib.suppress(TimeoutError):
            while True:
                received[name].append(await me.next(frames.Deliver, timeout=1.5))
    for name, other in (("alice", "bob"), ("bob", "alice")):
        got = [d for d in received[name] if d.body != b"open"]
        assert {d.sender for d in got} == {other}, f"{name} got its own messages back"
        assert [d.body for d in got] == [f"{other}-{i}".encode() for i in range(400)]
        assert [d.seq for d in got] == sorted(d.seq for d in got)
