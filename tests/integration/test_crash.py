"""kill -9 in the middle of a load: every acknowledged message survives, is stored once and delivered once."""

from __future__ import annotations

import asyncio
import os

import pytest

from kefu.protocol import frames

from .conftest import ServerProcess
from .conftest import app_peer as connect
from .peer import Peer

pytestmark = pytest.mark.asyncio

SENDERS = ("alice", "bob", "carol")
PER_SENDER = 1500
CONVERSATION = 4242


async def collect_acks(peer: Peer, acks: dict[bytes, int], stop: asyncio.Event) -> None:
    """Record SEND_ACKs until the connection dies."""
    while not stop.is_set():
        try:
            ack = await peer.next(frames.SendAck, timeout=1.0)
        except (TimeoutError, ConnectionError):
            return
        assert ack.status == 0
        acks[ack.client_msg_id] = ack.seq


async def test_sigkill_mid_load_loses_no_acknowledged_message(loaded_server: ServerProcess) -> None:
    server = loaded_server
    opener = await connect(server, "alice")
    opener.send(CONVERSATION, b"open", to=("bob", "carol", "dave"))
    open_ack = await opener.next(frames.SendAck)
    cmids = {name: [os.urandom(16) for _ in range(PER_SENDER)] for name in SENDERS}
    acks: dict[bytes, int] = {open_ack.client_msg_id: open_ack.seq}
    peers = {name: await connect(server, name) for name in SENDERS}
    stop = asyncio.Event()
    collectors = [asyncio.create_task(collect_acks(p, acks, stop)) for p in peers.values()]
    for i in range(PER_SENDER):
        for name, peer in peers.items():
            peer.send(CONVERSATION, f"{name}-{i}".encode(), cmid=cmids[name][i])
        if i % 50 == 0:
            await asyncio.sleep(0)
        if len(acks) > 1000 and i > PER_SENDER // 3:
            break
    while len(acks) < 1000:
        await asyncio.sleep(0.01)
    server.kill()  # mid-load: some SENDs are acknowledged, some in flight, some never sent
    stop.set()
    await asyncio.gather(*collectors)
    acked_before_crash = dict(acks)
    assert len(acked_before_crash) < 1 + PER_SENDER * len(SENDERS), "the kill really came mid-load"

    server.start()
    peers = {name: await connect(server, name) for name in SENDERS}
    # Every sender retries everything it did not see acknowledged, with the same client message ids, and
    # also repeats a few acknowledged ones: those must come back as duplicates of the original.
    after: dict[bytes, frames.SendAck] = {}
    for name, peer in peers.items():
        resend = [c for c in cmids[name] if c not in acked_before_crash] + [
            c for c in cmids[name] if c in acked_before_crash
        ][:20]
        for cmid in resend:
            peer.send(CONVERSATION, f"{name}-{cmids[name].index(cmid)}".encode(), cmid=cmid)
        for _ in resend:
            ack = await peer.next(frames.SendAck)
            after[ack.client_msg_id] = ack
    for cmid, seq in acked_before_crash.items():
        if cmid in after:
            assert after[cmid].seq == seq and after[cmid].flags & frames.Flag.DUPLICATE

    total = 1 + PER_SENDER * len(SENDERS)
    reader = await connect(server, "dave")
    reader.send_frame(frames.Sync(0, 0, 0, 0, request_id=1))
    seen: dict[int, bytes] = {}
    while len(seen) < total:
        deliver = await reader.next(frames.Deliver, timeout=20)
        seen.setdefault(deliver.seq, deliver.client_msg_id)  # client-side dedup by sequence number
    assert sorted(seen) == list(range(1, total + 1)), "gapless"
    by_cmid = {cmid: seq for seq, cmid in seen.items()}
    assert len(by_cmid) == total, "every message stored exactly once"
    for cmid, seq in acked_before_crash.items():
        assert by_cmid[cmid] == seq, "an acknowledged message kept its sequence number across the crash"
