"""`throughput`: the closed-loop maximum, as durable messages delivered per server CPU-second.

C connections (C/2 visitor/agent pairs, both ends sending) each keep W SENDs unacknowledged. A message
counts once its DELIVER reached the other end; the SEND_ACK it needed came only after the fsync, and the
receiver's DELIVER_ACK goes out in the same read. The measured window is whole seconds after a warm-up:
deliveries are binned per second since t0 at the receivers, and the server's utime+stime is read at the
window's edges, so messages per server CPU-second = deliveries in the window / CPU seconds in the window.
"""

from __future__ import annotations

import argparse
import math
import time

from .common import Harness, plan_processes
from .scenario_chat import START_DELAY_S, merge_phase, p_ms, start_pairs


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


def run(args: argparse.Namespace) -> int:
    """The harness side of `throughput`."""
    pairs = max(1, args.connections // 2)
    procs = plan_processes(2 * pairs, args.processes or 2)
    warm, span = math.ceil(args.warmup), max(1, round(args.duration))
    params = {"connections": 2 * pairs, "window": args.window, "warmup_s": warm, "duration_s": span,
              "body_bytes": args.body_bytes, "processes": procs, "suite": args.suite}  # fmt: skip
    h = Harness(args, "throughput", params)
    try:
        pool, _ = start_pairs(h, pairs, procs, args.body_bytes)
        if h.report.notes:
            return h.finish()
        t0_ns = time.monotonic_ns() + int(START_DELAY_S * 1e9)
        t0 = t0_ns / 1e9
        pool.send("closed", phase=1, t0_ns=t0_ns, window=args.window)
        _sleep_until(t0 + warm)
        cpu0, w0 = h.server.cpu_s(), time.monotonic()
        _sleep_until(t0 + warm + span)
        cpu1, w1 = h.server.cpu_s(), time.monotonic()
        pool.send("end")
        done = pool.wait_phase("done1", timeout=60)
        pool.finish()
        result = merge_phase(list(done.values()), h.sampler.peak_rss_kb(since=t0), cpu1 - cpu0, w1 - w0, span)
        per_s = result["delivered_per_s"]
        in_window = sum(per_s[warm : warm + span])
        cpu = result["server_cpu_s"]
        r = h.report
        r.latency["send-to-deliver (closed loop)"] = result.pop("deliver")
        r.latency["SEND_ACK (closed loop)"] = result.pop("ack")
        r.series["sent"] = result.pop("sent_per_s")
        r.series["delivered"] = result.pop("delivered_per_s")
        r.summary.update({
            "delivered_in_window": in_window,
            "delivered_per_s": in_window / span,
            "server_cpu_s_in_window": cpu,
            "server_cpu_pct": 100 * cpu / (w1 - w0),
            "messages_per_server_cpu_s": in_window / cpu if cpu > 0 else math.nan,
            "ack_p99_ms": p_ms(r.latency["SEND_ACK (closed loop)"], 99),
            "deliver_p99_ms": p_ms(r.latency["send-to-deliver (closed loop)"], 99),
        })  # fmt: skip
        kept = ("sent", "acked", "delivered", "duplicates", "own_echoes", "unacked", "errors", "error_count")
        r.summary.update({key: result[key] for key in kept})
        r.summary["peak_rss_kib"] = result["peak_rss_kib"]
        r.notes.append("latency percentiles cover the whole phase (warm-up included), measured from the actual send")
        if result["own_echoes"]:
            echoes = result["own_echoes"]
            r.notes.append(f"{echoes:,} DELIVERs of a sender's own message came back to the device that sent it")
    finally:
        status = h.finish()
    return status
