"""Messages sent through the HTTP integration API beside the TCP figure, in the same run against the same server
(issue #17, point 8).

::

    .venv/bin/python bench/bench_http_api.py [--pairs 50] [--seconds 5] [--runs 5] [--size 100] [--window 4]
                                             [--server-workers 1] [--scheme KEFU-HMAC-SM3]

One `kefu serve` (rate limits out of the way, as bench_websocket.py sets them). Each run has `--pairs` senders, each
its own app and its own conversation with one receiver, and every receiver is a protocol connection over TCP that
acknowledges its DELIVERs. The senders send `--size`-byte messages closed-loop, at most `--window` each waiting for
their answer:

- tcp: the senders are protocol connections too (bench_websocket.py's TCP run: SEND, SEND_ACK once durable);
- http: the senders POST /v1/messages to the API, signed (`--scheme`), over keep-alive connections (one aiohttp
  session, `pairs x window` requests in flight); the 201 comes once the message is durable, as the SEND_ACK does.

After a second of warm-up the next `--seconds` are timed: messages/s counts the DELIVERs the receivers get (each one
a message through the whole server: in, sequenced, durable, out); server CPU per message is every server process's CPU
(supervisor, core, gateways) over the window from /proc; client CPU per message is this process's (the load
generator: for http it signs every request with HKDF + HMAC and parses JSON). Runs alternate tcp and http (`--runs`
of each); medians are reported with the ratio http/tcp. The load generator and the server share the machine's cores,
so the ratio is the figure to read. Results go to stdout and, as JSON, to bench/results/http_api.json (`--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_websocket import WARMUP_S, Load, connect  # noqa: E402
from bench.bench_websocket import measure as measure_protocol  # noqa: E402
from bench.kefu_bench import paired  # noqa: E402


class HttpLoad:
    """Closed-loop senders over the API: each of `window` tasks per sender POSTs one message after another."""

    def __init__(self, base: str, size: int) -> None:
        self.base = base
        self.text = "x" * size
        self.running = True
        self.acked = 0
        self.refused: dict[int, int] = {}

    async def sender(self, session: Any, signer: Any, conversation: int) -> None:
        while self.running:
            body = json.dumps(
                {"conversation_id": str(conversation), "client_msg_id": os.urandom(16).hex(), "text": self.text}
            ).encode()
            headers = signer.headers("POST", "/v1/messages", body)
            async with session.post(self.base + "/v1/messages", data=body, headers=headers) as response:
                await response.read()
                if response.status == 201:
                    self.acked += 1
                else:
                    self.refused[response.status] = self.refused.get(response.status, 0) + 1


async def measure_http(server: Any, creds: list[Any], args: argparse.Namespace) -> dict[str, float]:
    """One run with HTTP senders and TCP receivers: the conversations made by each sender's first message."""
    import aiohttp  # noqa: PLC0415

    from bench.kefu_bench.peer import BenchPeer  # noqa: PLC0415
    from kefu.client.http import Signer  # noqa: PLC0415

    receivers_load = Load(args.size, args.window)
    receivers = [BenchPeer(c, receivers_load, index=i) for i, c in enumerate(creds[1::2])]
    signers = [Signer(c.app_id, c.secret, scheme=args.scheme) for c in creds[0::2]]
    load = HttpLoad(f"http://127.0.0.1:{server.api_port}", args.size)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await connect("tcp", "", server.port, receivers, session)
        conversations = []
        for i, (signer, receiver) in enumerate(zip(signers, receivers, strict=True)):
            conversation = (os.getpid() << 24) + (int(time.time() * 10) % 100_000) * 1000 + i + 1
            opening = {"conversation_id": str(conversation), "client_msg_id": os.urandom(16).hex(), "text": "open",
                       "to": [receiver.creds.app_id]}  # fmt: skip
            data = json.dumps(opening).encode()
            async with session.post(
                load.base + "/v1/messages", data=data, headers=signer.headers("POST", "/v1/messages", data)
            ) as response:
                assert response.status == 201, await response.text()
            conversations.append(conversation)
        tasks = [
            asyncio.create_task(load.sender(session, signer, conversation))
            for signer, conversation in zip(signers, conversations, strict=True)
            for _ in range(args.window)
        ]
        await asyncio.sleep(WARMUP_S)
        window = await paired.timed_window(server, args.seconds, lambda: receivers_load.delivered)
        load.running = False
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        for peer in receivers:
            peer.abort()
        await asyncio.sleep(0.2)
    return {**window, "refused": sum(load.refused.values())}


async def run_all(server: Any, creds: list[Any], args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    measures = {
        "tcp": functools.partial(measure_protocol, "tcp", server, creds, args),
        "http": functools.partial(measure_http, server, creds, args),
    }
    return await paired.alternate(args.runs, measures, lambda result: f", refused {result['refused']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    paired.add_load_args(p, pairs=50, pairs_help="sender/receiver pairs", runs_of="path",
                         window_help="messages each sender keeps waiting for their answer")  # fmt: skip
    p.add_argument("--scheme", choices=("KEFU-HMAC-SM3", "KEFU-HMAC-SHA256"), default="KEFU-HMAC-SM3")
    p.add_argument("--suite", choices=("national", "international"), default="national", help="of the TCP peers")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "http_api.json")
    args = p.parse_args(argv)

    with paired.bulk_server("h", 2 * args.pairs, workers=args.server_workers, suite=args.suite,
                            temp_prefix="kefu-bench-http-") as (server, creds, _):  # fmt: skip
        runs = paired.runner()(run_all(server, creds, args))
    paired.conclude("http_api", argv, args, runs, "tcp", "http",
                    f"median over {args.runs} runs each ({args.pairs} senders and receivers, {args.size}-byte "
                    f"messages, window {args.window}, {args.server_workers} gateway worker(s), "
                    f"{args.scheme}):")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
