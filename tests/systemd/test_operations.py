"""Operating the real server: one server per data directory, backup -> restore, key rotation, status, logs."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from kefu.protocol import frames
from kefu.protocol.crypto import Suite
from kefu.protocol.events import HandshakeComplete, TicketReceived
from kefu.server.identity.keys import encode_secret
from tests.integration.peer import Peer

from .conftest import Served, with_apps

pytestmark = pytest.mark.asyncio


def kefu(*args: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    return subprocess.run([sys.executable, "-m", "kefu.server.cli", *args], capture_output=True, text=True,
                          timeout=timeout, check=False, env=env)  # fmt: skip


async def run(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(kefu, *args)


async def test_backup_restore_and_rotation_around_a_running_server(tmp_path: Path, served: list[Served]) -> None:
    data = tmp_path / "data"
    server = with_apps(Served(data), "alice")
    served.append(server)
    server.start()
    d = ("--data-dir", str(data))
    alice = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins)
    alice.send(7, b"kept by the backup", to=("alice",))
    assert (await alice.next(frames.SendAck)).status == 0

    # status and check-config against the running server
    status = await run("status", "--metrics-port", str(server.metrics_port))
    assert status.returncode == 0 and ": ok, up" in status.stdout and "connections: 1 (" in status.stdout
    checked = await run("check-config", *d, "--port", str(server.port))
    assert checked.returncode == 0 and f"port = {server.port}" in checked.stdout

    # one server per data directory
    second = await run("serve", *d, "--port", "0", "--metrics-port", "0", "--web-port", "0", "--api-port", "0")
    assert second.returncode == 1
    assert f"in use by another kefu process (pid {server.proc.pid if server.proc else '?'})" in second.stderr

    # backup while serving; restore refused while serving
    backup = tmp_path / "backup"
    assert (await run("backup", str(backup), *d)).returncode == 0
    assert (await run("app", "add", "late", *d)).returncode == 0
    refused = await run("restore", str(backup), *d)
    assert refused.returncode == 1 and "in use by another kefu process" in refused.stderr

    # rotation: a key added after the server started may not retire the key the server signs with
    old = {line.split()[0]: line.split()[2] for line in (await run("key", "list", *d)).stdout.splitlines()[1:]}
    assert (await run("keygen", *d, "--type", "sm2")).returncode == 0
    early = await run("key", "retire", old["sm2-1.key"], *d)
    assert early.returncode == 1 and "restart it first" in early.stderr

    assert await asyncio.to_thread(server.stop) == 0
    restored = await run("restore", str(backup), *d)
    assert restored.returncode == 0, restored.stderr
    assert "store.before-restore-" in restored.stderr and "keys" in restored.stderr
    assert list(data.glob("store.before-restore-*"))

    again = Served(data)
    served.append(again)
    again.start()  # the newest key signs now, so the old one may go
    retired = await run("key", "retire", old["sm2-1.key"], *d)
    assert retired.returncode == 0, retired.stderr
    assert old["sm2-1.key"] not in (data / "keys" / "pins.txt").read_text()
    apps = (await run("app", "list", *d)).stdout
    assert "alice" in apps and "late" not in apps, "the store is the backup's"
    pins = again.pins | {old["sm2-1.key"]}
    alice = await Peer.connect(again.port, "alice", server.secrets["alice"], pins)
    alice.send_frame(frames.Sync(7, 0, 10, 10, request_id=9))
    assert (await alice.next(frames.Deliver)).body == b"kept by the backup"
    assert await asyncio.to_thread(again.stop) == 0


def needles(secrets: dict[str, bytes], keys_dir: Path, marker: str, tickets: list[bytes]) -> dict[str, str]:
    """What must never be in a log, by description: every encoding of every secret, key, body and ticket."""
    out: dict[str, str] = {}
    for name, raw in secrets.items():
        out |= {f"{name} secret hex": raw.hex(), f"{name} secret": encode_secret(raw),
                f"{name} secret base64": base64.b64encode(raw).decode().rstrip("=")}  # fmt: skip
    for path in keys_dir.glob("*.key"):
        raw = path.read_bytes()
        out |= {f"{path.name} hex": raw.hex(), f"{path.name} base64": base64.b64encode(raw).decode().rstrip("=")}
    out |= {"body marker": marker, "body marker hex": marker.encode().hex()}
    for i, blob in enumerate(tickets):
        out |= {f"ticket {i} hex": blob.hex(), f"ticket {i} base64": base64.b64encode(blob).decode().rstrip("=")}
    return out


async def test_logs_carry_journal_priorities_and_no_secret(tmp_path: Path, served: list[Served]) -> None:
    data = tmp_path / "data"
    server = with_apps(Served(data, args=["--log-level", "debug"]), "alice", "bob")
    server.log.touch()
    st = server.log.stat()
    server.env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"  # stderr is "the journal"
    served.append(server)
    server.start()
    marker = f"MARKER-{uuid.uuid4().hex}"
    wrong = os.urandom(32)
    alice = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins)
    received = (await alice.next(TicketReceived)).ticket  # issued right after the handshake
    ticket = dataclasses.replace(received, received_at=time.time())  # the adapter stamps it
    bob = await Peer.connect(server.port, "bob", server.secrets["bob"], server.pins, suite=Suite.INTERNATIONAL)
    alice.send(3, f"转账 {marker}".encode(), to=("bob",))
    await alice.next(frames.SendAck)
    assert marker in (await bob.next(frames.Deliver)).body.decode()
    resumed = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins, ticket=ticket)
    assert isinstance(resumed.ready.result(), HandshakeComplete)
    # A wrong secret: the client finishes its side of the one-round-trip handshake, the server refuses it.
    impostor = await Peer.connect(server.port, "bob", wrong, server.pins)
    await asyncio.wait_for(impostor.lost, 10)
    server.send(signal.SIGHUP)
    await asyncio.sleep(0.3)
    assert await asyncio.to_thread(server.stop) == 0

    log = server.log.read_text()
    text = log + "".join(server.stdout) + "".join(p.read_text() for p in data.rglob("*.log"))
    secrets = server.secrets | {"wrong": wrong}
    checks = needles(secrets, data / "keys", marker, [ticket.ticket, ticket.psk])
    assert len(checks) >= 3 * 3 + 3 * 2 + 2 + 2 * 2, "three secrets, three key files, the body, two ticket values"
    found = [what for what, value in checks.items() if value.lower() in text.lower()]
    assert found == [], f"in the logs: {found}"

    lines = log.splitlines()
    assert "conn.ready" in log and "resumed=true" in log and "AUTH_FAILED" in log and "server.reloaded" in log
    want = {"debug": "7", "info": "6", "warning": "4", "error": "3"}
    for line in lines:
        m = re.match(r"<(\d)>\S+ (\w+) ", line)
        assert m and m.group(1) == want[m.group(2)], f"no matching journal priority: {line!r}"
