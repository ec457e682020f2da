"""The indexed store and its group committer, on real LMDB environments and log files in tmp_path (no mocks).

Covers every Store method (sequencing through `Store.commit`, the log-less path, which shares the sequencer and the
index writes with the server's), map growth under concurrent reads, retention with archives, backups taken while
writing, a kill -9 of a process in the middle of committing, and the GroupCommitter on a real event loop. The log
itself is tested in test_storage_log.py and test_storage_wal.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import lmdb
import pytest

from kefu.protocol.errors import ErrorCode
from kefu.server.engine.messages import CursorUpdate, SendRequest, SendResult, StoredMessage
from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage import maintenance as storage_maintenance
from kefu.server.storage.conversations import Conversations, LogSettings, open_conversations
from kefu.server.storage.maintenance import read_archive
from kefu.server.storage.store import SCHEMA_VERSION, ConversationRecord, SchemaError, StorageFull, Store

from .children import lines_until_killed

NOW = 1_700_000_000_000
OK, FORBIDDEN, NOT_FOUND, BAD_REQUEST = ErrorCode.OK, ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND, ErrorCode.BAD_REQUEST


def opened(path: Path, **settings: Any) -> Store:
    """A store whose values are sealed under a data key beside it (path.parent/keys), as the server's are."""
    return Store(path, sealer=sealer_of(path.parent, "sm4-gcm"), **settings)


def cmid(n: int) -> bytes:
    return n.to_bytes(16, "big")


def req(sender: str, n: int, conv: int, *, body: bytes = b"hi", create: tuple[str, ...] = ("agent",)) -> SendRequest:
    return SendRequest(sender, cmid(n), conv, 1, body, (), create_members=create)


def all_messages(store: Store, conv: int) -> list[StoredMessage]:
    return store.read_range(conv, 0, 0, 1 << 30)


def assert_gapless(store: Store, conv: int) -> list[StoredMessage]:
    messages = all_messages(store, conv)
    assert [m.seq for m in messages] == list(range(1, store.last_seq(conv) + 1))
    assert all(m.conversation_id == conv for m in messages)
    return messages


# --- sending ----------------------------------------------------------------------------------------------


def test_first_send_creates_the_conversation(store: Store) -> None:
    meta = (("trace", b"\x00\xff"), ("语言", b"zh"))
    [result] = store.commit([SendRequest("alice", cmid(1), 7, 2, b"{}", meta, ("agent", "alice"))], [], now_ms=NOW)
    assert result == SendResult(
        OK, False, StoredMessage(7, 1, 1, NOW, "alice", cmid(1), 2, b"{}", meta), result.members
    )
    assert result.members == ("alice", "agent"), "sender first, duplicates dropped"
    assert store.members(7) == ("alice", "agent") and store.members(8) is None
    assert store.last_seq(7) == 1 and store.last_seq(8) == 0
    assert store.conversations_of("agent") == [7] == store.conversations_of("alice")
    assert store.conversations_of("nobody") == [] and store.conversations_of("a\0b") == []
    assert all_messages(store, 7) == [result.message]


def test_sequences_are_gapless_and_server_ids_monotonic(store: Store) -> None:
    ids = []
    for batch in range(5):
        requests = [req(f"user{c}", batch * 100 + i, c) for i in range(12) for c in [1 + i % 3]]
        results = store.commit(requests, [], now_ms=NOW + batch)
        assert [r.status for r in results] == [OK] * 12
        ids += [r.message.server_msg_id for r in results if r.message]
    assert ids == list(range(1, 61))
    for conv in (1, 2, 3):
        assert len(assert_gapless(store, conv)) == 20


def test_refusals_take_no_sequence_number(store: Store) -> None:
    store.commit([req("alice", 1, 1)], [], now_ms=NOW)
    results = store.commit([req("bob", 2, 1), req("bob", 3, 2, create=())], [], now_ms=NOW)
    assert results == [SendResult(FORBIDDEN, False, None, ()), SendResult(NOT_FOUND, False, None, ())]
    [ok] = store.commit([req("agent", 4, 1)], [], now_ms=NOW)
    assert ok.message is not None and (ok.message.seq, ok.message.server_msg_id) == (2, 2)
    assert store.members(2) is None, "refused create_members leave nothing behind"


