"""`handshake`: storms of full and of resumed handshakes, per suite.

C connectors (spread over the workers) each do K handshakes back to back: connect, handshake, wait for the
server's NEW_TICKET (which the server sends only after it verified the client's Finished, so the latency
covers all the server's work), then drop the connection with a reset (no TIME_WAIT on the client port).
Resumed storms first get one ticket per connector with an untimed full handshake, then each resumption
(PSK_ONLY: no key exchange) uses the ticket the previous one returned, as tickets are single-use.
Server CPU per handshake = the server's utime+stime over the storm / handshakes completed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import time
from typing import Any

from kefu.protocol.crypto import Suite
from kefu.protocol.tickets import SessionTicket

from . import stats
from .common import Harness, credentials, partition, plan_addresses, prepare
from .peer import BenchPeer, NullSink, open_peer, source_addresses
from .pool import Channel


async def _storm(
    channel: Channel, spec: dict[str, Any], suite: Suite, tickets: list[SessionTicket | None] | None, per: int
) -> dict[str, Any]:
    """Every connector does `per` handshakes; resumed ones chain tickets through `tickets`."""
    histogram = stats.new_histogram()
    per_second = stats.PerSecond(time.monotonic_ns())
    failures: dict[str, int] = {}
    resumed = 0
    addresses = source_addresses(spec["addresses"])
    sink = NullSink()
    out: list[SessionTicket | None] = list(tickets) if tickets else [None] * len(spec["users"])

    async def connector(c: int) -> None:
        nonlocal resumed
        creds = dataclasses.replace(credentials(spec, spec["prefix"], spec["users"][c]), suite=suite)
        for k in range(per):
            if channel.past_deadline():
                return
            peer = BenchPeer(creds, sink, c, ticket=out[c] if tickets else None)
            t0 = time.monotonic_ns()
            try:
                await open_peer(peer, spec["host"], spec["port"], addresses[(c + k) % len(addresses)])
            except (OSError, ConnectionError, TimeoutError) as exc:
                reason = str(exc)[:60] or type(exc).__name__
                failures[reason] = failures.get(reason, 0) + 1
                out[c] = None
            else:
                now = time.monotonic_ns()
                stats.record_ns(histogram, now - t0)
                per_second.add(now)
                resumed += peer.resumed
                out[c] = peer.ticket
                channel.progress("handshakes")
            finally:
                peer.abort()

    await asyncio.gather(*(connector(c) for c in range(len(spec["users"]))))
    return {"hdr": stats.encode(histogram), "failures": failures, "resumed": resumed, "tickets": out,
            "per_s": per_second.counts}  # fmt: skip


async def worker(channel: Channel, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the storms the harness asks for, one at a time."""
    prepare(spec)
    tickets: list[SessionTicket | None] = []
    while True:
        name, data = await channel.command()
        suite = Suite(data.get("suite", 0) or spec["suite"])
        if name == "prep":
            tickets = (await _storm(channel, spec, suite, None, 1))["tickets"]
            channel.phase(f"prepped{data['step']}", have=sum(t is not None for t in tickets))
        elif name == "go":
            result = await _storm(channel, spec, suite, tickets if data["resumed"] else None, data["per"])
            del result["tickets"]
            channel.phase(f"done{data['step']}", **result)
        else:
            return {}


def run(args: argparse.Namespace) -> int:
    """The harness side of `handshake`."""
    procs = args.processes or 2
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    addrs = plan_addresses(args.connectors * args.per_connector, args.addresses)
    params = {"connectors": args.connectors, "per_connector": args.per_connector, "suites": suites,
              "processes": procs, "addresses": addrs}  # fmt: skip
    h = Harness(args, "handshake", params)
    try:
        prefix = f"{args.prefix}h"
        h.users(prefix, args.connectors)
        specs = [{**h.base_spec(), "prefix": prefix, "users": list(r), "addresses": addrs}
                 for r in partition(args.connectors, procs)]  # fmt: skip
        pool = h.start_pool(worker, specs)
        step = 0
        for suite in suites:
            for resumed in (False, True):
                step += 1
                if h.time_left() < 30:
                    h.report.notes.append(f"skipped {suite} {'resumed' if resumed else 'full'}: deadline near")
                    continue
                _one_storm(h, pool, step, Suite[suite.upper()], resumed)
        pool.finish()
    finally:
        status = h.finish()
    return status


def _one_storm(h: Harness, pool: Any, step: int, suite: Suite, resumed: bool) -> None:
    args = h.args
    mode = "resumed (PSK_ONLY)" if resumed else "full"
    # One untimed full handshake per connector first: it warms up the workers and the server (lazy imports,
    # caches) and, for a resumed storm, gives every connector its first ticket.
    pool.send("prep", step=step, suite=int(suite))
    pool.wait_phase(f"prepped{step}", timeout=max(10.0, h.time_left() - 20))
    total = args.connectors * args.per_connector
    pool.bar("handshakes", total, f"{suite.name.lower()} {mode}")
    cpu0, t0 = h.server.cpu_s(), time.monotonic()
    pool.send("go", step=step, suite=int(suite), resumed=resumed, per=args.per_connector)
    done = pool.wait_phase(f"done{step}", timeout=max(10.0, h.time_left() - 20))
    cpu1, t1 = h.server.cpu_s(), time.monotonic()
    pool.close_bars()
    histogram = stats.merge([d["hdr"] for d in done.values()])
    count = histogram.get_total_count()
    failures: dict[str, int] = {}
    for d in done.values():
        for k, v in d["failures"].items():
            failures[k] = failures.get(k, 0) + v
    label = f"{suite.name.lower()} {mode}"
    h.report.latency[label] = histogram
    h.report.series[label] = stats.add_series([d["per_s"] for d in done.values()])
    s = stats.summary_ms(histogram)
    h.report.rows.append({
        "suite": suite.name.lower(), "mode": mode, "handshakes": count, "failures": sum(failures.values()),
        "resumed_share": sum(d["resumed"] for d in done.values()) / count if count else 0.0,
        "handshakes_per_s": count / (t1 - t0), "p50_ms": s.get("p50_ms", 0.0), "p99_ms": s.get("p99_ms", 0.0),
        "max_ms": s.get("max_ms", 0.0), "server_cpu_per_handshake_ms": 1000 * (cpu1 - cpu0) / count if count else 0.0,
        "server_cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0),
    })  # fmt: skip
    if failures:
        h.report.notes.append(f"{label} failures: {failures}")
    key = f"{suite.name.lower()}_{'resumed' if resumed else 'full'}"
    h.report.summary[f"{key}_per_s"] = h.report.rows[-1]["handshakes_per_s"]
    h.report.summary[f"{key}_server_cpu_ms"] = h.report.rows[-1]["server_cpu_per_handshake_ms"]
