"""A real `kefu serve` over a store with one damaged B-tree page of ``messages`` (LMDB raises on the reads that cross
it, issue #14 point 3): a SYNC of a conversation on that page gets STORAGE_UNAVAILABLE, a SEND to it too, while SYNCs
and SENDs of other conversations go on, on the same connections; the damage is logged and counted (kefu status), in
with worker processes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.protocol import frames
from kefu.protocol.errors import ErrorCode
from kefu.server.storage.schema import U64S
from tests.server.tree_damage import break_child

from .conftest import LOAD_LIMITS, ServerProcess, running_server
from .conftest import app_peer as peer
from .workers_harness import WORKERS

pytestmark = pytest.mark.asyncio

CONVERSATIONS = 150
PER_CONVERSATION = 5
GOOD = 1


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """With worker processes, where a read that failed used to leave the request unanswered (one process shares the
    core's code, and its connection was closed: tests/server/test_read_damage.py covers the store and the commit)."""
    env = {"KEFU_SERVER_WORKERS": str(WORKERS), **LOAD_LIMITS, "KEFU_STORAGE_CHECK_AT_OPEN": "tops"}
    yield from running_server(tmp_path, env, ("alice", "bob"))  # met on read, not salvaged


async def test_a_damaged_page_refuses_its_conversation_alone(server: ServerProcess) -> None:
    alice = await peer(server, "alice")
    for seq in range(PER_CONVERSATION):
        for conv in range(1, CONVERSATIONS + 1):
            alice.send(conv, f"message {seq}".encode(), to=("bob",))
        for _ in range(CONVERSATIONS):
            assert (await alice.next(frames.SendAck)).status == 0
    alice.close()
    assert server.stop() == 0  # a graceful stop indexes everything into data.mdb
    low, high = break_child(server.data_dir / "store" / "data.mdb", b"messages", apart=2)
    bad = U64S.unpack_from(low)[0] + 1
    assert GOOD < bad < U64S.unpack_from(high)[0]

    server.start()
    bob, alice = await peer(server, "bob"), await peer(server, "alice")
    bob.send_frame(frames.Sync(bad, 0, 0, 0, request_id=1))  # resume: its last seq is on the page
    refused = await bob.next(frames.Error)
    assert (refused.code, refused.request_id) == (ErrorCode.STORAGE_UNAVAILABLE, 1)
    bob.send_frame(frames.Sync(bad, 0, PER_CONVERSATION, 100, request_id=2))  # a fetch: its messages are too
    refused = await bob.next(frames.Error)
    assert (refused.code, refused.request_id) == (ErrorCode.STORAGE_UNAVAILABLE, 2)
    alice.send(bad, b"to the damaged page")
    assert (await alice.next(frames.SendAck)).status == ErrorCode.STORAGE_UNAVAILABLE

    alice.send(GOOD, b"elsewhere")  # the same connections go on
    assert (await alice.next(frames.SendAck)).seq == PER_CONVERSATION + 1
    bob.send_frame(frames.Sync(GOOD, 0, PER_CONVERSATION + 1, 100, request_id=3))
    delivered = [await bob.next(frames.Deliver) for _ in range(PER_CONVERSATION + 1)]
    assert [d.body for d in delivered] == [f"message {i}".encode() for i in range(PER_CONVERSATION)] + [b"elsewhere"]
    assert (await bob.next(frames.SyncDone)).request_id == 3

    status = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "kefu.server.cli", "status", "--data-dir", str(server.data_dir),
                         "--metrics-port", str(server.metrics_port)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    log = server.log.read_text()
    assert "storage.damaged" in log and "table=messages" in log and "B-tree is damaged" in log
    assert "Traceback" not in log, "no read failed as a bug"
    damaged = [line for line in status.stdout.splitlines() if "damaged records found on read" in line]
    assert damaged and "messages" in damaged[0], status.stdout + status.stderr
    marks = [line for line in status.stdout.splitlines() if "conversations marked damaged" in line]
    assert marks and f" {bad} (seqs " in marks[0], status.stdout
