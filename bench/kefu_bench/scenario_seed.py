"""`seed-table`: the table customer-service vendors publish, measured on this machine.

Columns: concurrent users, message rate, P99 latency, server memory, crashes, errors. The users are
visitor/agent pairs (`chat`'s workers and open-loop schedule), all connected for the whole run; each rate
is one phase of `duration` seconds on the same connections. P99 is send-to-deliver from the scheduled send
time; server memory is the peak RSS during the phase; a crash is the server process dying or restarting.
"""

from __future__ import annotations

import argparse

from . import stats
from .common import Harness, plan_processes
from .scenario_chat import open_phase, p_ms, start_pairs


def run(args: argparse.Namespace) -> int:
    """The harness side of `seed-table`."""
    pairs = max(1, args.users // 2)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    procs = plan_processes(2 * pairs, args.processes or 2)
    params = {"users": 2 * pairs, "rates": rates, "duration_s": args.duration, "body_bytes": args.body_bytes,
              "processes": procs, "suite": args.suite}  # fmt: skip
    h = Harness(args, "seed-table", params)
    try:
        pool, connected = start_pairs(h, pairs, procs, args.body_bytes)
        for phase, rate in enumerate(rates, start=1):
            if h.report.notes or h.time_left() < args.duration + 40:
                h.report.notes.append(f"rate {rate:g}: not run (set-up failed or deadline near)")
                continue
            result = open_phase(h, pool, phase, rate, args.duration)
            deliver = result["deliver"]
            h.report.latency[f"{rate:g} msg/s send-to-deliver"] = deliver
            h.report.series[f"delivered at {rate:g} msg/s"] = result["delivered_per_s"]
            lost = result["sent"] - result["delivered"]
            h.report.rows.append({
                "concurrent users": connected,
                "message rate (msg/s)": result["achieved_rate"],
                "P99 latency (ms)": p_ms(deliver, 99),
                "P99.9 (ms)": p_ms(deliver, 99.9),
                "max (ms)": deliver.get_max_value() / 1000,
                "server RSS peak (MiB)": result["peak_rss_kib"] / 1024,
                "server CPU (%)": 100 * result["server_cpu_s"] / result["elapsed_s"],
                "crashes": int(not h.server.alive()),
                "errors": result["error_count"] + max(0, lost),
                "delivered/sent": f"{result['delivered']}/{result['sent']}",
            })  # fmt: skip
        pool.finish()
        h.report.summary.update({f"p99_ms_at_{int(row['message rate (msg/s)'])}": row["P99 latency (ms)"]
                                 for row in h.report.rows})  # fmt: skip
        h.report.summary["percentiles"] = ", ".join(f"p{p:g}" for p in stats.PERCENTILES)
    finally:
        status = h.finish()
    return status
