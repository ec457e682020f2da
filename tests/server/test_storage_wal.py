"""The write path end to end (kefu.server.storage.conversations): log, overlay, indexer and replay, on real LMDB
environments and log files, with real processes killed and real file descriptors failing."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kefu.protocol.errors import ErrorCode
from kefu.server.engine.messages import SendRequest, SendResult, StoredMessage
from kefu.server.storage import maintenance
from kefu.server.storage.conversations import LOG_DIR, Conversations, LogSettings, open_conversations
from kefu.server.storage.datadir import OLD_STORE_MARKER
from kefu.server.storage.schema import LogPosition
from kefu.server.storage.store import Store

from ..tmpfs import mounted_tmpfs
from .children import lines_until_killed

OK, UNAVAILABLE = ErrorCode.OK, ErrorCode.STORAGE_UNAVAILABLE
LAZY = LogSettings(index_interval_s=3600.0)  # nothing is indexed before close(): everything lives in the log
TABLES = ("service",)


def req(sender: str, n: int, conv: int, *, body: bytes = b"hi", **kw: Any) -> SendRequest:
    return SendRequest(sender, n.to_bytes(16, "big"), conv, 1, body, (), create_members=("agent",), **kw)


def open_log(store: Store, settings: LogSettings = LAZY, **kw: Any) -> Conversations:
    log = open_conversations(store, asyncio.get_running_loop(), settings, **kw)
    log.start()
    return log


async def send(log: Conversations, *requests: SendRequest) -> list[SendResult]:
    loop = asyncio.get_running_loop()
    futures = [loop.create_future() for _ in requests]
    for r, f in zip(requests, futures, strict=True):
        log.submit(r, f.set_result)
    return list(await asyncio.gather(*futures))


async def settle(until: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "did not get there"
        await asyncio.sleep(0.005)


def seqs(messages: list[StoredMessage]) -> list[int]:
    return [m.seq for m in messages]


@pytest.mark.asyncio
async def test_reads_merge_the_log_with_the_index(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", tables=TABLES)
    store.commit([req("alice", 0, 1)], [], now_ms=1)  # indexed before the log starts
    log = open_log(store)
    results = await send(
        log,
        *(req("alice", i, 1) for i in range(1, 5)),
        req("bob", 9, 2, puts=(("service", b"k2", b"v2"), ("service", b"k1", b"v1"))),
        req("alice", 1, 1),  # a duplicate of one in the same batch
    )
    assert [r.status for r in results] == [OK] * 6 and results[-1].duplicate
    assert results[-1].message == results[0].message
    assert store.last_seq(1) == 1 and store.get_record("service", b"k1") is None, "in the log only"
    assert seqs(log.read_range(1, 0, 0, 100)) == [1, 2, 3, 4, 5] and log.last_seq(1) == 5
    assert seqs(log.read_range(1, 1, 4, 2)) == [2, 3] and seqs(log.read_range(1, 3, 0, 100)) == [4, 5]
    assert log.members(2) == ("bob", "agent") and log.pending("agent") == [(1, 0, 5), (2, 0, 1)]
    assert log.scan("service") == [(b"k1", b"v1"), (b"k2", b"v2")] and log.last_key("service") == b"k2"
    await send(log, req("bob", 10, 2, puts=(("service", b"k2", None),)))
    assert log.scan("service") == [(b"k1", b"v1")] and log.last_key("service") == b"k1"
    assert log.get_record("service", b"k2") is None and log.get_record("service", b"k1") == b"v1"
    log.advance_cursor("agent", 1, 5)
    await settle(lambda: log.view.cursor("agent", 1) == 5)
    assert log.pending("agent") == [(2, 0, 2)]
    await log.close()
    assert store.last_seq(1) == 5 and store.scan("service") == [(b"k1", b"v1")] and store.cursor("agent", 1) == 5
    store.close()


@pytest.mark.asyncio
async def test_replay_after_a_stop_without_indexing(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    log = open_log(store)
    first = await send(log, *(req("alice", i, 1 + i % 2) for i in range(10)))
    await log.committer.stop()  # the log is written; the indexer never ran (as if killed now)
    await log.indexer.stop_async(index_rest=False)
    store.close()
    store = Store(tmp_path / "store")
    assert store.last_seq(1) == 0, "nothing indexed yet"
    log = open_log(store)  # replays first
    assert store.last_seq(1) == 5 and store.last_seq(2) == 5
    again = await send(log, req("alice", 3, 2), req("alice", 100, 1))
    assert again[0].duplicate and again[0].message == first[3].message
    assert again[1].message is not None and again[1].message.seq == 6 and again[1].message.server_msg_id == 11
    await log.close()
    store.close()


@pytest.mark.asyncio
async def test_reads_never_see_a_message_before_its_fdatasync(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    log = open_log(store)
    await send(log, req("alice", 0, 1))
    writer = log.committer.log_writer
    entered, release = threading.Event(), threading.Event()

    def held_fdatasync(fd: int) -> None:
        entered.set()
        release.wait(10)
        os.fdatasync(fd)

    writer.sync = held_fdatasync
    loop = asyncio.get_running_loop()
    acked, duplicate = loop.create_future(), loop.create_future()
    log.submit(req("alice", 1, 1), acked.set_result)
    await loop.run_in_executor(None, entered.wait, 10)
    log.submit(req("alice", 1, 1), duplicate.set_result)  # its original is written, not yet durable
    await asyncio.sleep(0.05)
    assert seqs(log.read_range(1, 0, 0, 10)) == [1] and log.last_seq(1) == 1 and log.pending("agent") == [(1, 0, 1)]
    assert not acked.done() and not duplicate.done(), "neither is answered before the fdatasync returns"
    release.set()
    assert (await acked).message is not None and (await duplicate).duplicate
    assert (await duplicate).message == (await acked).message and log.last_seq(1) == 2
    await log.close()
    store.close()


def fail_the_disk(log: Conversations) -> None:
    """Every later write of the log's current segment fails with ENOSPC (its fd now points to /dev/full)."""
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, log.committer.log_writer.fileno())
    os.close(full)


