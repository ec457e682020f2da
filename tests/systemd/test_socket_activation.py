"""Socket activation: the real server serves a listening socket passed as fd 3, as kefu.socket passes it."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.protocol import frames
from kefu.server.identity.keys import load_keys, pins_of
from tests.integration.peer import Peer

from .conftest import Served, with_apps


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """What systemd holds for kefu.socket: a listening TCP socket on loopback."""
    sock = socket.create_server(("127.0.0.1", 0), backlog=128)
    yield sock
    sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.asyncio
async def test_the_inherited_socket_serves_handshakes(
    tmp_path: Path, listener: socket.socket, served: list[Served]
) -> None:
    server = with_apps(Served(tmp_path / "data"), "alice")
    served.append(server)
    server.start(activate=listener)
    port = listener.getsockname()[1]
    assert server.port == port, "the listening line names the inherited socket, not [server] port"
    assert "inherited=true" in server.log.read_text()
    alice = await Peer.connect(port, "alice", server.secrets["alice"], server.pins)
    alice.send(1, b"through the inherited socket", to=("alice",))
    assert (await alice.next(frames.SendAck)).status == 0
    assert await asyncio.to_thread(server.stop) == 0


@pytest.mark.asyncio
async def test_a_restart_queues_connections_instead_of_refusing_them(
    tmp_path: Path, listener: socket.socket, served: list[Served]
) -> None:
    first = with_apps(Served(tmp_path / "data"), "alice")
    served.append(first)
    first.start(activate=listener)
    port = listener.getsockname()[1]
    before = await Peer.connect(port, "alice", first.secrets["alice"], first.pins)
    before.send(1, b"before the restart", to=("alice",))
    assert (await before.next(frames.SendAck)).status == 0
    assert await asyncio.to_thread(first.stop) == 0
    # The server is gone; the socket "systemd" holds still accepts into its backlog ...
    connecting = asyncio.ensure_future(Peer.connect(port, "alice", first.secrets["alice"], first.pins))
    await asyncio.sleep(0.2)
    assert not connecting.done(), "connected, waiting in the accept queue for the next server"
    # ... and the restarted server accepts that waiting connection and completes its handshake.
    second = Served(tmp_path / "data")
    served.append(second)
    await asyncio.to_thread(lambda: second.start(activate=listener))
    alice = await connecting
    alice.send(1, b"after the restart", to=("alice",))
    assert (await alice.next(frames.SendAck)).status == 0
    assert await asyncio.to_thread(second.stop) == 0


def test_sockets_meant_for_another_process_are_left_alone(
    tmp_path: Path, listener: socket.socket, served: list[Served]
) -> None:
    port = free_port()
    server = Served(tmp_path / "data")
    server.args = ["--port", str(port)]
    served.append(server)
    server.start(activate=listener, listen_pid="parent")  # not for us: the server binds [server] port itself
    assert server.port == port
    assert "inherited=false" in server.log.read_text()
    assert server.stop() == 0


def test_a_socket_that_is_not_listening_is_refused(tmp_path: Path, served: list[Served]) -> None:
    with socket.socket() as unbound:
        server = Served(tmp_path / "data")
        served.append(server)
        with pytest.raises(RuntimeError, match="server exited"):
            server.start(activate=unbound)
    assert server.proc is not None and server.proc.returncode == 1
    assert "not listening" in server.log.read_text()


class ActivatedBySystemd(Served):
    """`kefu serve` under systemd's own socket-passing code, systemd-socket-activate(1)."""

    def __init__(self, data_dir: Path, tool: str, port: int) -> None:
        super().__init__(data_dir)
        self.tool, self.listen = tool, f"127.0.0.1:{port}"

    def command(self) -> list[str]:
        return [self.tool, "-l", self.listen, "--fdname=kefu", "-E", "NOTIFY_SOCKET", *super().command()]


@pytest.mark.asyncio
async def test_systemds_own_socket_passing(tmp_path: Path, served: list[Served]) -> None:
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        pytest.skip("systemd-socket-activate is not installed (it comes with the systemd package)")
    port = free_port()
    server = with_apps(ActivatedBySystemd(tmp_path / "data", tool, port), "alice")
    keygen = [sys.executable, "-m", "kefu.server.cli", "keygen", "--data-dir", str(server.data_dir)]
    subprocess.run(keygen, capture_output=True, timeout=30, check=True)  # the pins, before the server exists
    pins = frozenset(pins_of(load_keys(server.data_dir)))
    served.append(server)
    starting = asyncio.ensure_future(asyncio.to_thread(server.start))
    deadline = time.monotonic() + 10
    while True:  # the tool binds, then execs the server on the first connection, as a .socket unit can
        try:
            alice = await Peer.connect(port, "alice", server.secrets["alice"], pins)
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "systemd-socket-activate never listened"
            await asyncio.sleep(0.05)
    await starting
    assert server.port == port and "inherited=true" in server.log.read_text()
    alice.send(1, b"via systemd-socket-activate", to=("alice",))
    assert (await alice.next(frames.SendAck)).status == 0
    assert await asyncio.to_thread(server.stop) == 0