@pytest.mark.parametrize(
    "request_",
    [
        SendRequest("a\0b", cmid(1), 1, 1, b"x", ()),
        SendRequest("", cmid(1), 1, 1, b"x", ()),
        SendRequest("x" * 256, cmid(1), 1, 1, b"x", ()),
        SendRequest("\ud800", cmid(1), 1, 1, b"x", ()),
        SendRequest("alice", b"short", 1, 1, b"x", ()),
        SendRequest("alice", cmid(1), -1, 1, b"x", ()),
        SendRequest("alice", cmid(1), 1 << 64, 1, b"x", ()),
        SendRequest("alice", cmid(1), 1, 1 << 16, b"x", ()),
        SendRequest("alice", cmid(1), 1, 1, b"x", (("", b"v"),)),
        SendRequest("alice", cmid(1), 1, 1, b"x", (("k", b"v" * 65536),)),
        SendRequest("alice", cmid(1), 1, 1, b"x", tuple((f"k{i}", b"") for i in range(256))),
        SendRequest("alice", cmid(1), 1, 1, b"x", (), create_members=("bob\0",)),
    ],
)
def test_bad_requests(store: Store, request_: SendRequest) -> None:
    assert store.commit([request_], [], now_ms=NOW) == [SendResult(BAD_REQUEST, False, None, ())]
    assert storage_maintenance.store_stats(store)["messages_entries"] == 0 and store.members(1) is None


def test_duplicates_within_and_across_batches(store: Store) -> None:
    first, again, other_sender = store.commit(
        [req("alice", 1, 1), req("alice", 1, 1), req("agent", 1, 1)], [], now_ms=NOW
    )
    assert again == SendResult(OK, True, first.message, ("alice", "agent"))
    assert other_sender.message is not None and other_sender.message.seq == 2, "dedup is per sender"
    [later] = store.commit([SendRequest("alice", cmid(1), 1, 3, b"changed", ())], [], now_ms=NOW + 5000)
    assert later == SendResult(OK, True, first.message, ("alice", "agent")), "the ORIGINAL message"
    assert store.last_seq(1) == 2 and storage_maintenance.store_stats(store)["idempotency_entries"] == 2


def test_a_resend_after_the_window_is_a_new_message(tmp_path: Path) -> None:
    store = opened(tmp_path / "db", idempotency_window_s=10)
    [a] = store.commit([req("alice", 1, 1)], [], now_ms=NOW)
    [b] = store.commit([req("alice", 1, 1)], [], now_ms=NOW + 9_999)
    [c] = store.commit([req("alice", 1, 1)], [], now_ms=NOW + 10_000)
    assert b.duplicate and not c.duplicate and c.message is not None and c.message.seq == 2
    [d] = store.commit([req("alice", 1, 1)], [], now_ms=NOW + 10_001)
    assert d.duplicate and d.message == c.message and a.message != c.message
    store.close()


def test_read_range_bounds(store: Store) -> None:
    store.commit([req("alice", i, 1) for i in range(10)], [], now_ms=NOW)
    seqs = lambda *args: [m.seq for m in store.read_range(1, *args)]  # noqa: E731
    assert seqs(0, 0, 100) == list(range(1, 11))
    assert seqs(3, 0, 2) == [4, 5]
    assert seqs(3, 6, 100) == [4, 5, 6]
    assert seqs(10, 0, 5) == [] and seqs(0, 0, 0) == [] and seqs(5, 5, 10) == []
    assert store.read_range(2, 0, 0, 10) == [] and store.read_range(0, 0, 0, 10) == []


def test_cursors_and_pending(store: Store) -> None:
    store.commit([req("alice", i, 1) for i in range(5)] + [req("bob", 9, 2)], [], now_ms=NOW)
    assert store.pending("agent") == [(1, 0, 5), (2, 0, 1)]
    store.commit(
        [],
        [
            CursorUpdate("agent", 1, 3),
            CursorUpdate("agent", 1, 2),  # cumulative: never goes back
            CursorUpdate("agent", 2, 99),  # clamped to last_seq
            CursorUpdate("alice", 2, 1),  # not a member: ignored
            CursorUpdate("agent", 3, 1),  # no such conversation: ignored
            CursorUpdate("a\0", 1, 1),
        ],
        now_ms=NOW,
    )
    assert (store.cursor("agent", 1), store.cursor("agent", 2), store.cursor("alice", 2)) == (3, 1, 0)
    assert store.pending("agent") == [(1, 3, 5)] and store.pending("alice") == [(1, 0, 5)]
    assert store.pending("bob") == [(2, 0, 1)], "a sender's own messages count until its cursor covers them"
    [sent] = store.commit([req("bob", 10, 2)], [CursorUpdate("agent", 2, 2)], now_ms=NOW)
    assert sent.message is not None and store.cursor("agent", 2) == 2, "cursors apply after the batch's sends"


