"""`python -m bench.kefu_bench SCENARIO [options]`: the command line of the load harness."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from .report import OUT_DIR

SCENARIOS = {
    "connect": "scenario_connect",
    "handshake": "scenario_handshake",
    "chat": "scenario_chat",
    "throughput": "scenario_throughput",
    "reconnect-storm": "scenario_reconnect",
    "seed-table": "scenario_seed",
}

SMOKE: dict[str, dict[str, Any]] = {
    "connect": {"connections": 40, "hold": 1.0, "processes": 2},
    "handshake": {"connectors": 4, "per_connector": 3, "processes": 2},
    "chat": {"pairs": 10, "rate": 100.0, "duration": 2.0, "processes": 2},
    "throughput": {"connections": 8, "window": 4, "duration": 2.0, "warmup": 0.5, "processes": 2},
    "reconnect-storm": {"connections": 20, "processes": 2},
    "seed-table": {"users": 20, "rates": "50,100", "duration": 1.5, "processes": 2},
}
"""The tiny configurations `--smoke` selects (the self-tests run these)."""


def _common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server and run")
    g.add_argument("--port", type=int, default=0, help="target a running server on this port (else spawn one)")
    g.add_argument("--pid", type=int, default=0, help="the running server's PID (for RSS and CPU)")
    g.add_argument("--data-dir", help="the running server's data dir (pins, bulk apps); with a spawned one: where")
    g.add_argument("--spawn-server", action="store_true", help="start a server in a temp dir (the default)")
    g.add_argument("--server-log-level", default="warning", help="log level of a spawned server (default warning)")
    pin_help = "pin a spawned server to the first CPU and the clients to the others (default: on; --no-pin)"
    g.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True, help=pin_help)
    g.add_argument("--keep-data", action="store_true", help="keep a spawned server's temporary data directory")
    g.add_argument("--max-seconds", type=float, default=300.0, help="hard deadline of the whole run (default 300)")
    g.add_argument("--processes", type=int, default=0, help="client worker processes (default: per scenario)")
    g.add_argument("--addresses", type=int, default=0, help="loopback source addresses 127.0.0.2... (default auto)")
    g.add_argument("--concurrency", type=int, default=64, help="handshakes in flight per worker while ramping")
    g.add_argument("--suite", choices=("national", "international"), default="national", help="cipher suite")
    g.add_argument("--seed", default="kefu-bench", help="secret seed of the bulk apps (kefu app add-bulk)")
    g.add_argument("--prefix", default="bench", help="prefix of the bulk app ids")
    g.add_argument("--out", default=str(OUT_DIR), help=f"where results go (default {OUT_DIR})")
    g.add_argument("--smoke", action="store_true", help="a tiny configuration, for the self-tests")


def _pacing(p: argparse.ArgumentParser) -> None:
    """The open-loop scenarios' pacing option."""
    p.add_argument(
        "--asyncio-timer", action="store_true",
        help="pace sends with asyncio.sleep (1 ms batches) instead of a timerfd, as the harness did before",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree."""
    parser = argparse.ArgumentParser(prog="python -m bench.kefu_bench", description="kefu load harness.")
    sub = parser.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    p = sub.add_parser("connect", help="hold N idle authenticated sessions; server RSS per session")
    p.add_argument("--connections", type=int, default=15_000)
    p.add_argument("--hold", type=float, default=30.0, help="seconds to hold the sessions idle")
    p = sub.add_parser("handshake", help="full and resumed handshake storms per suite")
    p.add_argument("--connectors", type=int, default=64, help="concurrent connectors in all")
    p.add_argument("--per-connector", type=int, default=40, help="handshakes each connector does per phase")
    p.add_argument("--suites", default="national,international")
    p = sub.add_parser("chat", help="open-loop chat at a fixed rate; send-to-deliver latency")
    p.add_argument("--pairs", type=int, default=5000, help="visitor/agent pairs (2 connections each)")
    p.add_argument("--rate", type=float, default=5000.0, help="messages per second in all")
    p.add_argument("--duration", type=float, default=30.0)
    p.add_argument("--body-bytes", type=int, default=200)
    _pacing(p)
    p = sub.add_parser("throughput", help="closed-loop maximum: durable messages per server CPU-second")
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--window", type=int, default=8, help="unacknowledged SENDs per connection")
    p.add_argument("--duration", type=float, default=20.0, help="seconds measured")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before the measurement starts")
    p.add_argument("--body-bytes", type=int, default=200)
    p = sub.add_parser("reconnect-storm", help="restart the server under N sessions; time to reconnect and catch up")
    p.add_argument("--connections", type=int, default=5000)
    p = sub.add_parser("seed-table", help="the vendor-style table: users, rate, p99, RSS, crashes, errors")
    p.add_argument("--users", type=int, default=10_000, help="concurrent users (half visitors, half agents)")
    p.add_argument("--rates", default="1000,5000", help="message rates to run, comma-separated")
    p.add_argument("--duration", type=float, default=60.0, help="seconds per rate")
    p.add_argument("--body-bytes", type=int, default=200)
    _pacing(p)
    for action in sub.choices.values():
        _common(action)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one scenario; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.smoke:
        defaults = build_parser().parse_args([args.scenario])
        for key, value in SMOKE[args.scenario].items():
            if getattr(args, key) == getattr(defaults, key):
                setattr(args, key, value)
        if args.max_seconds == defaults.max_seconds:
            args.max_seconds = 60.0
    module = importlib.import_module(f"{__package__}.{SCENARIOS[args.scenario]}")
    status: int = module.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
