"""The supervisor of `kefu serve` with worker processes, as systemd sees it (a fake NOTIFY_SOCKET): READY=1 once
every worker is ready, WATCHDOG=1 only while every worker answers, SIGTERM drains every worker and leaves no process,
SIGHUP reaches the workers, a dead or hung worker is started again and counted."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.protocol import frames
from kefu.protocol.errors import ErrorCode
from tests.integration.peer import Peer
from tests.integration.workers_harness import (
    GATEWAYS,
    connect_peer,
    fetch,
    gateway_of,
    healthz,
    metric,
    peer_on,
    wait_until,
)

from .conftest import NotifyListener, Served, with_apps

pytestmark = pytest.mark.slow

WORKERS = {"KEFU_SERVER_WORKERS": str(len(GATEWAYS))}
PING_INTERVAL_S = 1.0
HUNG_AFTER_S = 10.0
"""As in kefu.server.runtime.supervisor (not imported: it needs the server extra, which a test run may lack): the
supervisor pings every worker each PING_INTERVAL_S, and kills and restarts one silent for HUNG_AFTER_S."""
WATCHDOG_USEC = 500_000
PING_S = WATCHDOG_USEC / 1e6 / 2
"""WATCHDOG=1 goes out every WATCHDOG_USEC/2 while every worker answers."""
SILENT_AFTER_S = (2 * PING_INTERVAL_S + 0.5) + PING_INTERVAL_S + PING_S
"""A stalled worker makes the supervisor unhealthy once its last answer is 2 ping intervals + 0.5 s old
(`Supervisor.healthy`); that answer came at most a ping interval before the stall; the next WATCHDOG=1 was due within
PING_S. From then on, no WATCHDOG=1."""
TEST_TIMEOUT_S = 30.0


class ReadyWitness(NotifyListener):
    """A notify socket that also reads the server's log at the moment READY=1 arrives: what the supervisor had
    logged before it sent READY=1."""

    def __init__(self, path: str, log: Path) -> None:
        self.log = log
        self.log_at_ready: str | None = None
        super().__init__(path)

    def on_message(self, text: str) -> None:
        if self.log_at_ready is None and "READY=1" in text.split("\n"):
            self.log_at_ready = self.log.read_text()


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a path short enough for an AF_UNIX socket."""
    path = Path(tempfile.mkdtemp(prefix="kefu-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def serve(tmp_path: Path, served: list[Served], *apps: str, env: dict[str, str] | None = None,
          notify: NotifyListener | None = None, args: tuple[str, ...] = ()) -> Served:  # fmt: skip
    """`kefu serve` with two gateways and `apps`, started (READY=1 seen); killed by the `served` fixture."""
    server = with_apps(Served(tmp_path / "data", env=WORKERS | (env or {}), notify=notify, args=args), *apps)
    served.append(server)
    return server.start()


def exists(pid: int) -> bool:
    """The process runs (or is stopped); False once it is gone or a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def watchdogs(notify: NotifyListener, since: float, until: float = float("inf")) -> list[float]:
    """Times of the WATCHDOG=1 received in [since, until)."""
    return [t for t, v in notify.lines("WATCHDOG") if v == "1" and since <= t < until]


@pytest.mark.asyncio
async def test_ready_is_sent_once_every_worker_is_ready(tmp_path: Path, short_dir: Path, served: list[Served]) -> None:
    notify = ReadyWitness(str(short_dir / "notify"), tmp_path / "data.log")
    try:
        server = await asyncio.to_thread(serve, tmp_path, served, "alice", notify=notify)
        assert notify.log_at_ready is not None
        for name in ("core", *GATEWAYS):
            assert f"worker.ready worker={name} " in notify.log_at_ready, f"READY=1 before {name} was ready"
        assert [v for _, v in notify.lines("READY")] == ["1"]
        health = healthz(server)
        assert health["status"] == "ok" and all(w["ready"] for w in health["workers"].values())
        async with asyncio.timeout(TEST_TIMEOUT_S):
            for gateway in GATEWAYS:  # and every gateway serves at once
                peer = await peer_on(server, "alice", gateway)
                peer.send(1, gateway.encode(), to=("alice",))
                assert (await peer.next(frames.SendAck)).status == 0
    finally:
        notify.close()


def test_watchdog_pings_only_while_every_worker_answers(
    tmp_path: Path, notify_socket: NotifyListener, served: list[Served]
) -> None:
    env = {"WATCHDOG_USEC": str(WATCHDOG_USEC), "KEFU_DEBUG_STALL_ON_SIGNAL": "2"}
    server = serve(tmp_path, served, env=env, notify=notify_socket)
    started = time.monotonic()
    wait_until(lambda: len(watchdogs(notify_socket, started)) >= 3, 5.0, "WATCHDOG=1 while every worker answers")

    # The supervisor's own loop stalled (its test-only hook): no WATCHDOG=1 meanwhile.
    stalled = time.monotonic()
    server.send(signal.SIGUSR2)
    wait_until(lambda: watchdogs(notify_socket, stalled + 2.0), 5.0, "WATCHDOG=1 after the supervisor's stall")
    assert watchdogs(notify_socket, stalled + 2 * PING_S, stalled + 2.0 - PING_S) == []

    # A gateway stopped for less than HUNG_AFTER_S: silence once it is overdue, pings again once it answers.
    gateway = server.workers()[GATEWAYS[1]]
    stopped = time.monotonic()
    os.kill(gateway, signal.SIGSTOP)
    try:
        time.sleep(SILENT_AFTER_S + 1.0)
    finally:
        os.kill(gateway, signal.SIGCONT)
    resumed = time.monotonic()
    assert watchdogs(notify_socket, stopped + SILENT_AFTER_S, resumed) == [], "WATCHDOG=1 while a worker was stalled"
    wait_until(lambda: watchdogs(notify_socket, resumed), 2.0, "WATCHDOG=1 once the worker answered again")
    assert server.workers()[GATEWAYS[1]] == gateway, "not restarted: it was stalled for less than HUNG_AFTER_S"

    # Stopped for good: killed after HUNG_AFTER_S, started again, counted; pings resume once the new one is ready.
    stopped = time.monotonic()
    os.kill(gateway, signal.SIGSTOP)
    respawned = stopped + wait_until(
        lambda: server.workers().get(GATEWAYS[1], gateway) != gateway, HUNG_AFTER_S + 3.0, "the hung gateway replaced"
    )
    assert respawned - stopped >= HUNG_AFTER_S - 1.5, "killed only once silent for HUNG_AFTER_S"
    assert not exists(gateway), "the hung process was killed"
    wait_until(lambda: watchdogs(notify_socket, respawned), 4.0, "WATCHDOG=1 once the new gateway is ready")
    assert watchdogs(notify_socket, stopped + SILENT_AFTER_S, respawned) == []
    text = fetch(server, "/metrics")[1]
    assert metric(text, "kefu_worker_restarts_total", role="gateway") == 1.0
    assert healthz(server)["workers"][GATEWAYS[1]]["restarts"] == 1


def test_the_debug_stall_hook_stalls_a_worker(
    tmp_path: Path, notify_socket: NotifyListener, served: list[Served]
) -> None:
    stall_s = SILENT_AFTER_S + 2.0
    env = {"WATCHDOG_USEC": str(WATCHDOG_USEC), "KEFU_DEBUG_STALL_ON_SIGNAL": str(stall_s)}
    server = serve(tmp_path, served, env=env, notify=notify_socket)
    gateway = server.workers()[GATEWAYS[0]]
    stalled = time.monotonic()
    os.kill(gateway, signal.SIGUSR2)
    time.sleep(SILENT_AFTER_S + 1.0)
    assert exists(gateway) and server.workers()[GATEWAYS[0]] == gateway, "SIGUSR2 stalls the worker, not kills it"
    assert watchdogs(notify_socket, stalled + SILENT_AFTER_S) == [], "no WATCHDOG=1 while the worker is stalled"
    wait_until(lambda: watchdogs(notify_socket, stalled + stall_s), 4.0, "WATCHDOG=1 once the stall is over")
    assert server.workers()[GATEWAYS[0]] == gateway, "a stall shorter than HUNG_AFTER_S costs no restart"
    log = server.log.read_text()
    assert [n for n in ("core", *GATEWAYS) if f"debug.stall_hook_armed worker={n} " not in log] == []


async def until_closed(peer: Peer) -> tuple[list[frames.Frame], dict[bytes, int]]:
    """Everything `peer` receives until its connection ends: (GOAWAYs, {client_msg_id: seq} of the OK SEND_ACKs)."""
    goaways, acked = [], {}
    while (event := await peer.inbox.get()) is not None:
        if isinstance(event, frames.Goaway):
            goaways.append(event)
        elif isinstance(event, frames.SendAck) and event.status == ErrorCode.OK:
            acked[event.client_msg_id] = event.seq
    return goaways, acked


@pytest.mark.asyncio
async def test_sigterm_drains_every_worker_and_leaves_no_process(
    tmp_path: Path, notify_socket: NotifyListener, served: list[Served]
) -> None:
    drain_s, conversation, burst = 4.0, 2, 100
    env = {"KEFU_SERVER_DRAIN_TIMEOUT_S": str(drain_s)}
    server = await asyncio.to_thread(serve, tmp_path, served, "alice", env=env, notify=notify_socket)
    async with asyncio.timeout(TEST_TIMEOUT_S):
        peers = [await peer_on(server, "alice", gateway) for gateway in GATEWAYS]
        peers[0].send(conversation, b"open", to=("alice",))
        assert (await peers[0].next(frames.SendAck)).status == 0
        tree = server.processes()
        assert set(server.workers().values()) <= set(tree) and len(tree) >= 1 + 1 + len(GATEWAYS)
        for peer in peers:  # SENDs on their way when the drain begins
            for i in range(burst):
                peer.send(conversation, f"in flight {i}".encode())
        ends = [asyncio.create_task(until_closed(peer)) for peer in peers]
        started = time.monotonic()
        server.send(signal.SIGTERM)
        code = await asyncio.to_thread(server.wait, drain_s + 5)
        took = time.monotonic() - started
        received = await asyncio.gather(*ends)
    assert code == 0 and took < drain_s, f"exit status {code} after {took:.1f} s"
    assert [v for _, v in notify_socket.lines("STOPPING")] == ["1"]
    assert [pid for pid in tree if exists(pid)] == [], "a process of the server outlived it"
    for gateway, (goaways, _) in zip(GATEWAYS, received, strict=True):
        assert [g.code for g in goaways] == [ErrorCode.SHUTTING_DOWN], f"one GOAWAY from {gateway}"
    acked = {cmid: seq for _, answered in received for cmid, seq in answered.items()}
    assert acked, "some SENDs were answered during the drain"

    # What was acknowledged during the drain was made durable before the core exited.
    await asyncio.to_thread(server.start)
    async with asyncio.timeout(TEST_TIMEOUT_S):
        reader = await connect_peer(server, "alice")
        last = max(acked.values())
        reader.send_frame(frames.Sync(conversation, 0, last, last, request_id=1))
        stored = {d.client_msg_id: d.seq for d in [await reader.next(frames.Deliver) for _ in range(last)]}
    assert sorted(stored.values()) == list(range(1, last + 1))
    assert {cmid: stored.get(cmid) for cmid in acked} == acked


def test_a_clean_stop_logs_no_error(tmp_path: Path, served: list[Served]) -> None:
    server = serve(tmp_path, served, "alice")
    assert server.stop() == 0
    errors = [line for line in server.log.read_text().splitlines() if " error " in line]
    assert errors == [], "a clean stop logged errors"


@pytest.mark.asyncio
async def test_sighup_reaches_every_worker(tmp_path: Path, served: list[Served]) -> None:
    config = tmp_path / "kefu.toml"
    config.write_text("[limits]\nconn_frames_per_s = 1000\nconn_frames_burst = 1000\n")
    server = await asyncio.to_thread(serve, tmp_path, served, "alice", args=("--config", str(config)))
    async with asyncio.timeout(TEST_TIMEOUT_S):
        peers = {gateway: await peer_on(server, "alice", gateway) for gateway in GATEWAYS}
        config.write_text("[limits]\nconn_frames_per_s = 1\nconn_frames_burst = 2\n")
        server.send(signal.SIGHUP)
        for name in ("core", *GATEWAYS):
            line = f"worker.reloaded worker={name} applied=limits.conn_frames_per_s,limits.conn_frames_burst"
            await asyncio.to_thread(wait_until, lambda n=line: n in server.log.read_text(), 5.0, f"{name} reloaded")
        for gateway, peer in peers.items():  # connections made before the reload get the new budget
            for _ in range(5):
                peer.send(3, b"x", to=("alice",))
            statuses = [(await peer.next(frames.SendAck)).status for _ in range(5)]
            assert ErrorCode.RATE_LIMITED in statuses, f"{gateway} applies the reloaded per-connection budget"
    assert server.alive and healthz(server)["status"] == "ok"


@pytest.mark.asyncio
async def test_a_dead_worker_is_started_again_and_counted(tmp_path: Path, served: list[Served]) -> None:
    server = await asyncio.to_thread(serve, tmp_path, served, "alice")
    async with asyncio.timeout(TEST_TIMEOUT_S):
        for name in (GATEWAYS[0], "core"):
            old = server.workers()[name]
            os.kill(old, signal.SIGKILL)
            took = await asyncio.to_thread(
                wait_until, lambda n=name, o=old: server.workers().get(n, o) != o, 2.0, f"{name} started again"
            )
            assert took < 1.5, f"{name} started again after {took:.2f} s"
        await asyncio.to_thread(
            wait_until, lambda: healthz(server)["status"] == "ok", 5.0, "every worker ready again", 0.1
        )
        text = fetch(server, "/metrics")[1]
        assert metric(text, "kefu_worker_restarts_total", role="gateway") == 1.0
        assert metric(text, "kefu_worker_restarts_total", role="core") == 1.0
        assert metric(text, "kefu_workers_up", role="gateway") == len(GATEWAYS)
        assert metric(text, "kefu_workers_up", role="core") == 1
        restarts = {name: w["restarts"] for name, w in healthz(server)["workers"].items()}
        assert restarts == {"core": 1, GATEWAYS[0]: 1, GATEWAYS[1]: 0}
        for gateway in GATEWAYS:  # and both gateways serve, through the new core
            peer = await peer_on(server, "alice", gateway)
            peer.send(4, b"after", to=("alice",))
            assert (await peer.next(frames.SendAck)).status == 0


@pytest.mark.asyncio
async def test_the_workers_stop_when_the_supervisor_is_killed(tmp_path: Path, served: list[Served]) -> None:
    server = await asyncio.to_thread(serve, tmp_path, served, "alice")
    workers = server.processes()[1:]  # the workers and their own children
    assert set(server.workers().values()) <= set(workers)
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            peers = [await peer_on(server, "alice", gateway) for gateway in GATEWAYS]
            os.kill(server.pid, signal.SIGKILL)
            await asyncio.to_thread(server.wait, 5)
            for peer in peers:  # the gateways close their connections
                await asyncio.wait_for(peer.lost, 5.0)
            await asyncio.to_thread(
                wait_until,
                lambda: not any(exists(pid) for pid in workers),
                10.0,
                "every worker gone with its supervisor",
            )
        with socket.socket() as probe:
            probe.settimeout(1)
            assert probe.connect_ex(("127.0.0.1", server.port)) != 0, "nothing listens on the port any more"
    finally:
        for pid in workers:  # orphans are no longer the server's descendants: end them by PID
            with contextlib.suppress(OSError):
                if "kefu" in Path(f"/proc/{pid}/cmdline").read_text():
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.asyncio
async def test_every_gateway_accepts_on_the_socket_systemd_passed(tmp_path: Path, served: list[Served]) -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=128) as listener:
        server = with_apps(Served(tmp_path / "data", env=WORKERS), "alice")
        served.append(server)
        await asyncio.to_thread(server.start, activate=listener)
        assert server.port == listener.getsockname()[1] and "inherited=true" in server.log.read_text()
        async with asyncio.timeout(TEST_TIMEOUT_S):
            landed: set[str] = set()
            for _ in range(64):  # whichever gateway's accept wakes first takes a connection
                peer = await connect_peer(server, "alice")
                assert peer.transport is not None
                landed.add(await asyncio.to_thread(gateway_of, server, peer.transport.get_extra_info("sockname")))
                if landed == set(GATEWAYS):
                    break
            assert landed == set(GATEWAYS), "both gateways accept on the one socket"
            old = server.workers()[GATEWAYS[0]]
            os.kill(old, signal.SIGKILL)
            # While it restarts, the other gateway (and then the new one) accept on the same socket.
            for _ in range(4):
                peer = await connect_peer(server, "alice")
                peer.send(5, b"still served", to=("alice",))
                assert (await peer.next(frames.SendAck)).status == 0
            await asyncio.to_thread(
                wait_until, lambda: healthz(server)["workers"][GATEWAYS[0]]["ready"], 5.0, "gateway-0 back", 0.1
            )
            assert server.workers()[GATEWAYS[0]] != old