def test_reopening_continues_every_counter(tmp_path: Path) -> None:
    store = opened(tmp_path / "db")
    store.commit([req("alice", i, 1 + i % 2) for i in range(6)], [CursorUpdate("agent", 1, 2)], now_ms=NOW)
    store.close()
    store = opened(tmp_path / "db")
    [dup, new] = store.commit([req("alice", 0, 1), req("alice", 100, 1)], [], now_ms=NOW + 1)
    assert dup.duplicate and new.message is not None and (new.message.seq, new.message.server_msg_id) == (4, 7)
    assert store.cursor("agent", 1) == 2 and store.members(2) == ("alice", "agent")
    store.close()


def test_schema_checks(tmp_path: Path) -> None:
    opened(tmp_path / "new").close()
    with lmdb.open(str(tmp_path / "new"), max_dbs=16) as env, env.begin(write=True) as txn:
        txn.put(b"schema_version", struct.pack("!I", SCHEMA_VERSION + 1), db=env.open_db(b"meta", txn=txn))
    with pytest.raises(SchemaError, match="newer"):
        opened(tmp_path / "new")
    with lmdb.open(str(tmp_path / "foreign"), max_dbs=16) as env, env.begin(write=True) as txn:
        txn.put(b"k", b"v", db=env.open_db(b"messages", txn=txn))
    with pytest.raises(SchemaError, match="not a kefu store"):
        opened(tmp_path / "foreign")


def test_messages_leave_the_conversation_record_alone(tmp_path: Path) -> None:
    """last_seq is the record's floor or the last message key, whichever is larger: a message writes no record."""
    encode = ConversationRecord._wire_build  # type: ignore[attr-defined]
    assert encode(ConversationRecord(7, 1, ("a",)))[:8] == struct.pack("!Q", 7), "the floor leads the record"
    store = opened(tmp_path / "db")
    store.commit([req("alice", 0, 1)], [], now_ms=NOW)
    record = store.get_record("conversations", struct.pack("!Q", 1))
    for i in range(1, 5):
        store.commit([req("alice", i, 1), req("alice", 100 + i, 2)], [], now_ms=NOW)
    assert store.get_record("conversations", struct.pack("!Q", 1)) == record, "untouched by later messages"
    assert (store.last_seq(1), store.last_seq(2), store.last_seq(3)) == (5, 4, 0), "neighbours do not leak"
    store.close()
    store = opened(tmp_path / "db")
    [after] = store.commit([req("alice", 9, 1)], [], now_ms=NOW)
    assert after.message is not None and after.message.seq == 6
    assert store.pending("agent") == [(1, 0, 6), (2, 0, 4)]
    store.close()


# --- apps, stats ------------------------------------------------------------------------------------------


def test_apps(tmp_path: Path) -> None:
    store = opened(tmp_path / "db")
    store.put_app("web", b"r1")
    store.put_app("ios", b"r2")
    store.put_app("web", b"r3")
    assert store.get_app("web") == b"r3" and store.get_app("none") is None
    assert store.list_apps() == ["ios", "web"]
    assert store.delete_app("ios") and not store.delete_app("ios")
    for bad in ("a\0", "", "x" * 256):
        with pytest.raises(ValueError, match="invalid app id"):
            store.put_app(bad, b"")
    store.close()
    store = opened(tmp_path / "db")
    assert store.list_apps() == ["web"] and store.get_app("web") == b"r3"
    store.close()


