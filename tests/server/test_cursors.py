"""Cursor advances on their way into the log (kefu.server.storage.cursors), over a real store, log and committer."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kefu.server.engine.messages import SendRequest
from kefu.server.storage.conversations import LOG_DIR, Conversations, LogSettings, open_conversations
from kefu.server.storage.logfile import read_log
from kefu.server.storage.records import Cursors, Kind, decode_record
from kefu.server.storage.schema import LogPosition
from kefu.server.storage.store import Store

NOW = 1_700_000_000_000


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "db")
    for n in range(1, 6):  # conversation 1 between alice and agent: seqs 1..5
        s.commit([SendRequest("alice", n.to_bytes(16, "big"), 1, 1, b"hi", (), ("agent",))], [], now_ms=NOW)
    yield s
    s.close()


def logged_cursors(store: Store) -> list[tuple[str, int, int]]:
    """Every cursor entry the log holds, in order."""
    log_id, _ = store.log_state()
    return [
        update
        for kind, payload, _ in read_log(store.path / LOG_DIR, LogPosition.first(log_id))
        if kind == Kind.CURSORS
        for update in decode_cursors(payload)
    ]


def decode_cursors(payload: bytes) -> tuple[tuple[str, int, int], ...]:
    record = decode_record(Kind.CURSORS, payload)
    assert isinstance(record, Cursors)
    return record.updates


async def settle(until: Callable[[], bool]) -> None:
    for _ in range(400):
        if until():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the committer did not get there")


def start(store: Store, delay_s: float) -> tuple[Clock, Conversations]:
    """A running log whose cursors use `clock` (the event loop's time, as the server's do, but under test control)."""
    log = open_conversations(store, asyncio.get_running_loop(), LogSettings(window_s=0.001, cursor_delay_s=delay_s))
    clock = Clock()
    log.cursors.clock = clock
    log.start()
    return clock, log


@pytest.mark.asyncio
async def test_advances_are_read_at_once_and_logged_with_the_next_commit(store: Store) -> None:
    _, log = start(store, 0.0)
    log.advance_cursor("agent", 1, 2)
    log.advance_cursor("agent", 1, 4)
    log.advance_cursor("agent", 1, 3)  # a rewound stream's lower ack never moves a cursor back
    assert log.cursor("agent", 1) == 4 and log.view.cursor("agent", 1) == 0, "read at once, durable later"
    assert log.pending("agent") == [(1, 4, 5)], "resume-all starts from the cursor not yet logged"
    await settle(lambda: len(log.cursors) == 0)
    assert log.view.cursor("agent", 1) == 4 and logged_cursors(store) == [("agent", 1, 4)], "three advances, one entry"
    log.advance_cursor("agent", 1, 5)
    assert log.pending("agent") == [], "nothing left to resume"
    await log.close()
    assert store.cursor("agent", 1) == 5, "logged at close, and indexed"


@pytest.mark.asyncio
async def test_a_delay_holds_advances_back(store: Store) -> None:
    clock, log = start(store, 5.0)
    log.advance_cursor("agent", 1, 2)
    log.cursors.save_due()
    await asyncio.sleep(0.05)
    assert logged_cursors(store) == [], "not before the delay"
    clock.t += 5.0
    log.cursors.save_due()
    await settle(lambda: len(log.cursors) == 0)
    assert logged_cursors(store) == [("agent", 1, 2)]
    log.advance_cursor("agent", 1, 4)
    await log.close()  # a drain does not wait for the delay
    assert store.cursor("agent", 1) == 4


@pytest.mark.asyncio
async def test_entries_are_saved_oldest_first_as_they_come_due(store: Store) -> None:
    clock, log = start(store, 2.0)
    log.advance_cursor("alice", 1, 1)
    clock.t += 1.0
    log.advance_cursor("agent", 1, 2)
    clock.t += 1.0
    log.advance_cursor("alice", 1, 5)  # folded into the entry created first
    log.cursors.save_due()
    await settle(lambda: log.view.cursor("alice", 1) == 5)
    assert log.view.cursor("agent", 1) == 0, "one second unsaved: not due yet"
    clock.t += 1.0
    log.cursors.save_due()
    await settle(lambda: log.view.cursor("agent", 1) == 2)
    await log.close()
    assert sorted(logged_cursors(store)) == [("agent", 1, 2), ("alice", 1, 5)]


@pytest.mark.asyncio
async def test_a_failed_log_keeps_the_cursor_readable(store: Store) -> None:
    _, log = start(store, 0.0)
    full = os.open("/dev/full", os.O_WRONLY)  # the disk fails: every write, ENOSPC
    os.dup2(full, log.committer.log_writer.fileno())
    os.close(full)
    log.advance_cursor("alice", 1, 5)
    await settle(lambda: log.committer.failure is not None and log.cursors.unsaved == len(log.cursors) == 1)
    assert log.cursor("alice", 1) == 5 and log.view.cursor("alice", 1) == 0, "kept in memory, still read"
    await log.close()
    assert store.cursor("alice", 1) == 0


@pytest.mark.asyncio
async def test_advances_of_one_cursor_are_coalesced_into_one_entry(store: Store) -> None:
    """Many cumulative acks of one (user, conversation) become one entry of the highest."""
    _, log = start(store, 5.0)
    for user, seq in (("alice", 3), ("alice", 5), ("agent", 2), ("alice", 4)):
        log.advance_cursor(user, 1, seq)
    await log.close()
    assert (store.cursor("alice", 1), store.cursor("agent", 1)) == (5, 2)
    assert sorted(logged_cursors(store)) == [("agent", 1, 2), ("alice", 1, 5)], "one entry per (user, conversation)"
