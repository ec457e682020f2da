"""Helpers for tests of `kefu serve` with worker processes: where a connection landed, peers and clients placed on a
chosen gateway, the supervisor's HTTP endpoints, and the processes' memory.

Where a connection landed is read from /proc: the server side of a loopback TCP connection is the entry of
/proc/net/tcp whose local end is the server's port and whose remote end is the client's address; its inode names the
socket, and the gateway holding it is the worker with a descriptor on ``socket:[inode]``.

Placing a connection on a chosen gateway: the kernel spreads connections over the gateways' SO_REUSEPORT sockets by a
hash of the connection's addresses, the same for the same addresses. `probe_port` finds a local port whose connections
land on the gateway wanted (a bare TCP connection, closed with a reset so that the port is free again at once); a
connection made from that port lands there too. That matters where a connection must land right at its first try:
a resumption ticket is claimed by the attempt, wherever it lands.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import struct
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kefu.client import Client, Message, SendReceipt
from kefu.protocol.crypto import Suite
from kefu.protocol.handshake import ClientConfig

from .conftest import ServerProcess, add_apps
from .peer import TIMEOUT, Peer

__all__ = [
    "GATEWAYS",
    "WORKERS",
    "Serving",
    "Traffic",
    "client_gateway",
    "client_on",
    "connect_peer",
    "fetch",
    "gateway_of",
    "healthz",
    "held",
    "history",
    "metric",
    "peer_on",
    "probe_port",
    "rss",
    "start_server",
    "wait_until",
]

WORKERS = 2
GATEWAYS = tuple(f"gateway-{i}" for i in range(WORKERS))
HOST = "127.0.0.1"
PLACE_TRIES = 64
"""Connections tried before giving up on landing one on a given gateway (each lands there with odds 1/WORKERS)."""
_LINGER_RESET = struct.pack("ii", 1, 0)
"""SO_LINGER on, 0 s: close() sends a reset and leaves no TIME_WAIT, so the local port is free again at once."""


class Serving(Protocol):
    """A running `kefu serve` with worker processes, as these helpers use it (ServerProcess, tests/systemd's Served)."""

    port: int
    metrics_port: int
    secrets: dict[str, bytes]

    @property
    def pins(self) -> frozenset[str]:
        """The server key pins."""

    def workers(self) -> dict[str, int]:
        """Worker PIDs by name."""


def start_server(
    tmp_path: Path, apps: tuple[str, ...], env: dict[str, str] | None = None, extra: list[str] | None = None
) -> ServerProcess:
    """`kefu serve` with WORKERS gateways and `apps` registered, started; the caller kills it (by PID)."""
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, extra=extra, env={"KEFU_SERVER_WORKERS": str(WORKERS), **(env or {})})
    server.secrets.update(add_apps(data_dir, apps))
    server.start()
    return server


# --- where a connection is ---------------------------------------------------------------------------------------


def _hex_address(host: str, port: int) -> str:
    """An IPv4 address as /proc/net/tcp writes it (the address in host byte order, little-endian here)."""
    return f"{socket.inet_aton(host)[::-1].hex().upper()}:{port:04X}"


def _server_inode(server_port: int, client: tuple[str, int]) -> int | None:
    """The inode of the server side of the connection from `client` to `server_port`, if the kernel has it."""
    local, remote = _hex_address(HOST, server_port), _hex_address(*client)
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote and int(fields[9]):
            return int(fields[9])
    return None


def _holder(workers: dict[str, int], inode: int) -> str | None:
    target = f"socket:[{inode}]"
    for name, pid in workers.items():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return name
            except OSError:
                continue
    return None


def gateway_of(server: Serving, client: tuple[str, int], timeout: float = 3.0) -> str:
    """The worker ("gateway-N") holding the server side of the connection from `client` (its local address)."""
    deadline = time.monotonic() + timeout
    while True:
        inode = _server_inode(server.port, client)
        if inode is not None and (name := _holder(server.workers(), inode)) is not None:
            return name
        if time.monotonic() > deadline:
            raise AssertionError(f"no worker holds the connection from {client} (inode {inode})")
        time.sleep(0.005)


def probe_port(server: Serving, gateway: str) -> int:
    """A local port on HOST whose connections to the server land on `gateway`."""
    for _ in range(PLACE_TRIES):
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            sock.connect((HOST, server.port))
            local = sock.getsockname()
            landed = gateway_of(server, local)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        if landed == gateway:
            return int(local[1])
    raise AssertionError(f"no connection landed on {gateway} in {PLACE_TRIES} tries")


async def connect_peer(server: Serving, app_id: str, *, local_port: int | None = None, **config: Any) -> Peer:
    """A test peer that completed its handshake (from `local_port` when given); `config`: ClientConfig's."""
    loop = asyncio.get_running_loop()
    peer = Peer(ClientConfig(app_id, server.pins, (Suite.NATIONAL,), app_secret=server.secrets[app_id], **config))
    local = (HOST, local_port) if local_port is not None else None
    await loop.create_connection(lambda: peer, HOST, server.port, local_addr=local)
    await asyncio.wait_for(asyncio.shield(peer.ready), TIMEOUT)
    return peer


