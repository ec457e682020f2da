"""`kefu serve` with worker processes (two gateways and a core) on loopback, real LMDB: sessions across gateways,
limits held by the core for every gateway, and faults (a gateway killed, the core killed, a gateway stopped) under
load. Helpers: `workers_harness` (where a connection landed, placing connections, load from kefu.client clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from kefu.client import Client, new_conversation_id
from kefu.protocol import frames
from kefu.protocol.crypto import KeyType
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import HandshakeComplete, TicketReceived
from kefu.server.identity.keys import add_key

from .conftest import LOAD_LIMITS, ServerProcess
from .peer import Peer
from .workers_harness import (
    GATEWAYS,
    Traffic,
    client_on,
    connect_peer,
    fetch,
    healthz,
    held,
    history,
    metric,
    peer_on,
    probe_port,
    rss,
    start_server,
    wait_until,
)

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

TEST_TIMEOUT_S = 30.0
"""Upper bound of every test's body."""
GW0, GW1 = GATEWAYS


async def receive_all(peer: Peer, count: int) -> list[frames.Deliver]:
    return [await peer.next(frames.Deliver) for _ in range(count)]


# --- sessions across workers -----------------------------------------------------------------------------------


async def test_a_user_with_a_device_on_each_gateway_gets_every_message_on_both(tmp_path: Path) -> None:
    server = start_server(tmp_path, ("alice", "bob"))
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            alice = {gateway: await peer_on(server, "alice", gateway) for gateway in GATEWAYS}
            bob = await peer_on(server, "bob", GW0)
            conversation = 9001
            for i in range(50):
                bob.send(conversation, f"m{i}".encode(), to=("alice",))
            acks = [await bob.next(frames.SendAck) for _ in range(50)]
            assert [a.status for a in acks] == [0] * 50 and [a.seq for a in acks] == list(range(1, 51))
            for gateway, device in alice.items():
                got = await receive_all(device, 50)
                assert [(d.seq, d.body) for d in got] == [(i + 1, f"m{i}".encode()) for i in range(50)], gateway

            # One device's own message reaches the user's other device and bob, never the device that sent it.
            alice[GW0].send(conversation, b"from gateway-0")
            assert (await alice[GW0].next(frames.SendAck)).seq == 51
            for peer in (alice[GW1], bob):
                deliver = await peer.next(frames.Deliver)
                assert (deliver.seq, deliver.body) == (51, b"from gateway-0")
            bob.send(conversation, b"after")
            assert (await alice[GW0].next(frames.Deliver)).seq == 52, "the sender was not given its own message"
            assert (await alice[GW1].next(frames.Deliver)).seq == 52
    finally:
        server.kill()


async def test_a_ticket_resumes_on_the_other_gateway_and_is_claimed_once_per_host(tmp_path: Path) -> None:
    server = start_server(tmp_path, ("alice",))
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            first = await peer_on(server, "alice", GW0)
            issued = (await first.next(TicketReceived)).ticket
            ticket = dataclasses.replace(issued, received_at=time.time())  # the adapter stamps it

            resumed = await peer_on(server, "alice", GW1, ticket=ticket)
            done = resumed.ready.result()
            assert isinstance(done, HandshakeComplete) and done.resumed, "a ticket of gateway-0 resumes on gateway-1"
            reissued = dataclasses.replace((await resumed.next(TicketReceived)).ticket, received_at=time.time())
            resumed.send(77, b"resumed", to=("alice",))
            assert (await resumed.next(frames.SendAck)).status == 0

            # Used once: offered again, on either gateway, it is not accepted; the key shares the reference client
            # always sends make that a full handshake (spec section 5.6, "No resumption").
            for gateway in (GW0, GW1):
                replay = await peer_on(server, "alice", gateway, ticket=ticket)
                assert not replay.ready.result().resumed, f"the ticket was accepted twice (again on {gateway})"

            # A ticket issued on gateway-1 (after the resumption) resumes on gateway-0.
            back = await peer_on(server, "alice", GW0, ticket=reissued)
            assert back.ready.result().resumed
    finally:
        server.kill()


