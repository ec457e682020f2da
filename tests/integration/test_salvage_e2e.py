"""A real `kefu serve` (with worker processes) started on a stopped store with one leaf page of ``messages`` zeroed
(LMDB alone aborts the process that reads it: SIGABRT, tests/server/test_salvage.py): the check at open salvages the
store, the server starts, a SYNC of the conversation on that page gets its intact messages and a damage EVENT for
each lost one (gapless), other conversations read intact, `storage.salvaged` is logged and the damaged file is kept
aside (issue #14 point 3)."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.protocol import frames
from kefu.server.storage import pagewalk
from kefu.server.storage.preflight import PAGE_HEADER
from kefu.server.storage.schema import CONV_SEQ

from .conftest import LOAD_LIMITS, ServerProcess, running_server, served_pair
from .conftest import app_peer as peer
from .workers_harness import WORKERS

pytestmark = pytest.mark.asyncio

CONVERSATIONS = 40
PER_CONVERSATION = 5


ENV = {"KEFU_SERVER_WORKERS": str(WORKERS), **LOAD_LIMITS}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    yield from running_server(tmp_path, ENV, ("alice", "bob"))


async def fill(server: ServerProcess) -> None:
    """alice sends PER_CONVERSATION messages into each of CONVERSATIONS conversations with bob, each acknowledged."""
    alice = await peer(server, "alice")
    for seq in range(PER_CONVERSATION):
        for conv in range(1, CONVERSATIONS + 1):
            alice.send(conv, f"message {seq} of {conv}".encode() + bytes(300), to=("bob",))
        for _ in range(CONVERSATIONS):
            assert (await alice.next(frames.SendAck)).status == 0
    alice.close()


def zero_a_leaf(data: Path) -> set[int]:
    """Zero a leaf page of ``messages`` in the middle of the table; the conversations whose messages it held."""
    found = pagewalk.walk(data)
    assert found is not None
    table = found.tables["messages"]
    assert table.depth >= 2, "messages fits one page: nothing to lose alone"
    raw = data.read_bytes()
    psize = found.meta.page_size
    root = raw[table.root * psize : (table.root + 1) * psize]
    lower = PAGE_HEADER.unpack_from(root)[3]
    nodes = [struct.unpack_from("=H", root, 16 + 2 * i)[0] for i in range((lower - 16) // 2)]
    middle = nodes[len(nodes) // 2]
    lo, hi, flags = struct.unpack_from("=HHH", root, middle)
    leaf = lo | hi << 16 | flags << 32
    page = raw[leaf * psize : (leaf + 1) * psize]
    held = set()
    for i in range((PAGE_HEADER.unpack_from(page)[3] - 16) // 2):
        node = struct.unpack_from("=H", page, 16 + 2 * i)[0]
        held.add(CONV_SEQ.unpack_from(page, node + 8)[0])
    with data.open("r+b") as f:
        f.seek(leaf * psize)
        f.write(bytes(psize))
    return held


async def test_a_zeroed_leaf_is_salvaged_at_start_and_served_as_damage_events(server: ServerProcess) -> None:
    await fill(server)
    assert server.stop() == 0  # a graceful stop indexes everything into data.mdb
    hit = zero_a_leaf(server.data_dir / "store" / "data.mdb")
    good = next(c for c in range(1, CONVERSATIONS + 1) if c not in hit)

    server.start()
    bob = await peer(server, "bob")
    for conv, request in [*((c, i) for i, c in enumerate(sorted(hit), 1)), (good, 100)]:
        bob.send_frame(frames.Sync(conv, 0, PER_CONVERSATION, 100, request_id=request))
        got = [await bob.next(frames.Deliver) for _ in range(PER_CONVERSATION)]
        assert (await bob.next(frames.SyncDone)).request_id == request
        assert [d.seq for d in got] == list(range(1, PER_CONVERSATION + 1)), conv
        for d in got:
            if d.content_type == frames.ContentType.EVENT:
                assert conv in hit and json.loads(d.body) == {"event": "damaged", "conversation_id": conv, "seq": d.seq}
            else:
                assert d.body == f"message {d.seq - 1} of {conv}".encode() + bytes(300)
        if conv == good:
            assert all(d.content_type != frames.ContentType.EVENT for d in got)
    assert server.proc is not None and server.proc.poll() is None
    log = server.log.read_text()
    assert "storage.salvaged" in log and "table=messages" in log and "Traceback" not in log
    assert "worker.died" not in log
    assert len(list(server.data_dir.glob("damaged-*/data.mdb"))) == 1
    status = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "kefu.server.cli", "status", "--data-dir", str(server.data_dir),
                         "--metrics-port", str(server.metrics_port)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    damaged = [line for line in status.stdout.splitlines() if "damaged records found on read" in line]
    assert damaged and "messages" in damaged[0], status.stdout + status.stderr  # counted once, by the core


def leaf_of(data: Path, conv: int, seq: int) -> int:
    """The leaf page of ``messages`` that holds a message (found by pread, as the check at open reads)."""
    found = pagewalk.walk(data)
    assert found is not None
    table, psize = found.tables["messages"], found.meta.page_size
    key = CONV_SEQ.pack(conv, seq)
    with data.open("rb") as f:
        pgno = table.root
        for _ in range(table.depth - 1):
            page = os.pread(f.fileno(), psize, pgno * psize)
            nodes = [
                struct.unpack_from("=H", page, 16 + 2 * i)[0]
                for i in range((PAGE_HEADER.unpack_from(page)[3] - 16) // 2)
            ]
            child = nodes[0]
            for node in nodes[1:]:
                ksize = struct.unpack_from("=H", page, node + 6)[0]
                if page[node + 8 : node + 8 + ksize] > key:
                    break
                child = node
            lo, hi, flags = struct.unpack_from("=HHH", page, child)
            pgno = lo | hi << 16 | flags << 32
    return pgno


async def test_damage_while_running_aborts_the_core_once_then_the_store_is_salvaged(tmp_path: Path) -> None:
    """A leaf of ``messages`` zeroed under a running server (the damage the check at open cannot
    see): the SYNC that reads it aborts the core (SIGABRT); the supervisor stops the gateways, opens the store
    (the full check salvages it) and starts the workers again: one abort, then the conversation reads with damage
    EVENTs and the server serves on."""
    server = served_pair(tmp_path / "data", {**ENV, "KEFU_STORAGE_INDEX_INTERVAL_MS": "50"})
    server.start()
    try:
        await fill(server)
        data = server.data_dir / "store" / "data.mdb"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # indexed (every 50 ms): the conversation is in data.mdb
            await asyncio.sleep(0.2)
            found = pagewalk.walk(data)
            if found is not None and found.tables["messages"].records >= CONVERSATIONS * PER_CONVERSATION:
                break
        # a conversation whose messages run from one leaf into the next: its SYNC steps into the next leaf, zeroed
        # (mdb_cursor_next: IS_LEAF(mp) fails, abort())
        conv = next(c for c in range(2, CONVERSATIONS) if leaf_of(data, c, 1) != leaf_of(data, c, PER_CONVERSATION))
        with data.open("r+b") as f:
            f.seek(leaf_of(data, conv, PER_CONVERSATION) * 4096)
            f.write(bytes(4096))
        bob = await peer(server, "bob")
        bob.send_frame(frames.Sync(conv, 0, PER_CONVERSATION, 100, request_id=1))
        deadline = time.monotonic() + 20
        while "storage.salvage_done" not in server.log.read_text() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        log = server.log.read_text()
        assert "worker.store_damaged" in log and "SIGABRT" in log, server.log_tail()
        assert "worker.store_check" in log and "storage.salvaged" in log, server.log_tail()
        bob.close()
        deadline = time.monotonic() + 20
        while True:  # the workers start again
            try:
                bob = await peer(server, "bob")
                break
            except (TimeoutError, OSError, ConnectionError):
                assert time.monotonic() < deadline, server.log_tail()
                await asyncio.sleep(0.2)
        bob.send_frame(frames.Sync(conv, 0, PER_CONVERSATION, 100, request_id=2))
        got = [await bob.next(frames.Deliver) for _ in range(PER_CONVERSATION)]
        assert [d.seq for d in got] == list(range(1, PER_CONVERSATION + 1))
        assert (await bob.next(frames.SyncDone)).request_id == 2
        assert server.log.read_text().count("worker.store_damaged") == 1, "one abort, no crash loop"
        assert len(list(server.data_dir.glob("damaged-*/data.mdb"))) == 1
    finally:
        server.kill()
