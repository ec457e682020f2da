"""A real `kefu serve` (supervisor, core and a gateway) on a full file system (issue #14 point 6): it starts, clients
log in and read their history, SENDs are refused with STORAGE_UNAVAILABLE, and the refusals are logged once per
interval with a count, not one traceback per commit. The file system is a small tmpfs filled to the last byte (the
test needs to mount one: root, or it is skipped)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.protocol import frames
from kefu.protocol.errors import ErrorCode
from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage.store import Store

from ..tmpfs import mounted_tmpfs
from .conftest import ServerProcess, add_apps
from .conftest import app_peer as peer

pytestmark = pytest.mark.asyncio

ENV = {"KEFU_SERVER_WORKERS": "1", "KEFU_STORAGE_LOG_SEGMENT_MB": "4"}
BODY = 60_000


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 40 MiB tmpfs: room for a store, its log's three 4 MiB segments and the keys, quick to fill."""
    with mounted_tmpfs(tmp_path / "fs", "40m") as mount:
        yield mount


def fill(directory: Path) -> None:
    """Write a file until the file system holding `directory` has no byte left."""
    with (directory / "ballast").open("wb", buffering=0) as f:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    f.write(bytes(size))
            except OSError:
                continue
    assert os.statvfs(directory).f_bavail == 0


async def test_a_full_disk_starts_serves_reads_and_refuses_writes(small_fs: Path, tmp_path: Path) -> None:
    server = ServerProcess(small_fs / "data", env=ENV)
    server.log_path = tmp_path / "server.log"  # not on the full file system
    server.secrets.update(add_apps(server.data_dir, ("alice", "bob")))
    server.start()
    try:
        alice = await peer(server, "alice")
        for i in range(3):
            alice.send(100, f"before the disk filled {i}".encode(), to=("bob",))
            assert (await alice.next(frames.SendAck)).status == 0
        alice.close()
        assert server.stop() == 0
        fill(small_fs)
        ticket_key = (server.data_dir / "keys" / "ticket.key").read_bytes()

        server.start()  # on a full disk
        assert (server.data_dir / "keys" / "ticket.key").read_bytes() == ticket_key, "not rotated: no room"
        bob = await peer(server, "bob")
        bob.send_frame(frames.Sync(0, 0, 0, 0, request_id=1))
        history = [await bob.next(frames.Deliver) for _ in range(3)]
        assert [d.body for d in history] == [f"before the disk filled {i}".encode() for i in range(3)]

        alice = await peer(server, "alice")
        statuses = []
        for _ in range(400):  # the log's spare segment holds about 70 of these; then each one is refused
            alice.send(100, os.urandom(BODY), to=("bob",))
            statuses.append((await alice.next(frames.SendAck)).status)
            if statuses[-1] and statuses.count(statuses[-1]) >= 60:
                break
        refused = statuses.count(ErrorCode.STORAGE_UNAVAILABLE)
        assert refused >= 60 and set(statuses) <= {0, ErrorCode.STORAGE_UNAVAILABLE}, statuses
        assert statuses[-refused:] == [ErrorCode.STORAGE_UNAVAILABLE] * refused, "once refused, refused while full"
        assert server.alive and not server.workers().keys() ^ {"core", "gateway-0"}, "nothing exited"

        bob.send_frame(frames.Sync(0, 0, 0, 0, request_id=2))
        while (done := await bob.next(frames.SyncDone)).request_id != 2:
            continue
        assert done.request_id == 2, "reads still served"
    finally:
        server.kill()
    log = server.log_tail(1 << 20)
    assert "keys.ticket_key_not_rotated" in log
    tracebacks = sum("Traceback" in line for line in log.splitlines())
    assert tracebacks <= 1, "at most the first refusal's traceback (none when the indexer's no room refused it first)"
    assert log.count("commit refused (logged once per") == 1
    assert log.count("commits refused in the last") <= 2, f"one line per 10 s, {refused} refusals"


async def read_all(server: ServerProcess, name: str, count: int) -> list[bytes]:
    """The bodies of conversation 100 a fresh login of `name` fetches, in seq order."""
    reader = await peer(server, name)
    reader.send_frame(frames.Sync(100, 0, count, 100, request_id=1))
    bodies = [(await reader.next(frames.Deliver)).body for _ in range(count)]
    reader.close()
    return bodies


async def send_refused(server: ServerProcess) -> int:
    alice = await peer(server, "alice")
    alice.send(100, b"on the still-full disk", to=("bob",))
    status = (await alice.next(frames.SendAck)).status
    alice.close()
    return int(status)


async def test_a_server_that_took_sends_on_a_full_disk_starts_again_and_serves_them(
    small_fs: Path, tmp_path: Path
) -> None:
    """SENDs the log took while the indexer could not write the store are served after a restart (SIGTERM, then
    SIGKILL) on the still-full disk, from memory; SENDs are refused until there is room; then they are taken again and
    the log's records reach the store."""
    server = ServerProcess(small_fs / "data", env={**ENV, "KEFU_STORAGE_INDEX_INTERVAL_MS": "3000"})
    server.log_path = tmp_path / "server.log"
    server.secrets.update(add_apps(server.data_dir, ("alice", "bob")))
    server.start()
    try:
        alice = await peer(server, "alice")
        alice.send(100, b"before the disk filled", to=("bob",))
        assert (await alice.next(frames.SendAck)).status == 0
        await asyncio.sleep(3.5)  # indexed
        fill(small_fs)
        sent = [b"before the disk filled"]
        for i in range(12):  # into the log's preallocated segment: durable, but the store cannot grow for them
            body = i.to_bytes(2, "big") + os.urandom(BODY)
            alice.send(100, body, to=("bob",))
            if (await alice.next(frames.SendAck)).status == 0:
                sent.append(body)
        assert len(sent) > 1, "the log took SENDs on the full disk"
        alice.close()
        server.stop()

        for stop in (signal.SIGTERM, signal.SIGKILL):
            server.start()  # on the still-full disk: the log's tail is served from memory
            assert await read_all(server, "bob", len(sent)) == sent
            assert await send_refused(server) == ErrorCode.STORAGE_UNAVAILABLE
            server.stop(stop)
        assert server.log_tail(1 << 20).count("of records held in memory and served from there") == 2

        server.start()
        (small_fs / "ballast").unlink()  # room again: the indexer's next try writes the tail, SENDs are taken
        alice = await peer(server, "alice")
        for _ in range(100):
            alice.send(100, b"room again", to=("bob",))
            if (await alice.next(frames.SendAck)).status == 0:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("SENDs still refused with room on the disk")
        sent.append(b"room again")
        alice.close()
        assert await read_all(server, "bob", len(sent)) == sent
        assert server.stop() == 0
    finally:
        server.kill()
    store = Store(server.data_dir / "store", readonly=True, sealer=sealer_of(server.data_dir, "sm4-gcm"))
    try:
        assert [m.body for m in store.read_range(100, 0, 0, 100)] == sent, "indexed into the store"
    finally:
        store.close()
