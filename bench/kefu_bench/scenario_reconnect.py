"""`reconnect-storm`: restart the server under N sessions; time until everyone is back and caught up.

Each worker holds its receivers and one sender; the sender shares a group conversation with every block of
up to `GROUP` receivers. With all connected (each holding a ticket), the harness stops the server with
SIGTERM (it drains: GOAWAY to everyone), tells the workers the server is down, and starts it again on the
same port and data directory. While it is down the sender "sends" one message per group: it is queued,
as a client library's outbox would, and goes out as soon as the sender is back. Every client reconnects as
the GOAWAY advised (the delay, then exponential backoff with jitter while refused), resuming with its
ticket, and asks SYNC for what it missed. Measured from the moment the restarted server listens: when each
client completed its handshake, how many resumed, and when each receiver got the downtime message.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

from kefu.protocol.frames import Deliver, Frame, Goaway, MetaEntry, Send, Sync

from . import stats
from .common import Harness, Ramp, credentials, partition, plan_addresses, plan_processes, prepare, wait_until
from .peer import BenchPeer, Sweeper, open_peer, source_addresses
from .pool import Channel

GROUP = 1000
"""Receivers per group conversation (the member list travels in one metadata value of at most 64 KiB)."""
DOWNTIME_BODY = b"sent while the server was down"
WELCOME_BODY = b"welcome"
STORM_TIMEOUT_S = 180.0


class Storm:
    """The sink of every peer: reconnects lost peers as GOAWAY advised, and notes who got what, when."""

    def __init__(self, channel: Channel, spec: dict[str, Any]) -> None:
        self.channel = channel
        self.spec = spec
        self.addresses = source_addresses(spec["addresses"])
        self.peers: list[BenchPeer] = []
        self.armed = False
        self.stopping = False
        self.advice = (1.0, 0.5, 30.0, 0.2)  # delay, initial backoff, max backoff, jitter (GOAWAY defaults)
        self.back_ns: dict[int, int] = {}
        self.caught_ns: dict[int, int] = {}
        self.welcomed: set[int] = set()
        self.resumed = 0
        self.attempts = 0
        self.outbox: list[tuple[int, bytes]] = []
        self.failures: dict[str, int] = {}

    def on_frame(self, peer: BenchPeer, frame: Frame, now_ns: int) -> None:
        if isinstance(frame, Goaway):
            self.advice = (frame.reconnect_delay_ms / 1000, frame.backoff_initial_ms / 1000,
                           frame.backoff_max_ms / 1000, frame.jitter_permille / 1000)  # fmt: skip
        elif isinstance(frame, Deliver):
            if frame.body == DOWNTIME_BODY:
                self.caught_ns.setdefault(peer.index, now_ns)
            elif frame.body == WELCOME_BODY:
                self.welcomed.add(peer.index)

    def on_lost(self, peer: BenchPeer) -> None:
        if self.armed and not self.stopping and self.peers[peer.index] is peer:
            asyncio.get_running_loop().create_task(self._reconnect(peer))

    def _jitter(self, seconds: float) -> float:
        return seconds * (1 + random.uniform(-self.advice[3], self.advice[3]))

    async def _reconnect(self, old: BenchPeer) -> None:
        delay, backoff, most, _ = self.advice
        await asyncio.sleep(self._jitter(delay))
        while not self.stopping and not self.channel.past_deadline():
            peer = BenchPeer(old.creds, self, old.index, ticket=old.ticket)
            peer.conversation = old.conversation
            self.attempts += 1
            try:
                address = self.addresses[(old.index + self.attempts) % len(self.addresses)]
                await open_peer(peer, self.spec["host"], self.spec["port"], address)
            except (OSError, ConnectionError, TimeoutError) as exc:
                reason = (str(exc) or type(exc).__name__)[:60]
                self.failures[reason] = self.failures.get(reason, 0) + 1
                peer.abort()
                await asyncio.sleep(self._jitter(backoff))
                backoff = min(backoff * 2, most)
                continue
            self._back(peer)
            return

    def _back(self, peer: BenchPeer) -> None:
        self.peers[peer.index] = peer
        self.back_ns[peer.index] = time.monotonic_ns()
        self.resumed += peer.resumed
        self.channel.progress("back")
        if peer.index == 0:  # the sender: its outbox goes out now
            for conversation, body in self.outbox:
                peer.send(_send(conversation, body, ()))
            self.outbox.clear()
        else:
            peer.send(Sync(0, 0, 0, 0, request_id=1))  # catch up on every conversation behind its cursor
        peer.flush()


_counter = iter(range(1, 1 << 62))


def _send(conversation: int, body: bytes, meta: tuple[MetaEntry, ...]) -> Send:
    n = next(_counter)
    return Send(n.to_bytes(8, "big") + random.randbytes(8), conversation, 1, body, meta, request_id=n & 0x7FFFFFFF)


async def worker(channel: Channel, spec: dict[str, Any]) -> dict[str, Any]:
    """Connect, set up groups, ride out the restart, report."""
    prepare(spec)
    storm = Storm(channel, spec)
    ramp = Ramp(channel, spec, storm)
    creds = [credentials(spec, spec["prefix"], spec["sender"])]
    creds += [credentials(spec, spec["prefix"], u) for u in spec["users"]]
    opened = await ramp.open_all(creds)
    if any(p is None for p in opened):
        channel.phase("ready", ok=False, failures=ramp.failures)
        return {}
    storm.peers = [p for p in opened if p is not None]
    sweeper = Sweeper(storm.peers).start()
    groups = _setup(storm, spec)
    ok = await wait_until(lambda: len(storm.welcomed) >= len(spec["users"]), 60.0, 0.05)
    channel.phase("ready", ok=ok, failures=ramp.failures, groups=len(groups))
    storm.armed = True
    await channel.command()  # "down": the server has exited
    storm.outbox = [(conversation, DOWNTIME_BODY) for conversation in groups]
    _, data = await channel.command()  # "up": listening again since data["t_ns"]
    n = len(storm.peers)
    await wait_until(lambda: len(storm.back_ns) >= n and len(storm.caught_ns) >= n - 1, STORM_TIMEOUT_S, 0.05)
    storm.stopping = True
    sweeper.stop()
    t_up = data.get("t_ns", 0)
    back, caught = stats.new_histogram(), stats.new_histogram()
    for t in storm.back_ns.values():
        stats.record_ns(back, t - t_up)
    for t in storm.caught_ns.values():
        stats.record_ns(caught, t - t_up)
    for peer in storm.peers:
        peer.abort()
    return {
        "clients": n, "back": len(storm.back_ns), "caught_up": len(storm.caught_ns), "resumed": storm.resumed,
        "attempts": storm.attempts, "failures": storm.failures,
        "back_hdr": stats.encode(back), "caught_hdr": stats.encode(caught),
        "last_back_s": (max(storm.back_ns.values(), default=t_up) - t_up) / 1e9,
        "last_caught_s": (max(storm.caught_ns.values(), default=t_up) - t_up) / 1e9,
    }  # fmt: skip


def _setup(storm: Storm, spec: dict[str, Any]) -> list[int]:
    """The sender creates one group conversation per block of receivers; returns their ids."""
    sender = storm.peers[0]
    groups = []
    receivers = storm.peers[1:]
    for g in range(0, len(receivers), GROUP):
        conversation = spec["conversation_base"] + len(groups)
        names = ",".join(p.creds.app_id for p in receivers[g : g + GROUP]).encode()
        sender.send(_send(conversation, WELCOME_BODY, (MetaEntry("kefu.to", names),)))
        groups.append(conversation)
    sender.flush()
    return groups


def run(args: argparse.Namespace) -> int:
    """The harness side of `reconnect-storm`."""
    n = args.connections
    procs = plan_processes(n, args.processes or 2)
    addrs = plan_addresses(2 * n, args.addresses)
    params = {"connections": n, "processes": procs, "addresses": addrs, "suite": args.suite, "group_size": GROUP}
    h = Harness(args, "reconnect-storm", params)
    try:
        if not h.server.spawned:
            raise SystemExit("kefu_bench: reconnect-storm restarts the server, so it must spawn it")
        _run(h, n, procs, addrs)
    finally:
        status = h.finish()
    return status


def _run(h: Harness, n: int, procs: int, addrs: int) -> None:
    prefix = f"{h.args.prefix}r"
    h.users(prefix, n + procs)
    base = random.getrandbits(24) << 32
    specs = [
        {**h.base_spec(), "prefix": prefix, "users": list(r), "sender": n + w, "addresses": addrs,
         "address_offset": r.start, "conversation_base": base + (w << 16)}
        for w, r in enumerate(partition(n, procs))
    ]  # fmt: skip
    pool = h.start_pool(worker, specs)
    pool.bar("connected", n + procs, "connecting")
    ready = pool.wait_phase("ready")
    pool.close_bars()
    if not all(d["ok"] for d in ready.values()) or len(ready) < procs:
        h.report.notes.append(f"set-up failed: {[d.get('failures') for d in ready.values()]}")
        return
    t_term = time.monotonic()
    stopped, listening = h.server.restart(between=lambda: pool.send("down"))
    t_up_ns = int(listening * 1e9)
    pool.send("up", t_ns=t_up_ns)
    pool.bar("back", n + procs, "reconnecting")
    results = pool.finish(grace=min(STORM_TIMEOUT_S + 20, max(5.0, h.time_left() - 10)))
    r = h.report
    r.latency["reconnected (from listening again)"] = stats.merge([x["back_hdr"] for x in results])
    r.latency["caught up (from listening again)"] = stats.merge([x["caught_hdr"] for x in results])
    clients = sum(x["clients"] for x in results)
    back = sum(x["back"] for x in results)
    r.summary.update({
        "clients": clients,
        "receivers": n,
        "drain_and_exit_s": stopped - t_term,
        "restart_to_listening_s": listening - stopped,
        "reconnected": back,
        "resumed_share": sum(x["resumed"] for x in results) / back if back else 0.0,
        "caught_up": sum(x["caught_up"] for x in results),
        "connect_attempts": sum(x["attempts"] for x in results),
        "all_reconnected_s": max((x["last_back_s"] for x in results), default=0.0),
        "all_caught_up_s": max((x["last_caught_s"] for x in results), default=0.0),
        "sigterm_to_all_caught_up_s": (listening - t_term) + max((x["last_caught_s"] for x in results), default=0.0),
    })  # fmt: skip
    r.notes.append("times are from the moment the restarted server printed that it listens, unless named otherwise")
    failures: dict[str, int] = {}
    for x in results:
        for k, v in x.get("failures", {}).items():
            failures[k] = failures.get(k, 0) + v
    if failures:
        r.notes.append(f"failed reconnect attempts by reason (each retried with backoff): {failures}")
