"""Delivery end to end against the real server: both suites, dedup, offline recipients, retries, order."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest

from kefu.protocol import frames
from kefu.protocol.crypto import Suite

from .conftest import ServerProcess
from .peer import Peer

pytestmark = pytest.mark.asyncio


async def peer(server: ServerProcess, name: str, suite: Suite = Suite.NATIONAL) -> Peer:
    return await Peer.connect(server.port, name, server.secrets[name], server.pins, suite=suite)


@pytest.mark.parametrize("suite", list(Suite), ids=lambda s: s.name.lower())
async def test_both_suites_end_to_end(server: ServerProcess, suite: Suite) -> None:
    alice, bob = await peer(server, "alice", suite), await peer(server, "bob", suite)
    alice.send(100, "你好，我想查询信用卡账单".encode(), to=("bob",))
    ack = await alice.next(frames.SendAck)
    assert ack.status == 0 and ack.seq == 1 and ack.conversation_id == 100
    deliver = await bob.next(frames.Deliver)
    assert (deliver.conversation_id, deliver.seq, deliver.sender) == (100, 1, "alice")
    assert deliver.body.decode() == "你好，我想查询信用卡账单"
    bob.send(100, b"reply")
    assert (await bob.next(frames.SendAck)).seq == 2
    assert (await alice.next(frames.Deliver)).body == b"reply"
    alice.close()
    bob.close()


async def test_repeated_send_is_stored_once(server: ServerProcess) -> None:
    alice, bob = await peer(server, "alice"), await peer(server, "bob")
    cmid = os.urandom(16)
    alice.send(7, b"once", to=("bob",), cmid=cmid)
    first = await alice.next(frames.SendAck)
    alice.send(7, b"once", to=("bob",), cmid=cmid)
    second = await alice.next(frames.SendAck)
    assert (second.server_msg_id, second.seq) == (first.server_msg_id, first.seq)
    assert second.flags & frames.Flag.DUPLICATE and not first.flags & frames.Flag.DUPLICATE
    assert (await bob.next(frames.Deliver)).seq == 1
    alice.send(7, b"next", to=("bob",))
    assert (await bob.next(frames.Deliver)).seq == 2, "the duplicate was not delivered again"


async def test_offline_recipient_gets_everything_in_order_on_sync(server: ServerProcess) -> None:
    alice = await peer(server, "alice")
    for i in range(20):
        alice.send(9, f"m{i}".encode(), to=("bob",))
    for _ in range(20):
        assert (await alice.next(frames.SendAck)).status == 0
    bob = await peer(server, "bob")
    bob.send_frame(frames.Sync(0, 0, 0, 0, request_id=1))
    got = [await bob.next(frames.Deliver) for _ in range(20)]
    assert [d.seq for d in got] == list(range(1, 21))
    assert [d.body for d in got] == [f"m{i}".encode() for i in range(20)]
    await asyncio.sleep(0.3)  # cursor updates are committed with the next batch
    bob.close()
    again = await peer(server, "bob")
    again.send_frame(frames.Sync(0, 0, 0, 0, request_id=2))
    done = await again.next(frames.SyncDone)
    assert done.last_seq == 0, "nothing pending: every message was acknowledged"


async def test_unacknowledged_deliver_is_retried(server: ServerProcess) -> None:
    alice, bob = await peer(server, "alice"), await peer(server, "bob")
    bob.auto_ack = False
    alice.send(11, b"ack me", to=("bob",))
    first = await bob.next(frames.Deliver)
    assert not first.flags & frames.Flag.REDELIVERY
    retry = await bob.next(frames.Deliver, timeout=5)
    assert retry.seq == first.seq and retry.flags & frames.Flag.REDELIVERY
    bob.send_frame(frames.DeliverAck((frames.AckEntry(11, 1),)))
    with pytest.raises(TimeoutError):
        await bob.next(frames.Deliver, timeout=2.5)


async def test_every_device_of_a_user_receives(server: ServerProcess) -> None:
    alice = await peer(server, "alice")
    phone, desk = await peer(server, "bob"), await peer(server, "bob")
    alice.send(12, b"both", to=("bob",))
    assert (await phone.next(frames.Deliver)).body == b"both"
    assert (await desk.next(frames.Deliver)).body == b"both"


async def test_ordering_with_many_concurrent_senders(server: ServerProcess) -> None:
    names = ("alice", "bob", "carol")
    senders = [await peer(server, n) for n in names]
    reader = await peer(server, "dave")
    senders[0].send(13, b"open", to=("bob", "carol", "dave"))
    await senders[0].next(frames.SendAck)
    per_sender = 60
    for i in range(per_sender):
        for s in senders:
            s.send(13, f"{i}".encode())
    acks = [[await s.next(frames.SendAck) for _ in range(per_sender)] for s in senders]
    for sender_acks in acks:
        seqs = [a.seq for a in sender_acks]
        assert seqs == sorted(seqs), "one sender's messages keep their order"
    total = 1 + per_sender * len(senders)
    got = [await reader.next(frames.Deliver) for _ in range(total)]
    assert [d.seq for d in got] == list(range(1, total + 1)), "gapless, in order"


async def test_non_member_is_refused(server: ServerProcess) -> None:
    alice, carol = await peer(server, "alice"), await peer(server, "carol")
    alice.send(14, b"private", to=("bob",))
    await alice.next(frames.SendAck)
    carol.send(14, b"intrude")
    carol.send(15, b"nowhere")
    refusals = [await carol.next(frames.SendAck) for _ in range(2)]
    assert [a.status for a in refusals] == [404, 404], "a non-member is told as if there were no such conversation"
    carol.send_frame(frames.Sync(14, 0, 10, 10, request_id=5))
    carol.send_frame(frames.Sync(15, 0, 10, 10, request_id=6))
    errors = [await carol.next(frames.Error) for _ in range(2)]
    assert [(e.code, e.reason) for e in errors] == [(404, "not_found")] * 2


async def test_a_device_never_gets_its_own_messages_back(loaded_server: ServerProcess) -> None:
    """Two members pipeline messages into one conversation (8 in flight each, acking as they go): each receives
    exactly the other's messages, once, in order, and none of its own (the harness saw 300k echoes here)."""
    server = loaded_server
    alice, bob = await peer(server, "alice"), await peer(server, "bob")
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
