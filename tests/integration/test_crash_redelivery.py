"""kill -9, then the reconnect (issue #14 point 1): a `kefu serve` with its worker processes (gateways and a core)
killed with SIGKILL gives a client that comes back neither what it said it has nor its own messages, and a cursor
acknowledged a second before the kill is not lost (spec/PROTOCOL.md sections 4.5 and 4.10, items 5 to 7)."""

from __future__ import annotations

import asyncio

import pytest

from kefu.protocol import frames

from .conftest import ServerProcess
from .conftest import app_peer as connect
from .peer import Peer

pytestmark = pytest.mark.asyncio

CONVERSATION = 1414
FROM_ALICE = 20
FROM_BOB = 5
CURSOR_SAVED_WITHIN_S = 1.0
"""Section 4.10 item 6: a cursor advance reaches the log with the next group commit, well within this."""


async def send_all(peer: Peer, bodies: list[bytes], to: tuple[str, ...] = ()) -> list[int]:
    """SEND each body and wait for every SEND_ACK; their seqs."""
    for body in bodies:
        peer.send(CONVERSATION, body, to=to)
    acks = [await peer.next(frames.SendAck) for _ in bodies]
    assert all(a.status == 0 for a in acks)
    return [a.seq for a in acks]


async def deliveries(peer: Peer, count: int) -> list[int]:
    return [(await peer.next(frames.Deliver)).seq for _ in range(count)]


async def test_after_sigkill_a_client_gets_neither_what_it_stated_nor_its_own_messages(server: ServerProcess) -> None:
    alice = await connect(server, "alice")
    members = ("bob", "carol")
    assert await send_all(alice, [f"a{i}".encode() for i in range(FROM_ALICE)], to=members) == list(range(1, 21))

    # bob reads alice's 20 messages but his acknowledgements never leave (the kill comes first): his stored cursor
    # stays 0. He sends 5 of his own.
    bob = await connect(server, "bob")
    bob.auto_ack = False
    bob.send_frame(frames.Sync(0, 0, 0, 0, request_id=90))
    assert await deliveries(bob, FROM_ALICE) == list(range(1, 21))
    assert await send_all(bob, [f"b{i}".encode() for i in range(FROM_BOB)]) == list(range(21, 26))

    # carol reads all 25 and acknowledges them (the peer acknowledges each DELIVER as it arrives).
    carol = await connect(server, "carol")
    carol.send_frame(frames.Sync(0, 0, 0, 0, request_id=91))
    assert await deliveries(carol, FROM_ALICE + FROM_BOB) == list(range(1, 26))
    await asyncio.sleep(CURSOR_SAVED_WITHIN_S)
    server.kill()
    server.start()

    # bob's client comes back as the reference client does: the position it has per conversation, then SYNC(0).
    bob = await connect(server, "bob")
    bob.send_frame(frames.Sync(CONVERSATION, FROM_ALICE, 0, 0, request_id=1))
    bob.send_frame(frames.Sync(0, 0, 0, 0, request_id=2))
    carol = await connect(server, "carol")
    carol.send_frame(frames.Sync(0, 0, 0, 0, request_id=3))
    alice = await connect(server, "alice")
    assert await send_all(alice, [b"after the crash"]) == [26]

    first = await bob.next((frames.Deliver, frames.SyncDone))
    assert isinstance(first, frames.SyncDone) and (first.request_id, first.last_seq, first.more) == (1, 25, 0), (
        f"bob stated 20 and sent 21..25 himself: nothing of them comes back, got {first}"
    )
    second = await bob.next((frames.Deliver, frames.SyncDone))
    assert isinstance(second, frames.SyncDone) and second.request_id == 2, f"SYNC(0) rewound bob's stream: {second}"
    assert (await bob.next(frames.Deliver)).seq == 26, "bob's next message is the one stored after the crash"

    done = await carol.next((frames.Deliver, frames.SyncDone))
    assert done == frames.SyncDone(0, 0, 0, request_id=3), "carol's cursor, acknowledged 1 s before the kill, was kept"
    assert (await carol.next(frames.Deliver)).seq == 26
