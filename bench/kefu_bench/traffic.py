"""The messaging worker shared by chat, throughput and seed-table: visitor/agent pairs in one process.

Theory of operation: a worker holds pairs (visitor 2k, agent 2k+1), each pair with its own conversation,
created by a first SEND naming the agent in "kefu.to". Then it runs phases on command:

- ``open`` (chat, seed-table): message i of the phase is *scheduled* at t0 + i/rate and sent by pair
  i mod pairs, visitor and agent taking turns. The sender loop sends every message whose time has come and
  sleeps until the next one; a message sent late is still measured from its scheduled time, so a sender
  or event loop that falls behind shows up as latency instead of silently sending less (no coordinated
  omission). The body starts with the scheduled time (CLOCK_MONOTONIC ns, comparable across processes on
  one host), so the receiving peer computes send-to-deliver latency itself. SEND_ACK latency is measured
  from the same scheduled time.
- ``closed`` (throughput): every connection keeps `window` SENDs unacknowledged, sending the next one as
  each SEND_ACK comes back, until told to stop; latencies there are from the actual send time.

Deliveries are counted once per message (a REDELIVERY of one already seen counts as a duplicate) and per
second since the phase's t0, for the throughput plot.
"""

from __future__ import annotations

import asyncio
import gc
import os
import struct
import time
from typing import Any

from kefu.protocol.frames import Deliver, Error, Flag, Frame, MetaEntry, Send, SendAck

from . import stats
from .clock import PreciseTimer
from .common import Ramp, credentials, prepare, wait_until
from .peer import BenchPeer, Sweeper
from .pool import Channel

HEAD = struct.Struct("!QQI")
"""Body prefix: scheduled (or sent) time in monotonic ns, message index in the phase, phase number."""
CMID = struct.Struct("!IHHQ")
"""client_msg_id (16 bytes): run nonce, worker, phase (low 16 bits), message index."""
SETUP_PHASE = 0xFFFFFFFF
SETUP_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 15.0
"""After the last send, how long to wait for outstanding SEND_ACKs and DELIVERs."""
MEMBERS_KEY = "kefu.to"
MIN_SLEEP_S = 0.001
"""Without a timerfd (`clock.PreciseTimer`: not Linux), the open-loop sender sleeps with asyncio, never less than
uvloop's timer resolution (1 ms): a shorter sleep (at 5,000 msg/s over two workers the next message is 0.4 ms
away) fires at once, so the sender spun and took half the clients' core from the peers receiving DELIVERs. A
message is still sent once its time has come and measured from its scheduled time; it just leaves in the next
1 ms batch, and that wait is charged to its latency. The timerfd wakes the sender at each message's time."""