@pytest.mark.asyncio
async def test_a_failed_log_write_is_fatal(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    fatal: list[BaseException] = []
    log = open_log(store, on_fatal=fatal.append)
    kept = await send(log, *(req("alice", i, 1) for i in range(3)))
    fail_the_disk(log)
    failed = await send(log, req("alice", 3, 1), req("alice", 4, 1))
    assert [r.status for r in failed] == [UNAVAILABLE] * 2
    await settle(lambda: bool(fatal))
    assert isinstance(fatal[0], OSError) and len(fatal) == 1
    later = await send(log, req("alice", 5, 1))
    assert later[0].status == UNAVAILABLE and len(fatal) == 1, "nothing more is sequenced"
    assert log.last_seq(1) == 3, "no gap, and nothing that was not durable is read"
    await log.close()
    store.close()
    store = Store(tmp_path / "store")
    log = open_log(store)
    assert seqs(log.read_range(1, 0, 0, 10)) == [1, 2, 3]
    assert [m.message for m in await send(log, req("alice", 1, 1))] == [kept[1].message]
    [new] = await send(log, req("alice", 3, 1))
    assert new.message is not None and new.message.seq == 4, "the refused SEND is stored on its retry"
    await log.close()
    store.close()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Any:
    """A 1 MiB tmpfs (a full disk that is quick to fill); skipped where mounting is not allowed."""
    with mounted_tmpfs(tmp_path / "tmpfs", "1m") as mount:
        yield mount


@pytest.mark.asyncio
async def test_a_full_filesystem_refuses_sends_and_is_not_fatal(tmpfs: Path) -> None:
    """No room for the log's next segment: the batch is refused whole (STORAGE_UNAVAILABLE), nothing of it written,
    and the writer goes on; once there is room again, SENDs are taken, gapless."""
    ballast = tmpfs / "ballast"
    ballast.write_bytes(bytes(300 << 10))
    store = Store(tmpfs / "store", map_size=1 << 20)
    fatal: list[BaseException] = []
    log = open_log(store, LogSettings(index_interval_s=3600.0, segment_bytes=256 << 10), on_fatal=fatal.append)
    statuses: list[int] = []
    body = os.urandom(20_000)
    for i in range(100):
        statuses += [r.status for r in await send(log, req("alice", i, 1, body=body))]
        if statuses[-1] != OK:
            break
    assert statuses[-1] == UNAVAILABLE and set(statuses[:-1]) == {OK}
    [again] = await send(log, req("alice", 1000, 1, body=body))
    assert again.status == UNAVAILABLE and log.last_seq(1) == len(statuses) - 1, "what was taken is read"
    ballast.unlink()  # the operator frees room
    [later] = await send(log, req("alice", 1001, 1, body=body))
    assert later.status == OK and later.message is not None and later.message.seq == len(statuses)
    assert not fatal and log.committer.refusals.total == 0, "refusals ended: counted, logged, reset"
    await log.close()
    store.close()


@pytest.mark.asyncio
async def test_a_failing_indexer_turns_sends_away_past_the_bound(tmp_path: Path) -> None:
    store = Store(tmp_path / "store", map_size=256 << 10, max_map_size=512 << 10)
    settings = LogSettings(index_interval_s=0.02, max_unindexed_bytes=300 << 10)
    log = open_log(store, settings)
    body = os.urandom(60_000)
    statuses = [r.status for r in await send(log, req("alice", 0, 1, body=body))]
    await settle(lambda: log.indexer.position.lsn > 1)  # the worker is up (it may start late on a busy host)
    for i in range(1, 40):  # 2.4 MB: more than the map may ever hold
        statuses += [r.status for r in await send(log, req("alice", i, 1, body=body))]
        await asyncio.sleep(0.01)
    await settle(lambda: log.indexer.failure is not None)  # the map is full
    stored = statuses.count(OK)
    assert UNAVAILABLE in statuses and 5 <= stored < 40
    assert seqs(log.read_range(1, 0, 0, 100)) == list(range(1, stored + 1)), "what was taken is read, gapless"
    store.max_map_size = 64 << 20  # the operator raises the cap ...
    assert log.indexer.pid is not None
    os.kill(log.indexer.pid, signal.SIGKILL)  # ... and the indexer process dies: a new one takes the new cap
    await settle(lambda: log.indexer.failure is None and log.view.overlay.size == 0)
    [later] = await send(log, req("alice", 100, 1, body=body))
    assert later.status == OK and later.message is not None and later.message.seq == stored + 1
    await log.close()
    assert store.last_seq(1) == stored + 1
    store.close()


@pytest.mark.asyncio
async def test_reads_from_other_threads_while_indexing(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    log = open_log(store, LogSettings(index_interval_s=0.001, index_batch_bytes=4096))
    stop, errors, reads = threading.Event(), list[BaseException](), [0]

    def reader() -> None:
        try:
            while not stop.is_set():
                last = log.last_seq(1)
                messages = log.read_range(1, 0, 0, 1 << 20)
                assert seqs(messages) == list(range(1, len(messages) + 1)) and len(messages) >= last
                reads[0] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(0, 600, 20):
        await send(log, *(req("alice", i + j, 1) for j in range(20)))
    await settle(lambda: log.indexer.messages_indexed == 600 and log.view.overlay.size == 0)  # read while it indexes
    stop.set()
    for t in threads:
        t.join()
    assert not errors and reads[0] > 0 and log.indexer.messages_indexed > 0
    await log.close()
    store.close()


@pytest.mark.asyncio
async def test_a_backup_while_writing_holds_every_acknowledged_message(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    log = open_log(store, LogSettings(index_interval_s=0.3))
    acked: list[StoredMessage] = []
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    async def write() -> None:
        n = 0
        while not stop.is_set():
            acked.extend(r.message for r in await send(log, *(req("alice", n + i, 1 + i % 3) for i in range(8))))
            n += 8

    writer = asyncio.create_task(write())
    await asyncio.sleep(0.4)
    before = list(acked)
    await loop.run_in_executor(None, maintenance.backup, store, tmp_path / "backup")
    stop.set()
    await writer
    await log.close()
    store.close()
    assert sorted(p.name for p in (tmp_path / "backup").iterdir()) == ["data.mdb"]
    copy = Store(tmp_path / "backup")
    for conv in (1, 2, 3):
        mine = [m for m in before if m.conversation_id == conv]
        assert copy.read_range(conv, 0, 0, 1 << 20)[: len(mine)] == mine
    log_id, position = copy.log_state()
    assert position == LogPosition.first(log_id), "a new, empty log: a restore starts from the copy alone"
    copy.close()


CHILD = r"""
import asyncio, sys
from pathlib import Path
from kefu.server.engine.messages import SendRequest
from kefu.server.storage.conversations import LogSettings, open_conversations
from kefu.server.storage.store import Store

async def main(path, start):
    store = Store(path, map_size=256 << 10)
    log = open_conversations(store, asyncio.get_running_loop(), LogSettings(index_interval_s=float(sys.argv[3])))
    log.start()
    i = start
    while True:
        futures = []
        for _ in range(1 + i % 7):
            conv = 1 + i % 5
            request = SendRequest(f"u{conv}", i.to_bytes(16, "big"), conv, 1, b"m" * (i % 500), (), ("agent",))
            future = asyncio.get_running_loop().create_future()
            log.submit(request, future.set_result)
            futures.append(future)
            i += 1
        j = max(i - 5, 0)  # a resend of an earlier message: stored once, acknowledged again
        future = asyncio.get_running_loop().create_future()
        log.submit(SendRequest(f"u{1 + j % 5}", j.to_bytes(16, "big"), 1 + j % 5, 1, b"", (), ("agent",)),
                   future.set_result)
        futures.append(future)
        out = []
        for r in await asyncio.gather(*futures):
            m = r.message
            out.append(f"m {m.sender} {m.client_msg_id.hex()} {m.conversation_id} {m.seq} {m.server_msg_id}\n")
            log.advance_cursor("agent", m.conversation_id, m.seq)
        conv = 1 + i % 5
        if log.view.cursor("agent", conv):  # durable: logged with an earlier commit
            out.append(f"c agent {conv} {log.view.cursor('agent', conv)}\n")
        sys.stdout.write("".join(out))
        sys.stdout.flush()

asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
"""


def run_and_kill(path: Path, start: int, interval: float, acked: dict[Any, Any], cursors: dict[int, int]) -> None:
    """Run CHILD, read acknowledgements for a moment, SIGKILL it mid-load; add what it acknowledged."""
    lines = lines_until_killed([sys.executable, "-c", CHILD, str(path), str(start), str(interval)], 0.6, 4000)
    for line in lines:
        if not line.endswith("\n"):  # a line cut by the kill was never fully acknowledged
            continue
        if line.startswith("m "):
            _, sender, client_msg_id, conv, seq, server_msg_id = line.split()
            ack = int(conv), int(seq), int(server_msg_id)
            assert acked.setdefault((sender, client_msg_id), ack) == ack
        elif line.startswith("c "):
            _, _, conv, seq = line.split()
            cursors[int(conv)] = max(cursors.get(int(conv), 0), int(seq))
    assert len(acked) > 20


@pytest.mark.parametrize("interval", [0.05, 3600.0], ids=["indexing", "log-only"])
@pytest.mark.asyncio
async def test_every_acknowledged_message_and_cursor_survives_kill_9(tmp_path: Path, interval: float) -> None:
    acked: dict[tuple[str, str], tuple[int, int, int]] = {}
    cursors: dict[int, int] = {}
    for round_, start in enumerate((0, 1_000_000)):
        await asyncio.get_running_loop().run_in_executor(
            None, run_and_kill, tmp_path / "store", start, interval, acked, cursors
        )
        store = Store(tmp_path / "store")
        log = open_log(store)  # replays
        stored = {}
        for conv in range(1, 6):
            messages = log.read_range(conv, 0, 0, 1 << 20)
            assert seqs(messages) == list(range(1, log.last_seq(conv) + 1)), "gapless"
            for m in messages:
                key = (m.sender, m.client_msg_id.hex())
                assert key not in stored, "stored exactly once"
                stored[key] = (m.conversation_id, m.seq, m.server_msg_id)
        missing = {k: v for k, v in acked.items() if stored.get(k) != v}
        assert not missing, f"round {round_}: acknowledged but not stored as acknowledged: {list(missing.items())[:5]}"
        assert all(store.cursor("agent", conv) >= seq for conv, seq in cursors.items()), "durable cursors survive"
        sender, cmid = next(iter(acked))
        [dup] = await send(log, SendRequest(sender, bytes.fromhex(cmid), 1, 1, b"", ()))
        assert dup.duplicate and dup.message is not None and dup.message.seq == acked[(sender, cmid)][1]
        [after] = await send(log, req("u1", (1 << 60) + round_, 1))
        assert after.message is not None and after.message.server_msg_id > max(v[2] for v in stored.values())
        await log.close()
        store.close()
    assert len(list((tmp_path / "store" / LOG_DIR).glob("*.wal"))) <= 8, "segments are recycled"


def test_the_store_moves_from_its_old_directory(tmp_path: Path) -> None:
    from kefu.server.storage.datadir import migrate_store_dir  # noqa: PLC0415

    old = Store(tmp_path / "wal")
    old.put_app("web", b"r")
    old.close()
    assert migrate_store_dir(tmp_path / "store", readonly=True) == tmp_path / "wal", "a reader reads it in place"
    assert migrate_store_dir(tmp_path / "store") == tmp_path / "store"
    assert (tmp_path / "wal").read_text() == OLD_STORE_MARKER, "the old name holds a file an older kefu can't open"
    store = Store(tmp_path / "store")
    assert store.get_app("web") == b"r" and store.log_state()[1].lsn == 1, "upgraded: a new log"
    store.close()
    assert migrate_store_dir(tmp_path / "store") == tmp_path / "store", "nothing left to move"
    assert migrate_store_dir(tmp_path / "store", readonly=True) == tmp_path / "store", "the marker is not a store"


def test_a_new_store_leaves_the_downgrade_marker_under_the_old_name(tmp_path: Path) -> None:
    from kefu.server.storage.datadir import migrate_store_dir  # noqa: PLC0415

    assert migrate_store_dir(tmp_path / "store", readonly=True) == tmp_path / "store"
    assert not (tmp_path / "wal").exists(), "a reader writes nothing"
    assert migrate_store_dir(tmp_path / "store") == tmp_path / "store"
    assert (tmp_path / "wal").read_text() == OLD_STORE_MARKER
    with pytest.raises(OSError):  # what an older kefu does first with its store's directory
        (tmp_path / "wal").mkdir(parents=True, exist_ok=True)
