"""A damaged B-tree page on real LMDB (issue #14 point 3): reads that cross it are reported as damage of the table
(log, count, marks) and refused alone (`StorageDamaged`, the engine's `Unreadable`); reads elsewhere go on; the
group commit refuses only the SENDs whose conversation sits under the page; the indexer's batch that fails on it is
reported as damage."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from kefu.protocol.errors import ErrorCode
from kefu.server.engine.messages import CursorUpdate, SendRequest
from kefu.server.engine.ports import Unreadable
from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage.conversations import LogSettings, open_conversations
from kefu.server.storage.index import TreeDamaged
from kefu.server.storage.index_worker import Worker
from kefu.server.storage.indexer import decode_messages, frame
from kefu.server.storage.records import Write
from kefu.server.storage.schema import LOG_DIR, U64S
from kefu.server.storage.store import StorageDamaged, Store
from kefu.server.storage.values import DamageReport

from .tree_damage import break_child

CONVERSATIONS = 150
PER_CONVERSATION = 5
BODY = bytes(100)  # about 20 messages a leaf page: four conversations


def opened(path: Path) -> Store:
    """Opened with the tops check only: the damage is met on read, as damage that appears while the store is open
    (the full check at open salvages it instead: test_salvage)."""
    return Store(path, sealer=sealer_of(path.parent, "sm4-gcm"), check_at_open="tops")


def send(conv: int, n: int, sender: str = "alice") -> SendRequest:
    return SendRequest(sender, (conv * 1000 + n).to_bytes(16, "big"), conv, 1, BODY, (), create_members=("bob",))


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[Path, int, int]:
    """A store of CONVERSATIONS x PER_CONVERSATION messages with one ``messages`` page unreadable: (store path, a
    conversation wholly on that page, one wholly elsewhere)."""
    path = tmp_path / "store"
    store = opened(path)
    for n in range(1, PER_CONVERSATION + 1):
        store.commit([send(c, n) for c in range(1, CONVERSATIONS + 1)], [], now_ms=1_000_000 + n)
    store.close()
    low, high = break_child(path / "data.mdb", b"messages", apart=2)
    bad = U64S.unpack_from(low)[0] + 1
    good = 1
    assert 2 < bad < U64S.unpack_from(high)[0] <= CONVERSATIONS
    return path, bad, good


def test_reads_across_a_damaged_page_are_reported_and_refused_alone(damaged: tuple[Path, int, int]) -> None:
    path, bad, good = damaged
    store = opened(path)
    try:
        with pytest.raises(StorageDamaged) as caught:
            store.read_range(bad, 0, 0, 1000)
        assert isinstance(caught.value, Unreadable) and caught.value.table == "messages"
        assert "B-tree is damaged" in caught.value.reason and "PageNotFound" in caught.value.reason
        assert store.damage.counts["messages"] >= 1
        assert [m.seq for m in store.read_range(good, 0, 0, 1000)] == list(range(1, PER_CONVERSATION + 1))
        assert store.last_seq(good) == PER_CONVERSATION
        positions = {c: (cursor, last) for c, cursor, last in store.positions("bob")}
        assert positions[good] == (0, PER_CONVERSATION)
        assert bad not in positions and len(positions) >= CONVERSATIONS - 10
        assert store.members(good) == ("alice", "bob"), "the store goes on after the failed read"
    finally:
        store.close()  # waits for the marks
    store = opened(path)
    try:
        assert bad in store.damage_marks(), "marked for kefu status and verify"
    finally:
        store.close()


def test_the_group_commit_refuses_only_the_sends_under_the_damaged_page(damaged: tuple[Path, int, int]) -> None:
    path, bad, good = damaged

    async def run() -> tuple[list[int], list[int]]:
        store = opened(path)
        conversations = open_conversations(store, asyncio.get_running_loop(), LogSettings(index_interval_s=60))
        conversations.committer.start()
        try:
            loop = asyncio.get_running_loop()
            results: list[asyncio.Future[int]] = []
            for conv in (good, bad, good):
                for _ in range(3):
                    future: asyncio.Future[int] = loop.create_future()
                    results.append(future)
                    conversations.submit(send(conv, 900 + len(results)),
                                         lambda r, f=future: f.set_result(r.status))  # fmt: skip
            statuses = list(await asyncio.gather(*results))
            again: asyncio.Future[int] = loop.create_future()
            conversations.submit(send(good, 999), lambda r: again.set_result(r.status))
            return statuses, [await again]
        finally:
            await conversations.committer.stop()
            conversations.committer.close()
            store.close()

    statuses, after = asyncio.run(run())
    unavailable, ok = int(ErrorCode.STORAGE_UNAVAILABLE), int(ErrorCode.OK)
    assert statuses == [ok] * 3 + [unavailable] * 3 + [ok] * 3, statuses
    assert after == [ok]


def test_an_indexing_batch_through_the_damaged_page_is_reported_as_damage(damaged: tuple[Path, int, int]) -> None:
    path, bad, _ = damaged
    store = opened(path)
    try:
        write = Write(bad, PER_CONVERSATION + 1, 0, 0, (), None, b"x" * 40, ())
        write.server_msg_id, write.timestamp_ms, write.sender, write.client_msg_id = 10**6, 1, "alice", bytes(16)
        _, position = store.log_state()
        with pytest.raises(TreeDamaged) as caught:
            store.apply([write], position)
        assert caught.value.table == "messages" and store.damage.counts["messages"] == 1
        assert store.last_seq(1 if bad != 1 else 2) > 0, "the failed write left the store readable"
    finally:
        store.close()


def test_damage_the_indexer_process_finds_reaches_the_serving_process_metric(tmp_path: Path) -> None:
    """The worker's answers carry the values it found damaged since its last answer; the parent's report counts
    them in its metric (kefu_storage_damaged_records_total), without logging them again."""
    path = tmp_path / "store"
    store = opened(path)
    try:
        store.commit([send(7, 1)], [CursorUpdate("bob", 7, 1)], now_ms=1_000_000)
        cursor_key = b"bob\0" + U64S.pack(7)
        store.writing(lambda txn: txn.put(cursor_key, b"\0" * 40, db=store.handle("cursors")))
        assert store.cursor("bob", 7) == 0 and store.damage.counts == {"cursors": 1}  # reported in "its" process
        parent_end, worker_end = socket.socketpair()
        with parent_end, worker_end:
            _, position = store.log_state()
            worker = Worker(store, path / LOG_DIR, worker_end, interval_s=60, batch_bytes=1 << 20)
            parent_end.sendall(frame(b"S" + position.encode()))
            worker.run()
            answer = json.loads(decode_messages(bytearray(parent_end.recv(1 << 16)))[0])
        assert answer["damaged"] == {"cursors": 1} and "stopped" in answer
        counted: list[str] = []
        parent = DamageReport()
        parent.on_damaged = counted.append
        parent.add_counts(answer["damaged"])
        assert counted == ["cursors"] and parent.counts == {"cursors": 1}
    finally:
        store.close()