class Traffic:
    """The sink of every peer of the worker: acks, deliveries, errors and the phase's numbers."""

    def __init__(self, wid: int, body_bytes: int) -> None:
        self.wid = wid
        self.nonce = int.from_bytes(os.urandom(4), "big")
        self.body_bytes = max(body_bytes, HEAD.size)
        self.pad = b"k" * (self.body_bytes - HEAD.size)
        self.phase = SETUP_PHASE
        self.reset(SETUP_PHASE, 0)
        self.stopping = False
        self.lost = 0

    def reset(self, phase: int, t0_ns: int, expected: int = 0) -> None:
        """Start counting a new phase."""
        self.phase = phase
        self.t0_ns = t0_ns
        self.pending: dict[bytes, int] = {}
        self.window: dict[BenchPeer, int] = {}
        self.seen = bytearray(expected)
        self.sent = self.acked = self.delivered = self.duplicates = self.echoes = 0
        self.errors: dict[str, int] = {}
        self.deliver_hist = stats.new_histogram()
        self.ack_hist = stats.new_histogram()
        self.sent_ps = stats.PerSecond(t0_ns)
        self.delivered_ps = stats.PerSecond(t0_ns)
        self.max_lag_ns = 0
        self.lag_sum_ns = 0.0
        self.refill: int = 0
        self.next_index = 0

    def error(self, what: str, n: int = 1) -> None:
        """Count an error of kind `what`."""
        self.errors[what] = self.errors.get(what, 0) + n

    def cmid(self, index: int) -> bytes:
        """A client message id unique to (run, worker, phase, index)."""
        return CMID.pack(self.nonce, self.wid, self.phase & 0xFFFF, index)

    def make_send(self, conversation_id: int, index: int, stamp_ns: int, meta: tuple[MetaEntry, ...] = ()) -> Send:
        """A SEND with the timing header in its body."""
        body = HEAD.pack(stamp_ns, index, self.phase) + self.pad
        cmid = self.cmid(index)
        self.pending[cmid] = stamp_ns
        return Send(cmid, conversation_id, 1, body, meta, request_id=(index & 0x7FFFFFFF) + 1)

    # --- Sink -------------------------------------------------------------------------------------------

    def on_frame(self, peer: BenchPeer, frame: Frame, now_ns: int) -> None:
        if type(frame) is Deliver:
            if frame.sender == peer.creds.app_id:
                self.echoes += 1  # the server sent a device its own message back (see the scenario notes)
            else:
                self._deliver(frame, now_ns)
        elif type(frame) is SendAck:
            self._ack(peer, frame, now_ns)
        elif type(frame) is Error:
            self.error(f"ERROR {frame.code}")

    def on_lost(self, peer: BenchPeer) -> None:
        self.lost += 1
        if not self.stopping:
            self.error("connection lost")

    def _deliver(self, frame: Deliver, now_ns: int) -> None:
        stamp, index, phase = HEAD.unpack_from(frame.body)
        if phase != self.phase:
            return
        if index < len(self.seen):
            if self.seen[index]:
                self.duplicates += 1
                return
            self.seen[index] = 1
        elif frame.flags & Flag.REDELIVERY:
            self.duplicates += 1  # closed loop: no index map; count redeliveries apart
            return
        self.delivered += 1
        stats.record_ns(self.deliver_hist, now_ns - stamp)
        self.delivered_ps.add(now_ns)

    def _ack(self, peer: BenchPeer, frame: SendAck, now_ns: int) -> None:
        stamp = self.pending.pop(frame.client_msg_id, None)
        if stamp is None:
            return
        if frame.status:
            self.error(f"SEND_ACK status {frame.status}")
        else:
            self.acked += 1
            stats.record_ns(self.ack_hist, now_ns - stamp)
        if self.refill and not self.stopping and peer.usable:
            _send_next(self, peer, now_ns)

    def result(self) -> dict[str, Any]:
        """This phase's numbers, ready to cross to the harness."""
        return {
            "sent": self.sent,
            "acked": self.acked,
            "delivered": self.delivered,
            "duplicates": self.duplicates,
            "own_echoes": self.echoes,
            "unacked": len(self.pending),
            "errors": dict(self.errors),
            "max_sender_lag_ms": self.max_lag_ns / 1e6,
            "sender_lag_sum_ms": self.lag_sum_ns / 1e6,
            "deliver_hdr": stats.encode(self.deliver_hist),
            "ack_hdr": stats.encode(self.ack_hist),
            "sent_per_s": self.sent_ps.counts,
            "delivered_per_s": self.delivered_ps.counts,
        }


def _send_next(traffic: Traffic, peer: BenchPeer, now_ns: int) -> None:
    """Closed loop: one more SEND from `peer` into its pair's conversation."""
    index = traffic.next_index
    traffic.next_index += 1
    peer.send(traffic.make_send(peer.conversation, index, now_ns))
    traffic.sent += 1
    traffic.sent_ps.add(now_ns)


async def worker(channel: Channel, spec: dict[str, Any]) -> dict[str, Any]:
    """Connect the pairs, create their conversations, then run phases until told to stop."""
    prepare(spec)
    traffic = Traffic(channel.wid, spec["body_bytes"])
    ramp = Ramp(channel, spec, traffic)
    pairs: range = range(*spec["pairs"])
    creds = [credentials(spec, spec["prefix"], 2 * p + side) for p in pairs for side in (0, 1)]
    opened = await ramp.open_all(creds)
    peers = [p for p in opened if p is not None]
    sweeper = Sweeper(peers).start()
    ok = len(peers) == len(opened) and await _setup(traffic, opened, pairs, spec)  # type: ignore[arg-type]
    _freeze_peers()
    channel.phase("ready", connected=len(peers), ok=ok, failures=ramp.failures, setup_errors=traffic.errors)
    phases: list[dict[str, Any]] = []
    name = "stop"
    while ok:
        name, data = await channel.command()
        if name == "open":
            await _open_loop(channel, traffic, opened, data)  # type: ignore[arg-type]
        elif name == "closed":
            name = await _closed_loop(channel, traffic, opened, data)  # type: ignore[arg-type]
        else:
            break
        phases.append(traffic.result())
        channel.phase(f"done{data['phase']}", **phases[-1])
        if name == "stop":
            break
    traffic.stopping = True
    sweeper.stop()
    for peer in peers:
        peer.abort()
    return {"connected": len(peers), "handshakes": stats.encode(ramp.handshakes), "phases": phases}


