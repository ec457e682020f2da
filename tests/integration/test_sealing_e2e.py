"""A real `kefu serve` over a sealed store: bytes flipped inside one stored message while it is stopped are found on
the next read, reported (storage.damaged in its log), and the client's SYNC gets an EVENT in that message's place and
the messages after it, on the same connection (issue #14 point 3; spec section 12, "Damage found on read")."""

from __future__ import annotations

import json
import re

import lmdb
import pytest

from kefu.protocol import frames
from kefu.protocol.errors import ErrorCode
from kefu.server.storage.schema import MAX_TABLES, U64S, message_key

from .conftest import ServerProcess
from .peer import Peer

pytestmark = pytest.mark.asyncio

CONVERSATION = 5150
OTHER = 5151
BODIES = [f"card ending 7890 lost, message {i}".encode() for i in range(1, 6)]


def flip_inside_value(data_dir_store: str, key: bytes, table: bytes = b"messages") -> None:
    """Flip bytes in the middle of the value stored under `table` `key`, in data.mdb itself (the server is
    stopped): the value is found in the file by its bytes (sealed, with its own nonce: no other value has them).
    Every copy is flipped: a page LMDB copied on write may still hold the same bytes in a free page."""
    with lmdb.open(data_dir_store, readonly=True, lock=False, max_dbs=MAX_TABLES) as env, env.begin() as txn:
        value = txn.get(key, db=env.open_db(table, txn=txn, create=False))
    assert value is not None and all(body not in value for body in BODIES), "stored sealed"
    path = f"{data_dir_store}/data.mdb"
    with open(path, "r+b") as f:
        data = f.read()
        found = [m.start() for m in re.finditer(re.escape(value), data)]
        assert found, "the value is in the file"
        for start in found:
            at = start + len(value) // 2
            f.seek(at)
            f.write(bytes(b ^ 0x5A for b in data[at : at + 4]))


async def test_a_damaged_message_is_replaced_by_an_event_and_the_stream_goes_on(server: ServerProcess) -> None:
    alice = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins)
    for body in BODIES:
        alice.send(CONVERSATION, body, to=("bob",))
        assert (await alice.next(frames.SendAck)).status == 0
    alice.send(OTHER, b"in a conversation whose record will not open", to=("bob",))
    assert (await alice.next(frames.SendAck)).status == 0
    assert server.stop() == 0  # a graceful stop indexes everything into data.mdb
    flip_inside_value(str(server.data_dir / "store"), message_key(CONVERSATION, 3))
    flip_inside_value(str(server.data_dir / "store"), U64S.pack(OTHER), b"conversations")

    server.start()
    bob = await Peer.connect(server.port, "bob", server.secrets["bob"], server.pins)
    bob.send_frame(frames.Sync(CONVERSATION, 0, len(BODIES), 100, request_id=7))
    delivered = [await bob.next(frames.Deliver) for _ in BODIES]
    done = await bob.next(frames.SyncDone)
    assert [d.seq for d in delivered] == [1, 2, 3, 4, 5] and done.last_seq == 5
    assert [d.body for i, d in enumerate(delivered) if i != 2] == [b for i, b in enumerate(BODIES) if i != 2]
    event = delivered[2]
    assert event.sender == frames.SYSTEM_SENDER and event.content_type == frames.ContentType.EVENT
    assert json.loads(event.body) == {"event": "damaged", "conversation_id": CONVERSATION, "seq": 3}
    bob.send_frame(frames.Sync(OTHER, 0, 0, 0, request_id=8))  # it exists: not NOT_FOUND
    refused = await bob.next(frames.Error)
    assert (refused.code, refused.request_id) == (ErrorCode.STORAGE_UNAVAILABLE, 8)
    bob.send(CONVERSATION, b"still here")  # the connection goes on
    assert (await bob.next(frames.SendAck)).seq == 6
    log = server.log.read_text()
    assert "storage.damaged" in log and "table=messages" in log and message_key(CONVERSATION, 3).hex() in log
