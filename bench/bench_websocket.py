"""Messages through the WebSocket gateway beside the TCP figure, in the same run against the same server (issue #17,
point 8).

::

    .venv/bin/python bench/bench_websocket.py [--pairs 150] [--seconds 5] [--runs 5] [--size 100] [--window 4]
                                              [--server-workers 1] [--suite national]

One `kefu serve` (per-connection rate limits and handshake admission out of the way) serves both transports. Each
run connects `--pairs` sender/receiver pairs (2 x pairs connections, each its own app, each pair its own
conversation) over one transport, all TCP or all WebSocket (ws://.../ws on the web port), then every sender sends
`--size`-byte messages closed-loop with at most `--window` waiting for their SEND_ACK (each durable before it is
answered), and every receiver acknowledges its DELIVERs. After a second of warm-up the next `--seconds` are timed:

- messages/s: DELIVERs received by the receivers (each one a message through the whole server: in, sequenced,
  made durable, out);
- server CPU per message: the CPU time of every server process (supervisor, core, gateways) over the timed window
  from /proc, divided by the messages;
- client CPU per message: this process's CPU (the load generator: the protocol core for 2 x pairs connections, and
  aiohttp's WebSocket framing for the WebSocket runs), divided by the messages.

With `--idle N` it measures memory instead: N idle connections (handshake done, nothing sent) over one transport to a
freshly started server, the growth of the server processes' resident memory (VmRSS, summed) divided by N; the server
is started again for each measurement (freed memory is not given back to the system), transports alternating.

Runs alternate TCP and WebSocket (`--runs` of each) so that both see the same machine; medians are reported with the
ratio WebSocket/TCP. The load generator and the server share the machine's cores, so the absolute rates are this
machine's, and the ratio is the figure to read. Results go to stdout and, as JSON, to
bench/results/issue17-websocket.json (`--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LOAD_ENV = {
    "KEFU_LIMITS_CONN_FRAMES_PER_S": "1000000",
    "KEFU_LIMITS_CONN_FRAMES_BURST": "1000000",
    "KEFU_LIMITS_CONN_BYTES_PER_S": "1000000000",
    "KEFU_LIMITS_CONN_BYTES_BURST": "1000000000",
    "KEFU_LIMITS_APP_FRAMES_PER_S": "1000000",
    "KEFU_LIMITS_APP_FRAMES_BURST": "1000000",
    "KEFU_LIMITS_HANDSHAKE_CPU_SHARE": "0",
    "KEFU_LIMITS_NEW_CONNS_PER_IP_PER_S": "100000",
    "KEFU_LIMITS_NEW_CONNS_PER_IP_BURST": "100000",
}
WARMUP_S = 1.0
CONNECT_BATCH = 50
CLK_TCK = os.sysconf("SC_CLK_TCK")


def server_rss_bytes(pids: list[int]) -> int:
    """Resident memory of these processes, summed (VmRSS from /proc/PID/status)."""
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return total


def server_cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes (from /proc/PID/stat; a gone process counts 0)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


class Load:
    """The closed loop: each sender keeps `window` SENDs waiting for their SEND_ACK; receivers count DELIVERs."""

    def __init__(self, size: int, window: int) -> None:
        self.body = bytes(size)
        self.window = window
        self.running = False
        self.delivered = 0
        self.acked = 0
        self.refused = 0
        self.outstanding: dict[Any, int] = {}

    def on_frame(self, peer: Any, frame: Any, now_ns: int) -> None:
        from kefu.protocol.frames import Deliver, SendAck  # noqa: PLC0415

        if isinstance(frame, Deliver):
            self.delivered += 1
        elif isinstance(frame, SendAck):
            self.outstanding[peer] -= 1
            if frame.status:
                self.refused += 1
            else:
                self.acked += 1
            if self.running:
                self.send(peer)

    def on_lost(self, peer: Any) -> None:
        pass

    def send(self, peer: Any) -> None:
        """One more SEND on `peer` (its conversation); the peer flushes after the events it is handling."""
        from kefu.protocol.frames import Send  # noqa: PLC0415

        peer.send(Send(os.urandom(16), peer.conversation, 1, self.body, (), request_id=1))
        self.outstanding[peer] = self.outstanding.get(peer, 0) + 1

    def fill(self, peer: Any) -> None:
        while self.outstanding.get(peer, 0) < self.window:
            self.send(peer)
        peer.flush()


async def connect(transport: str, url: str, port: int, peers: list[Any], session: Any) -> None:
    from bench.kefu_bench.wsclient import open_ws  # noqa: PLC0415

    loop = asyncio.get_running_loop()

    async def one(peer: Any) -> None:
        if transport == "ws":
            await open_ws(url, lambda: peer, session=session)
        else:
            await loop.create_connection(lambda: peer, "127.0.0.1", port)
        await asyncio.wait_for(peer.ticketed, 30)

    for start in range(0, len(peers), CONNECT_BATCH):
        await asyncio.gather(*(one(p) for p in peers[start : start + CONNECT_BATCH]))


async def measure(transport: str, server: Any, creds: list[Any], args: argparse.Namespace) -> dict[str, float]:
    """One run over `transport` ("tcp" or "ws"): fresh connections, warm-up, the timed window."""
    import aiohttp  # noqa: PLC0415

    from bench.kefu_bench.peer import BenchPeer  # noqa: PLC0415
    from kefu.protocol.frames import MetaEntry, Send  # noqa: PLC0415

    load = Load(args.size, args.window)
    peers = [BenchPeer(c, load, index=i) for i, c in enumerate(creds)]
    senders, receivers = peers[0::2], peers[1::2]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await connect(transport, f"ws://127.0.0.1:{server.web_port}/ws", server.port, peers, session)
        for i, (sender, receiver) in enumerate(zip(senders, receivers, strict=True)):
            sender.conversation = (os.getpid() << 24) + (int(time.time()) % 100_000) * 1000 + i + 1
            to = (MetaEntry("kefu.to", receiver.creds.app_id.encode()),)
            sender.send(Send(os.urandom(16), sender.conversation, 1, b"open", to, request_id=1))
            load.outstanding[sender] = 1
            sender.flush()
        while load.acked + load.refused < len(senders):  # every conversation exists before the loop starts
            await asyncio.sleep(0.01)
        load.running = True
        for sender in senders:
            load.fill(sender)
        await asyncio.sleep(WARMUP_S)
        pids = server.processes()
        d0, c0, s0, w0 = load.delivered, time.process_time(), server_cpu_s(pids), time.perf_counter()
        await asyncio.sleep(args.seconds)
        d1, c1, s1, w1 = load.delivered, time.process_time(), server_cpu_s(pids), time.perf_counter()
        load.running = False
        deadline = time.monotonic() + 10
        while any(load.outstanding.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for peer in peers:
            peer.abort()
        await asyncio.sleep(0.2)
    messages = d1 - d0
    return {
        "messages_per_s": messages / (w1 - w0),
        "server_cpu_us_per_msg": (s1 - s0) / messages * 1e6 if messages else float("nan"),
        "client_cpu_us_per_msg": (c1 - c0) / messages * 1e6 if messages else float("nan"),
        "messages": messages,
        "refused": load.refused,
    }


async def idle_memory(transport: str, server: Any, creds: list[Any], count: int) -> dict[str, float]:
    """`count` idle connections over `transport`: the server's memory growth per connection."""
    import aiohttp  # noqa: PLC0415

    from bench.kefu_bench.peer import BenchPeer, NullSink  # noqa: PLC0415

    await asyncio.sleep(1.0)  # the server's start-up work settles
    pids = server.processes()
    before = server_rss_bytes(pids)
    sink = NullSink()
    peers = [BenchPeer(creds[i % len(creds)], sink, index=i) for i in range(count)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await connect(transport, f"ws://127.0.0.1:{server.web_port}/ws", server.port, peers, session)
        await asyncio.sleep(2.0)
        after = server_rss_bytes(pids)
        for peer in peers:
            peer.abort()
        await asyncio.sleep(0.5)
    return {"connections": count, "rss_bytes_per_connection": (after - before) / count, "rss_before": before}


async def run_all(server: Any, creds: list[Any], args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {"tcp": [], "ws": []}
    for n in range(args.runs):
        for transport in ("tcp", "ws"):
            result = await measure(transport, server, creds, args)
            runs[transport].append(result)
            print(f"run {n + 1} {transport:>3}: {result['messages_per_s']:9,.0f} msg/s, server "
                  f"{result['server_cpu_us_per_msg']:6.1f} us/msg, client {result['client_cpu_us_per_msg']:6.1f} "
                  "us/msg", flush=True)  # fmt: skip
    return runs


def median_of(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", type=int, default=150, help="sender/receiver pairs (2 x pairs connections)")
    p.add_argument("--seconds", type=float, default=5.0, help="timed window of each run")
    p.add_argument("--runs", type=int, default=5, help="runs of each transport (alternating)")
    p.add_argument("--size", type=int, default=100, help="message body bytes")
    p.add_argument("--window", type=int, default=4, help="SENDs each sender keeps waiting for their SEND_ACK")
    p.add_argument("--server-workers", type=int, default=1, help="[server] workers of the server (0: one process)")
    p.add_argument("--suite", choices=("national", "international"), default="national")
    p.add_argument("--idle", type=int, default=0, help="measure memory per idle connection with this many instead")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "issue17-websocket.json")
    args = p.parse_args(argv)

    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        uvloop = None

    from bench.kefu_bench.peer import Credentials  # noqa: PLC0415
    from kefu.protocol.crypto import Suite  # noqa: PLC0415
    from kefu.server.identity.bulk import bulk_app_id, derive_secret  # noqa: PLC0415
    from kefu.server.runtime.launch import ServeProcess  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="kefu-bench-ws-") as tmp:
        data = Path(tmp) / "data"
        seed = os.urandom(16).hex()
        count = 2 * args.pairs
        subprocess.run(
            [sys.executable, "-m", "kefu.server.cli", "app", "add-bulk", "w", str(count), "--secret-seed", seed,
             "--data-dir", str(data)],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        env = {**LOAD_ENV, "KEFU_SERVER_WORKERS": str(args.server_workers), "KEFU_LOG_LEVEL": "warning"}
        server = ServeProcess(data, env=env, log_path=Path(tmp) / "server.log").start()
        try:
            pins = frozenset((data / "keys" / "pins.txt").read_text().split())
            suite = Suite.NATIONAL if args.suite == "national" else Suite.INTERNATIONAL
            creds = [
                Credentials(app, derive_secret(seed.encode(), app), pins, suite)
                for app in (bulk_app_id("w", i) for i in range(count))
            ]
            runner = uvloop.run if uvloop is not None else asyncio.run
            if args.idle:
                server.stop()
                return idle_report(args, argv, server, creds, runner)
            runs = runner(run_all(server, creds, args))
        finally:
            if server.alive:
                server.stop()
    summary = {
        transport: {
            key: median_of(runs[transport], key)
            for key in ("messages_per_s", "server_cpu_us_per_msg", "client_cpu_us_per_msg")
        }
        for transport in ("tcp", "ws")
    }
    ratio = {key: summary["ws"][key] / summary["tcp"][key] for key in summary["tcp"]}
    report = {
        "bench": "websocket",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "commit": subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "median": summary,
        "ws_over_tcp": ratio,
        "runs": runs,
    }
    print(f"median over {args.runs} runs each ({2 * args.pairs} connections, {args.size}-byte messages, window "
          f"{args.window}, {args.server_workers} gateway worker(s)):")  # fmt: skip
    for transport in ("tcp", "ws"):
        s = summary[transport]
        print(f"  {transport:>3}: {s['messages_per_s']:9,.0f} msg/s, server {s['server_cpu_us_per_msg']:6.1f} us/msg,"
              f" client {s['client_cpu_us_per_msg']:6.1f} us/msg")  # fmt: skip
    print(f"  ws/tcp: messages/s x{ratio['messages_per_s']:.2f}, server CPU/msg x{ratio['server_cpu_us_per_msg']:.2f},"
          f" client CPU/msg x{ratio['client_cpu_us_per_msg']:.2f}")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"raw results: {args.out}")
    return 0


def idle_report(args: argparse.Namespace, argv: list[str] | None, server: Any, creds: list[Any], runner: Any) -> int:
    """The --idle measurement: `server` (stopped) is started afresh for each run of each transport."""
    runs: dict[str, list[dict[str, float]]] = {"tcp": [], "ws": []}
    for n in range(args.runs):
        for transport in ("tcp", "ws"):
            server.start()
            try:
                result = runner(idle_memory(transport, server, creds, args.idle))
            finally:
                server.stop()
            runs[transport].append(result)
            print(f"run {n + 1} {transport:>3}: {result['rss_bytes_per_connection']:8,.0f} bytes per idle connection",
                  flush=True)  # fmt: skip
    summary = {t: median_of(runs[t], "rss_bytes_per_connection") for t in runs}
    print(f"median over {args.runs} runs each ({args.idle} idle connections): tcp {summary['tcp']:,.0f}, ws "
          f"{summary['ws']:,.0f} bytes per connection (x{summary['ws'] / summary['tcp']:.2f})")  # fmt: skip
    out = args.out.with_name(args.out.stem + "-idle.json")
    report = {
        "bench": "websocket-idle",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "median_rss_bytes_per_connection": summary,
        "runs": runs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"raw results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
