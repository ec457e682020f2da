"""`kefu verify` and `kefu restore` as the operator runs them (the CLI as a subprocess, for its exit codes) on a
data directory written by a real server: beside it while it runs, on its backup, on a damaged copy; a restore that
lacks the data key the backup was sealed with is refused naming the key."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import lmdb
import pytest

from kefu.protocol import frames
from kefu.server.storage.schema import MAX_TABLES

from .conftest import ServerProcess
from .peer import Peer
from .workers_harness import start_server, wait_until

BODY = b"my card is lost, please block it"
SENT = 30


def kefu(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    return subprocess.run([sys.executable, "-m", "kefu.server.cli", *args], env=clean | dict(env or {}),
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def flip_message(store: Path, index: int) -> bytes:
    """Flip a byte in the tag of the `index`-th stored message wherever the file holds it; returns its key."""
    env = lmdb.open(str(store), max_dbs=MAX_TABLES, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            key, value = list(txn.cursor(env.open_db(b"messages", txn=txn, create=False)))[index]
    finally:
        env.close()
    path = store / "data.mdb"
    raw = bytearray(path.read_bytes())
    at = raw.find(value)
    assert at >= 0
    while at >= 0:
        raw[at + len(value) - 1] ^= 0xFF
        at = raw.find(value, at + 1)
    path.write_bytes(bytes(raw))
    return key


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with worker processes (a supervisor, a core, two gateways) and apps alice and bob."""
    proc = start_server(tmp_path, ("alice", "bob"))
    try:
        yield proc
    finally:
        proc.kill()


@pytest.mark.asyncio
async def test_verify_a_live_store_its_backup_and_damage_and_restore_needs_the_key(
    server: ServerProcess, tmp_path: Path
) -> None:
    data = server.data_dir
    alice = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins)
    for n in range(SENT):
        alice.send(1, BODY + b" %d" % n, to=("bob",))
    assert [(await alice.next(frames.SendAck)).status for _ in range(SENT)] == [0] * SENT

    live = kefu("verify", "--data-dir", str(data))
    assert live.returncode == 0, live.stdout + live.stderr
    assert "kefu verify: clean" in live.stdout

    backup = tmp_path / "backup"
    assert kefu("backup", str(backup), "--data-dir", str(data)).returncode == 0
    core = server.workers()["core"]
    os.kill(core, signal.SIGABRT)  # as LMDB's assert() ends a process that walks onto a damaged page
    await asyncio.to_thread(wait_until, lambda: "worker.store_damaged" in server.log_tail(20000), 10.0, "the hint")
    assert "run `kefu verify`" in server.log_tail(20000)
    server.stop()
    assert BODY not in (data / "store" / "data.mdb").read_bytes() and BODY not in (backup / "data.mdb").read_bytes()

    report = kefu("verify", str(backup), "--json", "--data-dir", str(data))
    assert report.returncode == 0, report.stdout + report.stderr
    found = json.loads(report.stdout)
    assert found["clean"] and found["sealed"] and found["tables"]["messages"]["entries"] >= SENT
    assert sorted(os.listdir(backup)) == ["data.mdb"], "verify made nothing in the backup"

    damaged = tmp_path / "damaged"
    shutil.copytree(backup, damaged)
    key = flip_message(damaged, 5)
    bad = kefu("verify", str(damaged), "--data-dir", str(data))
    conversation, seq = int.from_bytes(key[:8], "big"), int.from_bytes(key[8:], "big")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert f"DAMAGED messages [conversation {conversation} seq {seq}]: authentication tag does not match" in bad.stdout
    assert kefu("verify", str(tmp_path / "nowhere"), "--data-dir", str(data)).returncode == 2

    refused = kefu("restore", str(damaged), "--data-dir", str(data))
    assert refused.returncode == 1 and "the backup is damaged" in refused.stderr, refused.stderr
    assert kefu("restore", str(damaged), "--force", "--data-dir", str(data)).returncode == 0

    assert kefu("data-key", "rotate", "--data-dir", str(data)).returncode == 0  # data-2.key seals from now on
    key_file = data / "keys" / "data-1.key"
    kept = key_file.read_bytes()
    key_file.unlink()  # lost: the backup was sealed under it
    no_key = kefu("restore", str(backup), "--data-dir", str(data))
    assert no_key.returncode == 1 and "sealed under data key(s) 1," in no_key.stderr, no_key.stderr
    assert "data-1.key" in no_key.stderr
    key_file.write_bytes(kept)
    key_file.chmod(0o600)
    restored = kefu("restore", str(backup), "--data-dir", str(data))  # verified on the way in: clean
    assert restored.returncode == 0, restored.stderr
