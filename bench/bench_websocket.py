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
import functools
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.kefu_bench import paired  # noqa: E402

WARMUP_S = 1.0
CONNECT_BATCH = 50


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
        window = await paired.timed_window(server, args.seconds, lambda: load.delivered)
        load.running = False
        deadline = time.monotonic() + 10
        while any(load.outstanding.values()) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        for peer in peers:
            peer.abort()
        await asyncio.sleep(0.2)
    return {**window, "refused": load.refused}


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
    measures = {transport: functools.partial(measure, transport, server, creds, args) for transport in ("tcp", "ws")}
    return await paired.alternate(args.runs, measures, lambda result: "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    paired.add_load_args(p, pairs=150, pairs_help="sender/receiver pairs (2 x pairs connections)", runs_of="transport",
                         window_help="SENDs each sender keeps waiting for their SEND_ACK")  # fmt: skip
    p.add_argument("--suite", choices=("national", "international"), default="national")
    p.add_argument("--idle", type=int, default=0, help="measure memory per idle connection with this many instead")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "issue17-websocket.json")
    args = p.parse_args(argv)

    with paired.bulk_server("w", 2 * args.pairs, workers=args.server_workers, suite=args.suite,
                            temp_prefix="kefu-bench-ws-") as (server, creds, _):  # fmt: skip
        run = paired.runner()
        if args.idle:
            server.stop()
            return idle_report(args, argv, server, creds, run)
        runs = run(run_all(server, creds, args))
    paired.conclude("websocket", argv, args, runs, "tcp", "ws",
                    f"median over {args.runs} runs each ({2 * args.pairs} connections, {args.size}-byte messages, "
                    f"window {args.window}, {args.server_workers} gateway worker(s)):")  # fmt: skip
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
    summary = {t: paired.median_of(runs[t], "rss_bytes_per_connection") for t in runs}
    print(f"median over {args.runs} runs each ({args.idle} idle connections): tcp {summary['tcp']:,.0f}, ws "
          f"{summary['ws']:,.0f} bytes per connection (x{summary['ws'] / summary['tcp']:.2f})")  # fmt: skip
    header = paired.run_header("websocket-idle", argv, args, commit=False)
    report = {**header, "median_rss_bytes_per_connection": summary, "runs": runs}
    paired.write_report(args.out.with_name(args.out.stem + "-idle.json"), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