def test_stats(store: Store) -> None:
    store.commit([req("alice", i, 1) for i in range(3)], [CursorUpdate("agent", 1, 1)], now_ms=NOW)
    stats = storage_maintenance.store_stats(store)
    assert stats["map_size_bytes"] == 64 << 20 and 0 < stats["used_bytes"] <= stats["high_water_bytes"]
    expected = {"messages": 3, "conversations": 1, "cursors": 1, "user_convs": 2, "idempotency": 3, "expiry": 3}
    assert {name: stats[f"{name}_entries"] for name in expected} == expected
    # meta: schema_version, sealed, next_server_msg_id, log_id, log_position, reseal_progress
    assert stats["idem_expiry_entries"] == 3 and stats["apps_entries"] == 0 and stats["meta_entries"] == 6


# --- map growth ---------------------------------------------------------------------------------------------


def test_the_map_grows_under_concurrent_reads(tmp_path: Path) -> None:
    store = opened(tmp_path / "db", map_size=256 << 10)
    store.commit([req("alice", 0, 1)], [], now_ms=NOW)
    stop, errors, reads = threading.Event(), list[BaseException](), [0]

    def reader() -> None:
        try:
            while not stop.is_set():
                messages = store.read_range(1, 0, 0, 50)
                assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
                store.pending("agent")
                reads[0] += 1
        except BaseException as exc:
            errors.append(exc)

    def app_writer() -> None:  # another thread's writes queue behind the writer's resize, never deadlock with it
        try:
            for i in range(100):
                store.put_app(f"app{i % 7}", os.urandom(3000))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)] + [threading.Thread(target=app_writer)]
    for t in threads:
        t.start()
    body = os.urandom(10_000)
    for batch in range(40):  # 4 MB into a 256 KiB map
        store.commit([req("alice", 1 + batch * 10 + i, 1, body=body) for i in range(10)], [], now_ms=NOW)
    stop.set()
    for t in threads:
        t.join()
    assert not errors and reads[0] > 0 and len(store.list_apps()) == 7
    assert storage_maintenance.store_stats(store)["map_size_bytes"] >= 4 << 20
    messages = assert_gapless(store, 1)
    assert len(messages) == 401 and all(m.body == body for m in messages[1:])
    store.close()


def test_the_map_stops_at_its_cap(tmp_path: Path) -> None:
    store = opened(tmp_path / "db", map_size=256 << 10, max_map_size=512 << 10)
    with pytest.raises(StorageFull):
        store.commit([req("alice", 0, 1, body=os.urandom(1 << 20))], [], now_ms=NOW)
    [ok] = store.commit([req("alice", 1, 1)], [], now_ms=NOW)
    assert ok.message is not None and ok.message.seq == 1, "the failed batch left nothing behind"
    # A failed batch that had changed the members and taken seqs: the writer's conversation cache must not keep them.
    regroup = dataclasses.replace(req("alice", 2, 1), set_members=("alice", "carol"))
    with pytest.raises(StorageFull):
        store.commit([regroup, req("alice", 3, 1, body=os.urandom(1 << 20))], [], now_ms=NOW)
    agent, carol = store.commit([req("agent", 4, 1), req("carol", 5, 1)], [], now_ms=NOW)
    assert agent.message is not None and agent.message.seq == 2, "no seq of the failed batch was kept"
    assert carol.status == ErrorCode.FORBIDDEN and store.members(1) == ("alice", "agent")
    store.close()


# --- retention and backup -----------------------------------------------------------------------------------


def test_expire_by_age_archives_then_deletes(tmp_path: Path) -> None:
    store = opened(tmp_path / "db", idempotency_window_s=3600)
    day = 86_400_000
    old = [
        r.message
        for t in range(3)
        for r in store.commit([req("alice", t * 10 + i, 1 + i) for i in range(2)], [], now_ms=NOW + t * day)
    ]
    stats = storage_maintenance.expire(
        store, now_ms=NOW + 10 * day, max_age_s=9 * 86400, max_bytes=None, archive_dir=tmp_path / "archive"
    )
    assert stats.messages_expired == 2 and len(stats.archives) == 1
    assert stats.idempotency_purged == 6, "every entry is older than the window"
    name = stats.archives[0].name
    assert name == "messages-20231114T221320.000Z-20231114T221320.000Z.jsonl.gz"
    assert list(read_archive(stats.archives[0], store.values)) == old[:2]
    assert [m.seq for m in all_messages(store, 1)] == [2, 3] and store.last_seq(1) == 3, "last_seq is kept"
    again = storage_maintenance.expire(
        store, now_ms=NOW + 12 * day, max_age_s=None, max_bytes=None, archive_dir=tmp_path / "archive"
    )
    assert (again.messages_expired, again.archives, again.idempotency_purged) == (0, (), 0)
    assert not list((tmp_path / "archive").glob(".*")), "no temporary file left"
    store.close()