async def test_the_per_app_frame_limit_holds_across_gateways(tmp_path: Path) -> None:
    burst, per_s, each = 10, 1, 20
    env = {"KEFU_LIMITS_APP_FRAMES_BURST": str(burst), "KEFU_LIMITS_APP_FRAMES_PER_S": str(per_s)}
    server = start_server(tmp_path, ("alice", "bob"), env)
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            devices = [await peer_on(server, "alice", gateway) for gateway in GATEWAYS]
            started = time.monotonic()
            for i in range(each):
                for n, device in enumerate(devices):
                    device.send(1000 + 100 * n + i, b"x", to=("bob",))  # each SEND makes its own conversation
            statuses = [(await device.next(frames.SendAck)).status for device in devices for _ in range(each)]
            elapsed = time.monotonic() - started
        accepted = statuses.count(ErrorCode.OK)
        assert statuses.count(ErrorCode.RATE_LIMITED) == len(statuses) - accepted
        # One bucket for the app on the whole host: its burst and what it refilled meanwhile, not that per gateway.
        assert burst <= accepted <= burst + per_s * elapsed + 1, (accepted, elapsed)
    finally:
        server.kill()


async def test_the_per_address_connection_limit_holds_across_gateways(tmp_path: Path) -> None:
    burst, per_s = 5, 1
    env = {"KEFU_LIMITS_NEW_CONNS_PER_IP_BURST": str(burst), "KEFU_LIMITS_NEW_CONNS_PER_IP_PER_S": str(per_s)}
    server = start_server(tmp_path, ("alice",), env)
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            opened: list[Peer] = []
            tried = dict.fromkeys(GATEWAYS, 0)
            started = time.monotonic()
            # Connect from 127.0.0.1 until each gateway has been tried more often than the burst.
            while min(tried.values()) <= burst + 2 and sum(tried.values()) < 200:
                for _ in range(8):
                    with contextlib.suppress(ConnectionError):
                        opened.append(await connect_peer(server, "alice"))
                tried = await asyncio.to_thread(attempts_by_gateway, server)
            elapsed = time.monotonic() - started
            for peer in opened:  # a round trip on each: a refused connection is gone by its end
                with contextlib.suppress(ConnectionError, TimeoutError):
                    peer.send_frame(frames.Ping(1))
                    await peer.next(frames.Pong, timeout=2)
            accepted = sum(not peer.lost.done() for peer in opened)
            holding = healthz(server)["connections"]
        assert holding == accepted
        assert burst <= accepted <= burst + per_s * elapsed + 1, (accepted, elapsed, tried)
    finally:
        server.kill()


async def test_the_host_connection_limit_holds_across_gateways(tmp_path: Path) -> None:
    limit = 3
    server = start_server(tmp_path, ("alice",), {"KEFU_SERVER_MAX_CONNECTIONS": str(limit)})
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            # Under the limit on both gateways, then one over it on each.
            places = [await asyncio.to_thread(probe_port, server, g) for g in (GW0, GW1, GW0, GW1, GW0, GW1)]
            await asyncio.to_thread(wait_until, lambda: held(server)["core"] == 0, 5.0, "the probes forgotten")
            opened = []
            for port in places:
                with contextlib.suppress(ConnectionError):
                    opened.append(await connect_peer(server, "alice", local_port=port))
            for peer in opened:  # a round trip on each: a refused connection is gone by its end
                with contextlib.suppress(ConnectionError, TimeoutError):
                    peer.send_frame(frames.Ping(1))
                    await peer.next(frames.Pong, timeout=2)
            alive = [not peer.lost.done() for peer in opened]
            counts = await asyncio.to_thread(held, server)
        assert alive[:limit] == [True] * limit and not any(alive[limit:]), (alive, len(places))
        assert counts["core"] == counts[GW0] + counts[GW1] == limit, counts
    finally:
        server.kill()


def attempts_by_gateway(server: ServerProcess) -> dict[str, int]:
    """Connections each gateway took: those it holds and those it refused (from /healthz and the metrics)."""
    text = fetch(server, "/metrics/workers")[1]
    workers = healthz(server)["workers"]
    return {
        gateway: int(metric(text, "kefu_refused_connections_total", worker=gateway)) + workers[gateway]["connections"]
        for gateway in GATEWAYS
    }


