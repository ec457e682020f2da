"""Lifecycle of the real server: drain on SIGTERM, reload on SIGHUP, metrics and health, retention."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from pathlib import Path

import pytest

from kefu.protocol import frames
from kefu.protocol.errors import ErrorCode

from .conftest import ServerProcess, add_app
from .peer import Peer

pytestmark = pytest.mark.asyncio


def fetch(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_sigterm_sends_goaway_and_exits_in_bounded_time(server: ServerProcess) -> None:
    alice = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins)
    bob = await Peer.connect(server.port, "bob", server.secrets["bob"], server.pins)
    alice.send(1, b"before", to=("bob",))
    assert (await alice.next(frames.SendAck)).status == 0
    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    for peer in (alice, bob):
        goaway = await peer.next(frames.Goaway)
        assert goaway.code == ErrorCode.SHUTTING_DOWN
        assert goaway.backoff_initial_ms > 0 and goaway.backoff_max_ms >= goaway.backoff_initial_ms
    code = await asyncio.get_running_loop().run_in_executor(None, server.wait, 30)
    assert code == 0 and time.monotonic() - started < 15
    server.start()  # the acknowledged message is still there
    again = await Peer.connect(server.port, "bob", server.secrets["bob"], server.pins)
    again.send_frame(frames.Sync(1, 0, 10, 10, request_id=3))
    assert (await again.next(frames.Deliver)).body == b"before"


async def test_metrics_and_health(server: ServerProcess) -> None:
    alice = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins)
    alice.send(2, b"count me", to=("bob",))
    await alice.next(frames.SendAck)
    status, body = fetch(server.metrics_port, "/healthz")
    health = json.loads(body)
    assert status == 200 and health["status"] == "ok" and health["connections"] >= 1
    status, body = fetch(server.metrics_port, "/metrics")
    text = body.decode()
    assert status == 200
    for name in ("kefu_connections", "kefu_handshakes_total", "kefu_send_ack_latency_seconds_bucket",
                 "kefu_commit_batch_size_bucket", "kefu_fsync_seconds_bucket", "kefu_bytes_total",
                 "kefu_event_loop_lag_seconds"):  # fmt: skip
        assert name in text, name
    assert 'kefu_handshakes_total{result="ok",suite="national"} 1.0' in text
    # Frames are counted by the core and published once a second: the handshake's and the SEND's.
    wanted = ('{direction="in",type="send"} 1.0', '{direction="out",type="send_ack"} 1.0',
              '{direction="in",type="client_hello"} 1.0', '{direction="out",type="server_hello"} 1.0')  # fmt: skip
    deadline = time.monotonic() + 10
    while not all(f"kefu_frames_total{w}" in text for w in wanted) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        text = fetch(server.metrics_port, "/metrics")[1].decode()
    assert [w for w in wanted if f"kefu_frames_total{w}" not in text] == []


async def test_sighup_reloads_limits(tmp_path: Path) -> None:
    config = tmp_path / "kefu.toml"
    config.write_text("[limits]\nconn_frames_per_s = 1000\nconn_frames_burst = 1000\n")
    proc = ServerProcess(tmp_path / "data", extra=["--config", str(config)])
    proc.secrets["alice"] = add_app(proc.data_dir, "alice")
    proc.start()
    try:
        config.write_text("[limits]\nconn_frames_per_s = 1\nconn_frames_burst = 2\n")
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "server.reloaded" not in proc.log.read_text() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert "server.reloaded" in proc.log.read_text()
        assert proc.proc.poll() is None
        alice = await Peer.connect(proc.port, "alice", proc.secrets["alice"], proc.pins)
        for _ in range(5):
            alice.send(3, b"x", to=("alice",))
        statuses = [(await alice.next(frames.SendAck)).status for _ in range(5)]
        assert ErrorCode.RATE_LIMITED in statuses, "the reloaded per-connection frame budget applies"
        refusals = [line for line in proc.log.read_text().splitlines() if "request.refused" in line]
        assert refusals and all("app=alice request=SEND code=RATE_LIMITED" in line for line in refusals), refusals
    finally:
        proc.stop()