async def peer_on(server: Serving, app_id: str, gateway: str, **config: Any) -> Peer:
    """A test peer connected to `gateway` at its first attempt."""
    port = await asyncio.to_thread(probe_port, server, gateway)
    peer = await connect_peer(server, app_id, local_port=port, **config)
    assert peer.transport is not None
    assert await asyncio.to_thread(gateway_of, server, peer.transport.get_extra_info("sockname")) == gateway
    return peer


def client_gateway(server: Serving, client: Client) -> str:
    """The gateway the client's current connection is on."""
    link = client._link
    assert link is not None and link.transport is not None, "the client is not connected"
    return gateway_of(server, link.transport.get_extra_info("sockname"))


async def client_on(server: Serving, app_id: str, gateway: str) -> Client:
    """A connected kefu.client.Client whose connection is on `gateway` (connecting again until it lands there)."""
    for _ in range(PLACE_TRIES):
        client = Client(HOST, server.port, app_id=app_id, app_secret=server.secrets[app_id],
                        server_pins=server.pins, connect_timeout=5)  # fmt: skip
        await client.connect()
        if await asyncio.to_thread(client_gateway, server, client) == gateway:
            return client
        await client.close()
    raise AssertionError(f"no client connection landed on {gateway} in {PLACE_TRIES} tries")


# --- the supervisor's endpoints and the processes ------------------------------------------------------------


def fetch(server: Serving, path: str) -> tuple[int, str]:
    """GET `path` of the metrics endpoint: (status, body)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{server.metrics_port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def healthz(server: Serving) -> dict[str, Any]:
    """/healthz, parsed."""
    payload: dict[str, Any] = json.loads(fetch(server, "/healthz")[1])
    return payload


def held(server: Serving) -> dict[str, int]:
    """Connections each worker counts (/healthz): each gateway its own, the core every gateway's."""
    return {name: int(worker["connections"]) for name, worker in healthz(server)["workers"].items()}


def metric(text: str, name: str, **labels: str) -> float:
    """The value of the series `name{labels}` in an exposition (0.0 if absent; labels in any order)."""
    total = 0.0
    for line in text.splitlines():
        m = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? (\S+)", line)
        if m is None:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> float:
    """Poll `predicate()` until true; the time it took. Fails with `what` after `timeout` seconds."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started


# --- load from kefu.client clients -------------------------------------------------------------------------


@dataclass
class Traffic:
    """Messages sent and received through kefu.client clients in one conversation, with their times (monotonic)."""

    conversation: int
    clients: dict[str, Client] = field(default_factory=dict)
    receipts: dict[bytes, SendReceipt] = field(default_factory=dict)
    """Every acknowledged SEND, by client_msg_id."""
    acked_at: dict[bytes, float] = field(default_factory=dict)
    errors: dict[str, list[BaseException]] = field(default_factory=dict)
    """What each client's sends raised."""
    received: dict[str, list[tuple[float, Message]]] = field(default_factory=dict)
    _receiving: list[asyncio.Task[None]] = field(default_factory=list)

    def start_receiving(self) -> None:
        """Every client records what it receives, until `close`."""
        self._receiving += [asyncio.create_task(self._receive_forever(name)) for name in self.clients]

    async def send_paced(self, name: str, count: int, interval: float, *, to: tuple[str, ...] = ()) -> None:
        """`count` SENDs from `name`, one started every `interval` seconds, each awaited (bounded) in its own task;
        the body is "name i t" with t the monotonic time it was started."""
        client = self.clients[name]
        tasks = []
        for i in range(count):
            body = f"{name} {i} {time.monotonic():.6f}"
            tasks.append(asyncio.create_task(self._send(name, client.send(self.conversation, body, to=to, timeout=30))))
            await asyncio.sleep(interval)
        await asyncio.gather(*tasks)

    async def _send(self, name: str, sending: Awaitable[SendReceipt]) -> None:
        try:
            receipt = await sending
        except Exception as exc:  # recorded: the tests assert there is none
            self.errors.setdefault(name, []).append(exc)
            return
        self.receipts[receipt.client_msg_id] = receipt
        self.acked_at[receipt.client_msg_id] = time.monotonic()

    async def _receive_forever(self, name: str) -> None:
        client = self.clients[name]
        got = self.received.setdefault(name, [])
        while (message := await client.receive()) is not None:
            got.append((time.monotonic(), message))

    def seqs(self, name: str) -> list[int]:
        """The seqs `name` received, in the order received."""
        return [m.seq for _, m in self.received.get(name, [])]

    def latencies(self, name: str, sender: str, since: float, until: float) -> list[float]:
        """Seconds from the start of each SEND of `sender` (by `send_paced`) to its delivery to `name`, for those
        started in [since, until)."""
        out = []
        for at, message in self.received.get(name, []):
            if message.sender == sender:
                started = float(message.body.split()[2])
                if since <= started < until:
                    out.append(at - started)
        return out

    async def close(self) -> None:
        """Close every client (bounded) and stop recording."""
        async with asyncio.timeout(10):
            await asyncio.gather(*(c.close() for c in self.clients.values()), return_exceptions=True)
        for task in self._receiving:
            task.cancel()
        await asyncio.gather(*self._receiving, return_exceptions=True)


async def history(client: Client, conversation: int, last: int) -> list[Message]:
    """Messages 1..`last` of a conversation, read back with SYNC fetches."""
    out: list[Message] = []
    while len(out) < last:
        after = out[-1].seq if out else 0
        page = await client.sync(conversation, after, last, limit=500, timeout=10)
        if not page:
            break
        out += page
    return out