async def test_a_new_connection_is_not_read_before_the_core_admits_it(tmp_path: Path) -> None:
    server = start_server(tmp_path, ("alice",))
    core = server.workers()["core"]
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            os.kill(core, signal.SIGSTOP)  # admission waits for the core
            try:
                waiting = asyncio.create_task(connect_peer(server, "alice"))
                done, _ = await asyncio.wait([waiting], timeout=1.5)
                assert not done, "the handshake ran before the core admitted the connection"
            finally:
                os.kill(core, signal.SIGCONT)
            peer = await waiting  # admitted once the core runs again
            assert peer.ready.result().app_id == "alice"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(core, signal.SIGCONT)
        server.kill()


# --- faults under load -----------------------------------------------------------------------------------------


SENDERS = {"s0": GW0, "s1": GW1}
RECEIVERS = {"r0": GW0, "r1": GW1}


async def traffic_on_both_gateways(server: ServerProcess) -> Traffic:
    """A sender and a receiver on each gateway, all four members of one new conversation (created here)."""
    traffic = Traffic(new_conversation_id())
    for name, gateway in {**SENDERS, **RECEIVERS}.items():
        traffic.clients[name] = await client_on(server, name, gateway)
    others = tuple(name for name in traffic.clients if name != "s0")
    await traffic.clients["s0"].send(traffic.conversation, "s0 open 0", to=others, timeout=10)
    return traffic


async def check_nothing_acknowledged_is_lost(traffic: Traffic) -> list[int]:
    """Every acknowledged SEND is stored at the seq its receipt gave, the conversation gapless; its seqs."""
    reader = traffic.clients["r1"]
    total = max(r.seq for r in traffic.receipts.values())
    stored = await history(reader, traffic.conversation, total)
    assert [m.seq for m in stored] == list(range(1, total + 1)), "gapless"
    by_cmid = {m.client_msg_id: m.seq for m in stored}
    assert len(by_cmid) == total, "every message stored once"
    lost = {cmid: r.seq for cmid, r in traffic.receipts.items() if by_cmid.get(cmid) != r.seq}
    assert lost == {}, "acknowledged messages missing or moved"
    return [m.seq for m in stored]


async def load_flowing(traffic: Traffic) -> list[asyncio.Task[None]]:
    """Receivers reading and every sender sending 300 paced messages; returns once the load flows (after 1 s)."""
    traffic.start_receiving()
    sending = [asyncio.create_task(traffic.send_paced(name, 300, 0.01)) for name in SENDERS]
    await asyncio.sleep(1.0)
    assert len(traffic.receipts) > 50, "load is flowing"
    return sending


async def receivers_have(traffic: Traffic, count: int) -> None:
    """Wait until every receiver has received `count` messages."""
    for name in RECEIVERS:
        await asyncio.to_thread(
            wait_until, lambda n=name: len(traffic.received.get(n, [])) >= count, 10.0, f"{name} got all"
        )


async def last_message_and_check(traffic: Traffic) -> list[int]:
    """One more SEND from s0 once the load is over, then the stored seqs checked against every acknowledgement
    (`check_nothing_acknowledged_is_lost`), and every receiver waited for; returns the stored seqs."""
    final = await traffic.clients["s0"].send(traffic.conversation, "s0 last 0", timeout=10)
    traffic.receipts[final.client_msg_id] = final
    seqs = await check_nothing_acknowledged_is_lost(traffic)
    await receivers_have(traffic, len(seqs))
    return seqs


def new_pid(server: ServerProcess, name: str, old: int) -> bool:
    pid = server.workers().get(name)
    return pid is not None and pid != old


