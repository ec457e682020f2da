"""The JavaScript client (clients/js) in Node against a real server over the WebSocket port, per suite (issue #17).

::

    .venv/bin/python bench/bench_js_client.py [--runs 5] [--seconds 5] [--window 8] [--size 100] [--connects 9]

One `kefu serve` (per-connection rate limits and handshake admission out of the way). Each run is one Node process
(bench/js_client_bench.mjs) for one suite; runs alternate national and international so that both see the same
machine. A run measures:

- connect time: `connect()` of a fresh client (WebSocket open and a full handshake: ECDHE, the server's signature
  verified, APP_SECRET proof), and the reconnect after its connection is dropped (a resumed handshake with the
  ticket, PSK_ONLY), each the median of `--connects`;
- messages/s: one sender keeps `--window` SENDs of `--size` bytes waiting for their SEND_ACK, one receiver (another
  client in the same process) counts DELIVERs over `--seconds` after a second of warm-up; client CPU per message is
  the Node process's CPU (both clients: sealing, opening, framing) over the window divided by the messages.

Medians of the runs are printed and written as JSON to bench/results/issue17-js-client.json (`--out`). The server
and Node share the machine's cores: the rates are this machine's; the suite ratio is the figure to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.kefu_bench.target import LOAD_ENV  # noqa: E402 - after the path set-up
from kefu.server.runtime.launch import ServeProcess  # noqa: E402

SUITES = ("national", "international")


def add_app(data_dir: Path, name: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", "app", "add", name, "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line for line in out.stdout.splitlines() if line.strip()][-1].strip()


def one_run(config: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(
        ["node", "--experimental-websocket", str(ROOT / "bench" / "js_client_bench.mjs"), json.dumps(config)],
        capture_output=True, text=True, check=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--connects", type=int, default=9)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "issue17-js-client.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        secrets = {name: add_app(data_dir, name) for name in ("alice", "bob")}
        server = ServeProcess(data_dir, env=LOAD_ENV)
        server.start()
        try:
            pins = sorted((data_dir / "keys" / "pins.txt").read_text().split())
            base = {
                "ws": f"ws://127.0.0.1:{server.web_port}/ws",
                "pins": pins,
                "secrets": secrets,
                "seconds": args.seconds,
                "window": args.window,
                "size": args.size,
                "connects": args.connects,
            }
            runs: dict[str, list[dict[str, Any]]] = {suite: [] for suite in SUITES}
            for i in range(args.runs):
                for suite in SUITES:
                    run = one_run({**base, "suite": suite})
                    runs[suite].append(run)
                    print(f"run {i + 1} {suite}: {json.dumps(run)}", flush=True)
        finally:
            server.stop()
    keys = ("full_ms", "resumed_ms", "msgs_per_s", "client_cpu_us_per_msg")
    medians = {s: {k: statistics.median(r[k] for r in runs[s] if r[k] is not None) for k in keys} for s in SUITES}
    report = {
        "bench": "bench_js_client",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "load_avg": os.getloadavg(),
            "node": subprocess.run(["node", "--version"], check=False, capture_output=True, text=True).stdout.strip(),
        },
        "medians": medians,
        "runs": runs,
    }
    for suite in SUITES:
        m = medians[suite]
        print(f"{suite}: connect {m['full_ms']:.1f} ms full, {m['resumed_ms']:.1f} ms resumed; "
              f"{m['msgs_per_s']:,.0f} msg/s, {m['client_cpu_us_per_msg']:.0f} us client CPU per message")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