def test_expire_in_batches_and_duplicates_of_expired_messages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_maintenance, "EXPIRE_BATCH_MESSAGES", 4)
    store = opened(tmp_path / "db")
    sent = [r.message for r in store.commit([req("alice", i, 1, body=bytes([i])) for i in range(10)], [], now_ms=NOW)]
    stats = storage_maintenance.expire(store, now_ms=NOW + 1, max_age_s=0, max_bytes=None, archive_dir=tmp_path / "a")
    assert stats.messages_expired == 10 and len(stats.archives) == 3 and stats.idempotency_purged == 0
    assert [
        p.name.endswith(s) for p, s in zip(stats.archives, ["Z.jsonl.gz", "-1.jsonl.gz", "-2.jsonl.gz"], strict=True)
    ]
    assert [m for p in stats.archives for m in read_archive(p, store.values)] == sent
    assert storage_maintenance.store_stats(store)["expiry_entries"] == 0 and all_messages(store, 1) == []
    [dup] = store.commit([req("alice", 3, 1, body=bytes([3]))], [], now_ms=NOW + 2)
    assert dup == SendResult(OK, True, sent[3], ("alice", "agent")), "rebuilt from the idempotency record"
    assert store.last_seq(1) == 10, "the last seq outlives the last message"
    [new] = store.commit([req("alice", 50, 1)], [], now_ms=NOW + 3)
    assert new.message is not None and new.message.seq == 11, "sequence numbers never restart"
    store.close()


def test_expire_by_bytes_removes_the_oldest(tmp_path: Path) -> None:
    store = opened(tmp_path / "db")
    body = os.urandom(2000)
    for t in range(20):
        store.commit([req("alice", t * 10 + i, 1 + i % 3, body=body) for i in range(10)], [], now_ms=NOW + t)
    used = storage_maintenance.store_stats(store)["used_bytes"]
    stats = storage_maintenance.expire(
        store, now_ms=NOW + 20, max_age_s=None, max_bytes=used // 2, archive_dir=tmp_path / "a"
    )
    assert storage_maintenance.store_stats(store)["used_bytes"] <= used // 2
    assert 50 <= stats.messages_expired < 200
    archived = [m for p in stats.archives for m in read_archive(p, store.values)]
    kept = [m for conv in (1, 2, 3) for m in all_messages(store, conv)]
    assert len(archived) + len(kept) == 200
    assert max(m.timestamp_ms for m in archived) <= min(m.timestamp_ms for m in kept)
    store.close()


def test_backup_while_writing_is_consistent(tmp_path: Path) -> None:
    store = opened(tmp_path / "db")
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            store.commit([req(f"u{c}", n + i, c) for i in range(8) for c in [1 + (n + i) % 4]], [], now_ms=NOW)
            n += 8

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.05)
        storage_maintenance.backup(store, tmp_path / "b1")
        time.sleep(0.05)
        storage_maintenance.backup(store, tmp_path / "b2")
    finally:
        stop.set()
        thread.join()
    with pytest.raises(FileExistsError):
        storage_maintenance.backup(store, tmp_path / "b1")
    for name in ("b1", "b2"):
        copy = opened(tmp_path / name)
        ids = [m.server_msg_id for conv in copy.conversations_of("agent") for m in assert_gapless(copy, conv)]
        assert ids and len(ids) == storage_maintenance.store_stats(copy)["idempotency_entries"]
        [new] = copy.commit([req("u1", 1 << 40, 1)], [], now_ms=NOW)
        assert new.message is not None and new.message.server_msg_id > max(ids)
        copy.close()
    store.close()


# --- kill -9 ------------------------------------------------------------------------------------------------

