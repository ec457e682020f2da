"""`connect`: ramp to N authenticated idle sessions, hold them, and weigh them in server memory.

RSS per idle session = (RSS while holding - RSS empty) / N. "Empty" is read after a warm-up of a few
handshakes per worker (so that first-use imports and caches count as the server's base, not as sessions)
and after those connections are gone; "holding" is the median reading of the hold, after a settling pause.
Every session completes a full handshake and the server's ticket proves it authenticated the client.
Keepalive is the protocol's maximum (300 s), so no pings flow during a hold of less than ~225 s.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from . import stats
from .common import Harness, Ramp, credentials, partition, plan_addresses, plan_processes, prepare
from .peer import BenchPeer, Sweeper
from .pool import Channel
from .report import per_session_kb

SETTLE_S = 2.0
"""Pause after the ramp (and after the warm-up) before memory is read: let freed buffers go back."""
WARMUP_PER_WORKER = 4


class _Counter:
    """Counts connections lost."""

    def __init__(self) -> None:
        self.lost = 0

    def on_frame(self, peer: BenchPeer, frame: Any, now_ns: int) -> None:
        pass

    def on_lost(self, peer: BenchPeer) -> None:
        self.lost += 1


async def worker(channel: Channel, spec: dict[str, Any]) -> dict[str, Any]:
    """Warm up, ramp on command, hold until told to stop."""
    prepare(spec)
    sink = _Counter()
    ramp = Ramp(channel, spec, sink)
    users = spec["users"]
    warm = await ramp.open_all([credentials(spec, spec["prefix"], u) for u in users[:WARMUP_PER_WORKER]], bar="warmup")
    for peer in warm:
        if peer is not None:
            peer.abort()
    channel.phase("warmed")
    name, data = await channel.command()
    if name != "ramp":
        return {"connected": 0}
    sink.lost = 0
    ramp.handshakes.reset()
    ramp.per_second = stats.PerSecond(data["t0_ns"])
    t0 = time.monotonic()
    opened = await ramp.open_all([credentials(spec, spec["prefix"], u) for u in users])
    peers = [p for p in opened if p is not None]
    ramp_s = time.monotonic() - t0
    sweeper = Sweeper(peers).start()
    channel.phase("ramped", connected=len(peers), seconds=ramp_s)
    await channel.command()
    still = sum(1 for p in peers if p.usable)
    sweeper.stop()
    for peer in peers:
        peer.abort()
    return {
        "connected": len(peers),
        "still_connected": still,
        "lost": sink.lost,
        "ramp_s": ramp_s,
        "failures": ramp.failures,
        "handshakes": stats.encode(ramp.handshakes),
        "connected_per_s": ramp.per_second.counts,
    }


def run(args: argparse.Namespace) -> int:
    """The harness side of `connect`."""
    n = args.connections
    procs = plan_processes(n, args.processes)
    addrs = plan_addresses(n, args.addresses)
    params = {"connections": n, "hold_s": args.hold, "processes": procs, "addresses": addrs, "suite": args.suite}
    h = Harness(args, "connect", params)
    try:
        _run(h, n, procs, addrs)
    finally:
        status = h.finish()
    return status


def _run(h: Harness, n: int, procs: int, addrs: int) -> None:
    args, server, sampler, report = h.args, h.server, h.sampler, h.report
    prefix = f"{args.prefix}c"
    h.users(prefix, n)
    specs = [
        {**h.base_spec(), "prefix": prefix, "users": list(r), "addresses": addrs, "address_offset": r.start}
        for r in partition(n, procs)
    ]
    pool = h.start_pool(worker, specs)
    pool.wait_phase("warmed")
    time.sleep(SETTLE_S)
    empty = []
    for _ in range(3):
        empty.append(sampler.sample().rss_kb)
        time.sleep(0.3)
    rss_empty = int(statistics.median(empty))
    cpu0, t0 = server.cpu_s(), time.monotonic()
    pool.bar("connected", n, "connecting")
    pool.send("ramp", t0_ns=time.monotonic_ns())
    ramped = pool.wait_phase("ramped")
    pool.close_bars()
    cpu1, t1 = server.cpu_s(), time.monotonic()
    connected = sum(d["connected"] for d in ramped.values())
    time.sleep(min(SETTLE_S, max(0.0, h.time_left() - 30)))
    hold_start = time.monotonic()
    cpu2 = server.cpu_s()
    holding: list[int] = []
    while time.monotonic() - hold_start < args.hold and h.time_left() > 25:
        holding.append(sampler.sample().rss_kb)
        time.sleep(1.0)
    holding.append(sampler.sample().rss_kb)
    hold_s = time.monotonic() - hold_start
    cpu3 = server.cpu_s()
    results = pool.finish()
    rss_hold = int(statistics.median(holding))
    still = sum(r.get("still_connected", 0) for r in results)
    report.latency["handshake (connect to ticket)"] = stats.merge([r.get("handshakes", "") for r in results])
    report.series["sessions connected"] = stats.add_series([r.get("connected_per_s", []) for r in results])
    failures: dict[str, int] = {}
    for r in results:
        for k, v in r.get("failures", {}).items():
            failures[k] = failures.get(k, 0) + v
    report.summary.update({
        "sessions_requested": n,
        "sessions_connected": connected,
        "sessions_alive_at_end_of_hold": still,
        "lost_during_hold": sum(r.get("lost", 0) for r in results),
        "connect_failures": sum(failures.values()),
        "ramp_s": t1 - t0,
        "ramp_sessions_per_s": connected / (t1 - t0) if t1 > t0 else 0.0,
        "server_cpu_per_handshake_ms": 1000 * (cpu1 - cpu0) / connected if connected else 0.0,
        "rss_empty_kib": rss_empty,
        "rss_holding_kib": rss_hold,
        "rss_per_idle_session_kib": per_session_kb(rss_hold, rss_empty, connected),
        "hold_s": hold_s,
        "server_cpu_while_holding_pct": 100 * (cpu3 - cpu2) / hold_s if hold_s else 0.0,
    })  # fmt: skip
    if failures:
        report.notes.append(f"connect failures by reason: {failures}")