async def test_a_killed_gateway_costs_only_its_own_clients_a_reconnect(tmp_path: Path) -> None:
    server = start_server(tmp_path, (*SENDERS, *RECEIVERS), LOAD_LIMITS)
    traffic: Traffic | None = None
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            traffic = await traffic_on_both_gateways(server)
            sending = await load_flowing(traffic)
            victim = server.workers()[GW0]
            killed = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            respawn = await asyncio.to_thread(wait_until, lambda: new_pid(server, GW0, victim), 2.0, "a new gateway-0")
            await asyncio.to_thread(wait_until, lambda: healthz(server)["workers"][GW0]["ready"], 5.0, "ready")
            await asyncio.gather(*sending)
            for name in ("s0", "r0"):  # gateway-0's clients came back: resumed with their ticket
                client = traffic.clients[name]
                assert client.reconnects >= 1 and client.resumed, name
            seqs = await last_message_and_check(traffic)
            for name in RECEIVERS:
                assert traffic.seqs(name) == seqs, f"{name} got every message once, in order"
            counts = await asyncio.to_thread(held, server)
        assert respawn < 1.0, f"the supervisor started gateway-0 again after {respawn:.2f} s"
        assert counts["core"] == counts[GW0] + counts[GW1] == len(traffic.clients), counts
        assert traffic.errors == {}, "no SEND failed: the killed gateway's clients sent again after reconnecting"
        for name in ("s1", "r1"):  # gateway-1's clients never noticed
            assert traffic.clients[name].reconnects == 0, name
        during = [at for at, m in traffic.received["r1"] if killed < at < killed + 1.0 and m.sender == "s1"]
        assert len(during) > 20, "gateway-1's receiver kept getting DELIVERs while gateway-0 was down"
    finally:
        if traffic is not None:
            await traffic.close()
        server.kill()


async def test_a_restarted_gateway_signs_with_the_keys_of_the_servers_start(tmp_path: Path) -> None:
    """`kefu keygen` on a running server takes effect at the server's next restart: a gateway the supervisor starts
    again in between signs with the key the other gateway signs with (clients pinned to the current pins get in)."""
    server = start_server(tmp_path, ("alice",))
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            add_key(server.data_dir, KeyType.SM2)  # what `kefu keygen --type sm2` does; pins.txt is not rewritten
            victim = server.workers()[GW0]
            os.kill(victim, signal.SIGKILL)
            await asyncio.to_thread(wait_until, lambda: new_pid(server, GW0, victim), 5.0, "a new gateway-0")
            await asyncio.to_thread(wait_until, lambda: healthz(server)["workers"][GW0]["ready"], 5.0, "ready")
            for gateway in GATEWAYS:  # a national handshake with the pins of the start, on each gateway
                peer = await peer_on(server, "alice", gateway)
                peer.close()
    finally:
        server.kill()


async def test_a_killed_core_loses_nothing_acknowledged_and_every_client_is_served_again(tmp_path: Path) -> None:
    server = start_server(tmp_path, (*SENDERS, *RECEIVERS), LOAD_LIMITS)
    traffic: Traffic | None = None
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            traffic = await traffic_on_both_gateways(server)
            sending = await load_flowing(traffic)
            victim = server.workers()["core"]
            os.kill(victim, signal.SIGKILL)
            acked_before = dict(traffic.receipts)
            # Every client asks for something while the core is down: its gateway keeps it and asks the new core.
            probes = {name: asyncio.create_task(serve_time(client, name)) for name, client in traffic.clients.items()}
            await asyncio.to_thread(wait_until, lambda: new_pid(server, "core", victim), 2.0, "a new core")
            restarted = time.monotonic()
            served = {name: await probe for name, probe in probes.items()}
            await asyncio.gather(*sending)
            seqs = await last_message_and_check(traffic)
            counts = await asyncio.to_thread(held, server)
        for cmid, receipt in acked_before.items():
            assert traffic.receipts[cmid].seq == receipt.seq
        assert counts["core"] == counts[GW0] + counts[GW1] == len(traffic.clients), "the new core knows every one"
        late = {name: round(at - restarted, 2) for name, at in served.items() if at - restarted > 5.0}
        assert late == {}, f"clients served again more than 5 s after the core's restart: {late}"
        assert traffic.errors == {}, "no SEND failed: the gateways sent the unanswered ones to the new core"
        assert {name: c.reconnects for name, c in traffic.clients.items()} == dict.fromkeys(traffic.clients, 0)
        for name in RECEIVERS:
            assert traffic.seqs(name) == seqs, f"{name} got every message once, in order"
    finally:
        if traffic is not None:
            await traffic.close()
        server.kill()