CHILD = r"""
import sys, time
from pathlib import Path
from kefu.server.engine.messages import SendRequest
from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage.store import Store

path = Path(sys.argv[1])
store = Store(path, map_size=256 << 10, sealer=sealer_of(path.parent, "sm4-gcm"))  # small: the map grows, too
i = int(sys.argv[2])
while True:
    batch = []
    for _ in range(1 + i % 7):
        conv = 1 + i % 5
        batch.append(SendRequest(f"u{conv}", i.to_bytes(16, "big"), conv, 1, b"m" * (i % 500), (), ("agent",)))
        i += 1
    j = max(i - 5, 0)  # a resend of an earlier message: stored once, acknowledged again
    batch.append(SendRequest(f"u{1 + j % 5}", j.to_bytes(16, "big"), 1 + j % 5, 1, b"", (), ("agent",)))
    results = store.commit(batch, [], now_ms=int(time.time() * 1000))
    sys.stdout.write("".join(
        f"{m.sender} {m.client_msg_id.hex()} {m.conversation_id} {m.seq} {m.server_msg_id}\n"
        for r in results for m in [r.message]
    ))
    sys.stdout.flush()
"""


def run_and_kill(path: Path, start: int, acked: dict[tuple[str, str], tuple[int, int, int]]) -> None:
    """Run CHILD, read acknowledgements for a moment, SIGKILL it mid-load; add what it acknowledged."""
    lines = lines_until_killed([sys.executable, "-c", CHILD, str(path), str(start)], 0.4, 3000)
    for line in lines:
        if line.endswith("\n"):  # a line cut by the kill was never fully acknowledged
            sender, client_msg_id, conv, seq, server_msg_id = line.split()
            ack = int(conv), int(seq), int(server_msg_id)
            assert acked.setdefault((sender, client_msg_id), ack) == ack
    assert len(acked) > 20


def test_every_acknowledged_message_survives_kill_9(tmp_path: Path) -> None:
    acked: dict[tuple[str, str], tuple[int, int, int]] = {}
    for round_, start in enumerate((0, 1_000_000)):
        run_and_kill(tmp_path / "db", start, acked)
        store = opened(tmp_path / "db")
        stored = {}
        for conv in range(1, 6):
            for m in assert_gapless(store, conv):
                key = (m.sender, m.client_msg_id.hex())
                assert key not in stored, "stored exactly once"
                stored[key] = (m.conversation_id, m.seq, m.server_msg_id)
        assert len(set(stored.values())) == len(stored)
        missing = {k: v for k, v in acked.items() if stored.get(k) != v}
        assert not missing, f"round {round_}: acknowledged but not stored as acknowledged: {list(missing.items())[:5]}"
        [after] = store.commit([req("u1", (1 << 60) + round_, 1)], [], now_ms=NOW)
        assert after.message is not None
        assert after.message.server_msg_id > max(v[2] for v in stored.values())
        assert after.message.seq == len(all_messages(store, 1))
        store.close()


# --- GroupCommitter -----------------------------------------------------------------------------------------


class Commits:
    """What the committer's observer saw, on the writer thread: (start, writes) of each commit and the thread's nice
    value."""

    def __init__(self) -> None:
        self.starts: list[tuple[float, int]] = []
        self.writer_nice = 0

    def __call__(self, writes: int, seconds: float) -> None:
        self.starts.append((time.monotonic() - seconds, writes))
        self.writer_nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def open_log(store: Store, commits: Commits, **settings: Any) -> Conversations:
    """The server's write path over `store` (replayed, not started), observed by `commits`."""
    return open_conversations(store, asyncio.get_running_loop(), LogSettings(**settings), observer=commits)


