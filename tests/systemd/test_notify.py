"""sd_notify from the real server: READY=1 once listening, STATUS= with connections, WATCHDOG=1 from the loop."""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import time
from pathlib import Path

import pytest

from kefu.protocol import frames
from tests.integration.peer import Peer

from .conftest import NotifyListener, Served, with_apps

WATCHDOG_USEC = 500_000
PING_S = WATCHDOG_USEC / 1e6 / 2
STALL_S = 2.0


WATCHDOG = {"WATCHDOG_USEC": str(WATCHDOG_USEC)}


def accepts(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.asyncio
async def test_ready_status_watchdog_and_stopping(
    tmp_path: Path, notify_socket: NotifyListener, served: list[Served]
) -> None:
    server = with_apps(Served(tmp_path / "data", env=WATCHDOG, notify=notify_socket), "alice")
    served.append(server)
    server.start()
    ready = notify_socket.wait_for("READY", "1")
    # READY=1 comes after the listening line and once both ports accept connections
    assert any("listening on" in line for line in server.stdout)
    assert accepts(server.port) and accepts(server.metrics_port)
    assert notify_socket.lines("STATUS")[0][1] == "ok: 0 connections"

    alice = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins)
    alice.send(1, b"hello", to=("alice",))
    await alice.next(frames.SendAck)
    await asyncio.to_thread(notify_socket.wait_for, "STATUS", "ok: 1 connections", 5.0)

    await asyncio.sleep(1.0)
    pings = [t for t, v in notify_socket.lines("WATCHDOG") if v == "1" and t >= ready]
    assert len(pings) >= 4, "pings every WATCHDOG_USEC/2"
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert max(gaps) < PING_S * 3, gaps

    server.send(signal.SIGTERM)
    await asyncio.to_thread(notify_socket.wait_for, "STOPPING", "1", 5.0)
    assert await asyncio.to_thread(server.stop) == 0
    assert any(v.startswith("draining") for _, v in notify_socket.lines("STATUS"))


def test_a_stalled_loop_stops_the_watchdog_pings(
    tmp_path: Path, notify_socket: NotifyListener, served: list[Served]
) -> None:
    env = WATCHDOG | {"KEFU_DEBUG_STALL_ON_SIGNAL": str(STALL_S)}
    server = Served(tmp_path / "data", env=env, notify=notify_socket)
    served.append(server)
    server.start()
    notify_socket.wait_for("READY", "1")
    time.sleep(4 * PING_S)
    assert "debug.stall_hook_armed" in server.log.read_text()

    stalled_at = time.monotonic()
    server.send(signal.SIGUSR2)
    time.sleep(STALL_S + 4 * PING_S)
    pings = [t - stalled_at for t, v in notify_socket.lines("WATCHDOG") if v == "1"]
    before = [t for t in pings if t < 0]
    during = [t for t in pings if 2 * PING_S < t < STALL_S - PING_S]
    after = [t for t in pings if t >= STALL_S - PING_S]
    assert len(before) >= 3, pings
    assert during == [], f"pings while the loop was blocked: {during}"
    assert after and after[0] < STALL_S + 2 * PING_S, f"pings did not resume: {pings}"
    assert server.stop() == 0


def test_outside_systemd_nothing_is_sent_and_sigusr2_is_not_hooked(tmp_path: Path, served: list[Served]) -> None:
    server = Served(tmp_path / "data", systemd=False)
    served.append(server)
    server.start()
    assert "debug.stall" not in server.log.read_text()
    server.send(signal.SIGUSR2)  # the default action: terminate. The hook is off without its variable.
    assert server.stop() == -signal.SIGUSR2