async def serve_time(client: Client, name: str) -> float:
    """When a SEND of `name` (made now, in a conversation of its own) was acknowledged (monotonic)."""
    await client.send(new_conversation_id(), f"probe {name}", to=(name,), timeout=20)
    return time.monotonic()


async def test_a_stopped_gateway_stalls_neither_the_core_nor_the_other_gateway(tmp_path: Path) -> None:
    server = start_server(tmp_path, (*SENDERS, *RECEIVERS), LOAD_LIMITS)
    traffic: Traffic | None = None
    stopped_pid = 0
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            traffic = await traffic_on_both_gateways(server)
            traffic.start_receiving()
            sending = asyncio.create_task(traffic.send_paced("s1", 450, 0.01))
            await asyncio.sleep(1.0)
            workers = server.workers()
            stopped_pid, core = workers[GW0], workers["core"]
            memory = {GW0: rss(stopped_pid), "core": rss(core)}
            stopped = time.monotonic()
            os.kill(stopped_pid, signal.SIGSTOP)
            await asyncio.sleep(3.0)
            os.kill(stopped_pid, signal.SIGCONT)
            resumed = time.monotonic()
            await sending
            seqs = await check_nothing_acknowledged_is_lost(traffic)
            await receivers_have(traffic, len(seqs))
            grown = {GW0: rss(stopped_pid) - memory[GW0], "core": rss(core) - memory["core"]}
            health = healthz(server)
        before = traffic.latencies("r1", "s1", 0, stopped)
        during = traffic.latencies("r1", "s1", stopped + 0.1, resumed)
        assert len(during) > 100, "s1 kept sending while gateway-0 was stopped"
        assert max(during) < max(0.5, 5 * max(before)), "gateway-1's client kept its latency"
        assert traffic.errors == {}
        # Stopped for less than HUNG_AFTER_S: the same process carried on, its clients kept their connections.
        assert server.workers()[GW0] == stopped_pid and health["workers"][GW0]["restarts"] == 0
        assert {name: c.reconnects for name, c in traffic.clients.items()} == dict.fromkeys(traffic.clients, 0)
        for name in RECEIVERS:
            assert traffic.seqs(name) == seqs, f"{name} got every message once, in order"
        assert max(grown.values()) < 64 << 20, f"memory grew by {grown} bytes"
    finally:
        if stopped_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(stopped_pid, signal.SIGCONT)
        if traffic is not None:
            await traffic.close()
        server.kill()


async def handshakes_on(server: ServerProcess, gateway: str) -> None:
    """alice completes a national handshake on `gateway` (the worker serves)."""
    peer = await peer_on(server, "alice", gateway)
    peer.close()


async def killed_and_back(server: ServerProcess, name: str, ready_within: float = 10.0) -> int:
    """SIGKILL worker `name` and wait until the supervisor started another and it is ready: the new one's PID."""
    victim = server.workers()[name]
    os.kill(victim, signal.SIGKILL)
    await asyncio.to_thread(wait_until, lambda: new_pid(server, name, victim), 5.0, f"a new {name}")
    await asyncio.to_thread(wait_until, lambda: healthz(server)["workers"][name]["ready"], ready_within, "ready")
    return server.workers()[name]


