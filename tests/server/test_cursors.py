"""Stored cursors written behind (kefu.server.storage.cursors), against a real Store and GroupCommitter."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import lmdb
import pytest

from kefu.server.engine.messages import SendRequest
from kefu.server.storage.committer import GroupCommitter
from kefu.server.storage.cursors import CursorWriteBehind
from kefu.server.storage.store import Store

NOW = 1_700_000_000_000


class FlakyStore(Store):
    """A real Store whose next commit can be made to fail, and which counts the cursor updates it is handed."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.fail_next = False
        self.cursor_writes = 0

    def commit(self, requests, cursors, *, now_ms):  # type: ignore[no-untyped-def]
        if self.fail_next:
            self.fail_next = False
            raise lmdb.DiskError("injected")
        self.cursor_writes += len(cursors)
        return super().commit(requests, cursors, now_ms=now_ms)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path: Path) -> Iterator[FlakyStore]:
    s = FlakyStore(tmp_path / "db")
    for n in range(1, 6):  # conversation 1 between alice and agent: seqs 1..5
        s.commit([SendRequest("alice", n.to_bytes(16, "big"), 1, 1, b"hi", (), ("agent",))], [], now_ms=NOW)
    yield s
    s.close()


async def settle(until: Callable[[], bool]) -> None:
    for _ in range(400):
        if until():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the committer did not get there")


def start(store: FlakyStore, delay_s: float) -> tuple[Clock, GroupCommitter, CursorWriteBehind]:
    """A running committer and a write-behind on it, as the hub and the app wire them."""
    clock = Clock()
    committer = GroupCommitter(store, asyncio.get_running_loop(), window_s=0.001)
    cursors = CursorWriteBehind(store, committer, delay_s, clock)
    committer.on_committed = cursors.committed
    committer.start()
    return clock, committer, cursors


@pytest.mark.asyncio
async def test_advances_are_read_at_once_and_written_after_the_delay(store: FlakyStore) -> None:
    clock, committer, cursors = start(store, 5.0)
    cursors.advance("agent", 1, 2)
    cursors.advance("agent", 1, 4)
    cursors.advance("agent", 1, 3)  # a rewound stream's lower ack never moves a cursor back
    assert cursors.read("agent", 1) == 4 and store.cursor("agent", 1) == 0
    assert cursors.pending("agent") == [(1, 4, 5)], "resume-all starts from the unsaved cursor"
    cursors.save_due()
    await asyncio.sleep(0.05)
    assert store.cursor_writes == 0, "not before the delay"
    clock.t += 5.0
    cursors.save_due()
    await settle(lambda: len(cursors) == 0)
    assert store.cursor("agent", 1) == 4 and store.cursor_writes == 1, "three advances, one write"
    cursors.advance("agent", 1, 5)
    assert cursors.pending("agent") == [], "nothing left to resume"
    cursors.save_due(everything=True)  # a drain does not wait for the delay
    await committer.stop()
    assert store.cursor("agent", 1) == 5 and len(cursors) == 0


@pytest.mark.asyncio
async def test_a_failed_commit_gives_the_cursor_back(store: FlakyStore) -> None:
    clock, committer, cursors = start(store, 1.0)
    cursors.advance("alice", 1, 5)
    cursors.advance("agent", 1, 3)
    store.fail_next = True
    clock.t += 1.0
    cursors.save_due()
    await settle(lambda: not store.fail_next and len(cursors._saving) == 0)
    assert store.cursor("alice", 1) == 0 and cursors.read("alice", 1) == 5, "kept in memory, still read"
    assert len(cursors) == 2
    clock.t += 1.0
    cursors.save_due()
    await settle(lambda: len(cursors) == 0)
    assert (store.cursor("alice", 1), store.cursor("agent", 1)) == (5, 3)
    await committer.stop()


@pytest.mark.asyncio
async def test_entries_are_saved_oldest_first_as_they_come_due(store: FlakyStore) -> None:
    clock, committer, cursors = start(store, 2.0)
    cursors.advance("alice", 1, 1)
    clock.t += 1.0
    cursors.advance("agent", 1, 2)
    clock.t += 1.0
    cursors.advance("alice", 1, 5)  # folded into the entry created first
    cursors.save_due()
    await settle(lambda: store.cursor("alice", 1) == 5)
    assert store.cursor("agent", 1) == 0, "one second unsaved: not due yet"
    clock.t += 1.0
    cursors.save_due()
    await settle(lambda: store.cursor("agent", 1) == 2)
    await committer.stop()
    assert store.cursor_writes == 2


@pytest.mark.asyncio
async def test_advances_of_one_cursor_are_coalesced_into_one_write(store: FlakyStore) -> None:
    """Many cumulative acks of one (user, conversation) become one write of the highest (this folding moved here
    from the committer, which used to coalesce each batch's updates)."""
    _, committer, cursors = start(store, 5.0)
    for user, seq in (("alice", 3), ("alice", 5), ("agent", 2), ("alice", 4)):
        cursors.advance(user, 1, seq)
    cursors.save_due(everything=True)
    await committer.stop()
    assert (store.cursor("alice", 1), store.cursor("agent", 1)) == (5, 2)
    assert store.cursor_writes == 2, "one write per (user, conversation)"
