"""`chat`: visitor/agent pairs at a fixed aggregate rate, open loop; send-to-deliver latency at the receiver.

The worker side is `traffic`. Here: users are bulk apps PREFIXm0, PREFIXm1, ... (visitor 2k, agent 2k+1),
pairs are split over the worker processes with both ends of a pair in the same process, and each process
sends its share of the rate. `open_phase` is also what seed-table runs once per rate.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

from hdrh.histogram import HdrHistogram

from . import stats, traffic
from .common import Harness, partition, plan_addresses, plan_processes
from .pool import Pool

START_DELAY_S = 1.5
"""The phase's t0 is this far ahead of the command, so that every worker starts on the same schedule."""


def start_pairs(h: Harness, pairs: int, procs: int, body_bytes: int) -> tuple[Pool, int]:
    """Create the users, start the workers, connect and create conversations; (pool, sessions connected)."""
    users = 2 * pairs
    addrs = plan_addresses(users, h.args.addresses)
    prefix = f"{h.args.prefix}m"
    h.users(prefix, users)
    base = int.from_bytes(os.urandom(3), "big") << 32  # a fresh conversation id range per run
    specs = [
        {**h.base_spec(), "prefix": prefix, "pairs": (r.start, r.stop), "addresses": addrs,
         "address_offset": 2 * r.start, "body_bytes": body_bytes, "conversation_base": base}
        for r in partition(pairs, procs)
    ]  # fmt: skip
    pool = h.start_pool(traffic.worker, specs)
    pool.bar("connected", users, "connecting")
    ready = pool.wait_phase("ready")
    pool.close_bars()
    connected = sum(d["connected"] for d in ready.values())
    bad = [d for d in ready.values() if not d["ok"]]
    if bad or len(ready) < len(pool):
        h.report.notes.append(f"set-up incomplete: {[(d['failures'], d['setup_errors']) for d in bad]}")
    h.report.summary["sessions_connected"] = connected
    return pool, connected


def shares(pairs: int, procs: int) -> list[float]:
    """Each worker's share of the pairs (and so of the rate)."""
    return [len(r) / pairs for r in partition(pairs, procs)]


def open_phase(h: Harness, pool: Pool, phase: int, rate: float, duration: float) -> dict[str, Any]:
    """One open-loop phase on every worker; the merged numbers, histograms and series."""
    t0_ns = time.monotonic_ns() + int(START_DELAY_S * 1e9)
    t0 = t0_ns / 1e9
    pool.bar("sent", int(rate * duration), f"{rate:g} msg/s")
    before = h.server.metrics()  # scraped before cpu0: the scrape's own CPU is not the phase's
    cpu0, disk0 = h.server.cpu_s(), h.server.disk_write_bytes()
    precise = not getattr(h.args, "asyncio_timer", False)
    pool.send("open", phase=phase, t0_ns=t0_ns, rate=rate / len(pool), duration=duration, precise_timer=precise)
    # Each worker gets rate/len(pool) only when pairs split evenly; partition() keeps them within one pair.
    done = pool.wait_phase(f"done{phase}", timeout=START_DELAY_S + duration + traffic.DRAIN_TIMEOUT_S + 30)
    pool.close_bars()
    cpu1, disk1 = h.server.cpu_s(), h.server.disk_write_bytes()
    after = h.server.metrics()
    h.report.phase_metrics[f"phase {phase}"] = {
        k: v - before.get(k, 0.0) for k, v in after.items() if not k.endswith("_created") and v != before.get(k, 0.0)
    }
    elapsed = max(time.monotonic() - t0, 1e-9)
    result = merge_phase(list(done.values()), h.sampler.peak_rss_kb(since=t0), cpu1 - cpu0, elapsed, duration)
    result["disk_bytes_per_message"] = (disk1 - disk0) / max(1, result["acked"])
    delta = {k: v - before.get(k, 0.0) for k, v in after.items()}
    # The server's own view (SEND read to DELIVER written), from its histogram: what the clients' numbers add to
    # it is the sender's lateness, both loopback hops and the receiving worker.
    result["server_delivery_p99_ms"] = 1000 * stats.bucket_quantile(delta, "kefu_delivery_latency_seconds", 0.99)
    return result


def merge_phase(
    parts: list[dict[str, Any]], peak_rss_kb: int, cpu_s: float, elapsed: float, duration: float
) -> dict[str, Any]:
    """Add up the workers' numbers of one phase."""
    errors: dict[str, int] = {}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
    sent = sum(p["sent"] for p in parts)
    acked = sum(p["acked"] for p in parts)
    delivered = sum(p["delivered"] for p in parts)
    if acked > delivered:  # every acknowledged message has one recipient device: a shortfall is a loss
        errors["undelivered"] = errors.get("undelivered", 0) + acked - delivered
    return {
        "sent": sent,
        "acked": acked,
        "delivered": delivered,
        "duplicates": sum(p["duplicates"] for p in parts),
        "own_echoes": sum(p["own_echoes"] for p in parts),
        "unacked": sum(p["unacked"] for p in parts),
        "errors": errors,
        "error_count": sum(errors.values()),
        "max_sender_lag_ms": max((p["max_sender_lag_ms"] for p in parts), default=0.0),
        "mean_sender_lag_ms": sum(p.get("sender_lag_sum_ms", 0.0) for p in parts) / max(1, sent),
        "deliver": stats.merge([p["deliver_hdr"] for p in parts]),
        "ack": stats.merge([p["ack_hdr"] for p in parts]),
        "sent_per_s": stats.add_series([p["sent_per_s"] for p in parts]),
        "delivered_per_s": stats.add_series([p["delivered_per_s"] for p in parts]),
        "peak_rss_kib": peak_rss_kb,
        "server_cpu_s": cpu_s,
        "elapsed_s": elapsed,
        "achieved_rate": sent / duration if duration else 0.0,
    }


def p_ms(histogram: HdrHistogram, percentile: float) -> float:
    """A percentile in ms (nan when empty)."""
    return histogram.get_value_at_percentile(percentile) / 1000 if histogram.get_total_count() else math.nan


def run(args: argparse.Namespace) -> int:
    """The harness side of `chat`."""
    procs = plan_processes(2 * args.pairs, args.processes or 2)
    params = {"pairs": args.pairs, "connections": 2 * args.pairs, "rate": args.rate, "duration_s": args.duration,
              "body_bytes": args.body_bytes, "processes": procs, "suite": args.suite}  # fmt: skip
    h = Harness(args, "chat", params)
    try:
        pool, _ = start_pairs(h, args.pairs, procs, args.body_bytes)
        if h.report.notes:
            return h.finish()
        result = open_phase(h, pool, 1, args.rate, args.duration)
        pool.finish()
        r = h.report
        r.latency["send-to-deliver (from scheduled send)"] = result.pop("deliver")
        r.latency["SEND_ACK (from scheduled send)"] = result.pop("ack")
        r.series["sent"] = result.pop("sent_per_s")
        r.series["delivered"] = result.pop("delivered_per_s")
        d = r.latency["send-to-deliver (from scheduled send)"]
        r.summary.update({f"deliver_p{p:g}_ms": p_ms(d, p) for p in stats.PERCENTILES})
        r.summary["deliver_max_ms"] = d.get_max_value() / 1000
        r.summary.update(result)
        r.summary["server_cpu_pct"] = 100 * result["server_cpu_s"] / result["elapsed_s"]
    finally:
        status = h.finish()
    return status