def _freeze_peers() -> None:
    """Move the worker's thousands of peers (cores, keys, transports) out of the cyclic collector's reach.

    Without this, a full collection over them paused a worker for 30-100 ms (350 ms in one run), and every
    DELIVER waiting in that worker was charged the pause as if the server had been slow."""
    gc.collect()
    gc.freeze()


async def _setup(traffic: Traffic, peers: list[BenchPeer], pairs: range, spec: dict[str, Any]) -> bool:
    """Each visitor's first SEND creates its pair's conversation with the agent."""
    traffic.reset(SETUP_PHASE, time.monotonic_ns(), len(pairs))
    for k, pair in enumerate(pairs):
        visitor, agent = peers[2 * k], peers[2 * k + 1]
        conversation = spec["conversation_base"] + pair
        visitor.conversation = agent.conversation = conversation
        meta = (MetaEntry(MEMBERS_KEY, agent.creds.app_id.encode()),)
        visitor.send(traffic.make_send(conversation, k, time.monotonic_ns(), meta))
        visitor.flush()
        if k % 256 == 255:
            await asyncio.sleep(0)
    n = len(pairs)
    done = await wait_until(lambda: traffic.acked + sum(traffic.errors.values()) >= n and traffic.delivered >= n,
                            SETUP_TIMEOUT_S, 0.05)  # fmt: skip
    return done and not traffic.errors


async def _open_loop(channel: Channel, traffic: Traffic, peers: list[BenchPeer], data: dict[str, Any]) -> None:
    """Send at `rate` for `duration` seconds from `t0_ns`, each message against its scheduled time."""
    rate, t0 = data["rate"], data["t0_ns"]
    total = int(rate * data["duration"])
    traffic.reset(data["phase"], t0, total)
    period = 1e9 / rate
    npairs = len(peers) // 2
    i = 0
    dirty: set[BenchPeer] = set()
    timer = PreciseTimer.create(asyncio.get_running_loop()) if data.get("precise_timer", True) else None
    while i < total and not channel.past_deadline():
        now = time.monotonic_ns()
        due = min(total, int((now - t0) / period) + 1) if now >= t0 else 0
        if due <= i:
            if timer is not None:
                await timer.wait_until(int(t0 + i * period))
            else:
                await asyncio.sleep(max(MIN_SLEEP_S, (t0 + i * period - now) / 1e9))
            continue
        for j in range(i, due):
            pair = j % npairs
            sender = peers[2 * pair + ((j // npairs) & 1)]
            if not sender.usable:
                traffic.error("send on a lost connection")
                continue
            sender.send(traffic.make_send(sender.conversation, j, int(t0 + j * period)))
            dirty.add(sender)
        traffic.sent += due - i
        traffic.sent_ps.add(now, due - i)
        n = due - i  # how late these left: the first one most, the last one least
        traffic.max_lag_ns = max(traffic.max_lag_ns, now - int(t0 + i * period))
        traffic.lag_sum_ns += n * (now - t0) - period * (i + due - 1) * n / 2
        for peer in dirty:
            peer.flush()
        dirty.clear()
        channel.progress("sent", due - i)
        i = due
        await asyncio.sleep(0)
    if timer is not None:
        timer.close()
    await wait_until(lambda: not traffic.pending and traffic.delivered >= traffic.acked, DRAIN_TIMEOUT_S, 0.05)


async def _closed_loop(channel: Channel, traffic: Traffic, peers: list[BenchPeer], data: dict[str, Any]) -> str:
    """Keep `window` SENDs in flight on every connection until the next command (or the deadline); returns
    that command's name."""
    traffic.reset(data["phase"], data["t0_ns"])
    traffic.refill = data["window"]
    while time.monotonic_ns() < data["t0_ns"]:
        await asyncio.sleep(0.001)
    now = time.monotonic_ns()
    for peer in peers:
        if peer.usable:
            for _ in range(data["window"]):
                _send_next(traffic, peer, now)
            peer.flush()
    command = None
    while command is None and not channel.past_deadline():
        await asyncio.sleep(0.05)
        command = channel.poll()
    traffic.refill = 0
    await wait_until(lambda: not traffic.pending, DRAIN_TIMEOUT_S, 0.05)
    return command[0] if command is not None else "stop"