@pytest.mark.asyncio
async def test_group_commit_batches_in_order_with_one_wakeup_per_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    wakeups, commits, committed = [0], Commits(), []
    real = loop.call_soon_threadsafe

    def counting(callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        wakeups[0] += getattr(callback, "__name__", "") == "_deliver"
        return real(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    log = open_log(store, commits)
    committer = log.committer
    committer.on_committed = committed.extend
    results: list[tuple[int, SendResult]] = []
    committer.submit(req("alice", 0, 1), lambda r: results.append((0, r)))
    assert committer.queue_depth == 1, "items submitted before start() wait for it"
    log.start()
    n = 2000
    for i in range(1, n):
        committer.submit(req("alice", i, 1), lambda r, i=i: results.append((i, r)))
        if i % 100 == 99:
            committer.submit_cursor(CursorUpdate("agent", 1, i))
            await asyncio.sleep(0.003)  # longer than the window: the next items form another batch
    await log.close()
    assert [i for i, _ in results] == list(range(n)), "callbacks in submission order"
    assert [r.message.seq for _, r in results if r.message] == list(range(1, n + 1))
    assert 1 < len(commits.starts) < n / 10, "batching happened"
    assert wakeups[0] == len(commits.starts)
    assert sum(size for _, size in commits.starts) == n + 20
    assert [item for item, _ in committed if isinstance(item, SendRequest)] == [req("alice", i, 1) for i in range(n)]
    assert sum(result is None for _, result in committed) == 20
    assert store.cursor("agent", 1) == 1999 and committer.queue_depth == 0, "indexed at close"
    assert log.counters()["messages_logged"] == n == log.counters()["messages_indexed"]
    with pytest.raises(RuntimeError):
        committer.submit(req("alice", 0, 1), print)


@pytest.mark.asyncio
async def test_group_commit_window_and_max_batch(store: Store) -> None:
    commits = Commits()
    log = open_log(store, commits, window_s=0.2, max_batch=8)
    committer = log.committer
    log.start()
    done = asyncio.Event()
    await asyncio.sleep(0.01)  # idle
    submitted = time.monotonic()
    committer.submit(req("alice", 0, 1), lambda r: done.set())
    await done.wait()
    assert commits.starts[0][0] - submitted < 0.15, "an idle committer commits at once"
    done.clear()
    submitted = time.monotonic()
    committer.submit(req("alice", 1, 1), lambda r: done.set())
    await done.wait()
    spacing = commits.starts[1][0] - commits.starts[0][0]
    assert spacing >= 0.19 and commits.starts[1][0] - submitted < 1.0, "commits start at most once per window"
    done.clear()
    submitted = time.monotonic()
    for i in range(2, 10):
        committer.submit(req("alice", i, 1), lambda r: done.set())
    await done.wait()
    assert commits.starts[2][1] == 8 and commits.starts[2][0] - submitted < 0.15, "max_batch cuts the window"
    await log.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
@pytest.mark.asyncio
async def test_group_commit_thread_runs_at_its_own_nice_value(store: Store) -> None:
    loop = asyncio.get_running_loop()
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    commits = Commits()
    log = open_log(store, commits, nice=2)  # raising one's nice value needs no privilege
    done = loop.create_future()
    log.submit(req("alice", 0, 1), done.set_result)
    log.start()
    await done
    await log.close()
    assert commits.writer_nice == min(19, mine + 2), "the writer thread's own value, set from the thread"
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine, "the loop's thread is untouched"


@pytest.mark.asyncio
async def test_group_commit_cursor_only_batches(store: Store) -> None:
    loop = asyncio.get_running_loop()
    log = open_log(store, Commits(), window_s=0.001)
    log.start()
    sent = loop.create_future()
    log.submit(req("alice", 0, 1), sent.set_result)
    assert (await sent).status == OK
    log.committer.submit_cursor(CursorUpdate("agent", 1, 1))
    for _ in range(200):
        if log.view.cursor("agent", 1) == 1:
            break
        await asyncio.sleep(0.005)
    assert log.view.cursor("agent", 1) == 1, "a cursor alone wakes the writer"
    await log.close()
    assert store.cursor("agent", 1) == 1


def test_a_map_grown_by_another_process_is_adopted(tmp_path: Path) -> None:
    """`kefu app add` or `kefu backup` in another process may grow the map while the server serves."""
    store = opened(tmp_path / "wal", map_size=256 << 10)
    store.put_app("before", b"x")
    script = (
        "import sys; from pathlib import Path; from kefu.server.storage.store import Store\n"
        "from kefu.server.identity.datakeys import sealer_of\n"
        "p = Path(sys.argv[1]); s = Store(p, map_size=256 << 10, sealer=sealer_of(p.parent, 'sm4-gcm'))\n"
        "for i in range(300): s.put_app(f'other-{i}', bytes(8000))\n"
        "s.close()\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "wal")], check=True, timeout=60)
    assert store.get_app("other-299") == bytes(8000)
    store.put_app("after", b"y")
    results = store.commit([SendRequest("a", bytes(16), 1, 1, b"hi", (), ("b",))], [], now_ms=1)
    assert results[0].status == 0
    store.close()