def children_of(pid: int) -> dict[int, tuple[str, str]]:
    """The processes whose parent is `pid`: PID -> (name, state)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                name, rest = stat.split("(", 1)[1].rsplit(")", 1)
                state, ppid = rest.split()[:2]
                if int(ppid) == pid:
                    found[int(entry.name)] = (name, state)
    return found


async def test_workers_are_forked_by_the_zygote_and_adopted_and_a_killed_core_leaves_no_zombie(
    tmp_path: Path,
) -> None:
    """The workers are forked from the zygote (`kefu.server.runtime.zygote`), named, and children of the supervisor;
    a killed core is forked again, and its orphaned indexer is reaped by the supervisor."""
    server = start_server(tmp_path, ("alice",))
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            children = children_of(server.pid)
            workers = server.workers()
            assert sorted(workers) == ["core", GW0, GW1]
            for name, pid in workers.items():
                assert children.get(pid, ("", ""))[0] == f"kefu-{name}", (name, children)
            assert [n for n, _ in children.values()].count("kefu-zygote") == 1, children
            core_children = children_of(workers["core"])
            assert sorted(name for name, _ in core_children.values()) == ["kefu-core-fork", "kefu-indexer"], (
                "the indexer, forked from the core's own zygote"
            )
            orphans = list(core_children)
            core = await killed_and_back(server, "core", ready_within=5.0)
            assert children_of(server.pid)[core][0] == "kefu-core"

            def reaped() -> bool:
                left = children_of(server.pid)
                return not any(pid in left for pid in orphans) and all(s != "Z" for _, s in left.values())

            await asyncio.to_thread(wait_until, reaped, 5.0, "the old core's children gone, no zombie")
            await handshakes_on(server, GW0)
    finally:
        server.kill()


async def test_without_the_zygote_the_workers_start_as_subprocesses(tmp_path: Path) -> None:
    """KEFU_ZYGOTE=0: every worker is `python -m kefu.server.runtime.worker`, and a killed gateway comes back so."""
    server = start_server(tmp_path, ("alice",), {"KEFU_ZYGOTE": "0"})
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            children = children_of(server.pid)
            assert "kefu-zygote" not in [name for name, _ in children.values()]
            workers = server.workers()
            assert sorted(workers) == ["core", GW0, GW1], "found by their command lines"
            assert all(children[pid][0].startswith("python") for pid in workers.values()), children
            await killed_and_back(server, GW0)
            await handshakes_on(server, GW0)
    finally:
        server.kill()


async def test_after_the_zygote_died_a_killed_worker_starts_as_a_subprocess(tmp_path: Path) -> None:
    """The zygote killed: the next restart falls back to `python -m kefu.server.runtime.worker`, and the dead
    zygote is reaped (no zombie)."""
    server = start_server(tmp_path, ("alice",))
    try:
        async with asyncio.timeout(TEST_TIMEOUT_S):
            (zygote,) = [pid for pid, (name, _) in children_of(server.pid).items() if name == "kefu-zygote"]
            os.kill(zygote, signal.SIGKILL)
            gateway = await killed_and_back(server, GW1)
            assert children_of(server.pid)[gateway][0].startswith("python"), "a subprocess"
            await asyncio.to_thread(wait_until, lambda: zygote not in children_of(server.pid), 3.0, "zygote reaped")
            await handshakes_on(server, GW1)
    finally:
        server.kill()


async def test_a_server_without_worker_processes_forks_its_indexer_too(tmp_path: Path) -> None:
    server = start_server(tmp_path, ("alice",), {"KEFU_SERVER_WORKERS": "0"})
    try:
        names = sorted(name for name, _ in children_of(server.pid).values())
        assert names == ["kefu-fork", "kefu-indexer"], names
        async with asyncio.timeout(TEST_TIMEOUT_S):
            peer = await connect_peer(server, "alice")
            peer.close()
    finally:
        server.kill()


async def test_a_sigterm_while_the_workers_start_stops_them_without_waiting_for_the_start(tmp_path: Path) -> None:
    """systemctl stop during a start (a core replaying a long log) must not wait for every worker to be ready, and
    the server must not announce itself: it stops what started, and exits 0 with no worker left behind."""
    server = ServerProcess(tmp_path / "data", env={"KEFU_SERVER_WORKERS": "2"})
    with server.log_path.open("ab") as log:
        proc = subprocess.Popen(server.command(), stdout=subprocess.PIPE, stderr=log, env=server.env)

    def named(prefix: str) -> list[int]:
        return [p for p, (name, _) in children_of(proc.pid).items() if name.startswith(prefix)]

    try:
        wait_until(lambda: named("kefu-core"), 30.0, "the core started")
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        workers = named("kefu-")
        out, _ = proc.communicate(timeout=30)
        took = time.monotonic() - stopped
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, server.log_tail()
    assert b"listening" not in out, "announced (and READY) after the SIGTERM: it waited for the start"
    assert took < 10.0, f"{took:.1f} s"
    assert [p for p in workers if Path(f"/proc/{p}").exists()] == [], "a worker outlived the server"
