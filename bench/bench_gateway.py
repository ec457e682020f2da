"""The per-message work of a gateway, without the network: what one message costs the process holding the
connections, in the open-loop regime where nothing batches (one SEND read, one SEND_ACK written, one DELIVER written,
one DELIVER_ACK read, each on its own connection, each its own record).

    .venv/bin/python bench/bench_gateway.py [--messages 20000] [--runs 5] [--suite national] [--profile]

Real parts: `kefu.server.edge.gateway.Gateway` and its `Session`s with real protocol cores after real handshakes
(records sealed and opened with the suite's AEAD), the engine's delivery side (`Outbound`), the metrics. Fakes: the
transports (a write is counted, not sent) and the core (a `CorePort` that records requests; the benchmark answers them
as the core would: SUBMITTED, then PUBLISH of the message's encoded DELIVER to the receiving session). The loop is
uvloop's, run one iteration per step so that the gateway's flush pass runs as in production.

It prints the CPU per message (process time), median of the runs. It measures the gateway's Python and crypto, not
the kernel's socket work (about 4 x 10-15 us per message on a VM) nor the link's.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import os
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import uvloop

from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.crypto import Suite
from kefu.protocol.frames import AckEntry, DeliverAck, Send
from kefu.protocol.handshake import AppCredential
from kefu.server.config import Config
from kefu.server.edge.gateway import Gateway
from kefu.server.engine.core import outgoing
from kefu.server.engine.messages import SendResult, StoredMessage
from kefu.server.metrics import Metrics
from tests.protocol.pairs import APP_SECRET, client_config, server_config

CONVERSATION_BASE = 1 << 40


class FakeTransport:
    """What a session writes to, counted; reading is always on."""

    def __init__(self) -> None:
        self.written = 0
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written += len(data)
        self.chunks.append(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else None

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class RecordingCore:
    """A CorePort that admits at once and keeps the SENDs and cursor advances for the benchmark to answer."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.sends: list[tuple[int, Send]] = []
        self.cursors = 0

    def admit(self, ticket: int, address: str) -> None:
        self.gateway.admitted(ticket, None)

    def opened(self, sid: int, user: str) -> None:
        pass

    def closed(self, sid: int) -> None:
        pass

    def submit(self, sid: int, send: Send, t0: float) -> None:
        self.sends.append((sid, send))

    def cursor(self, user: str, conversation_id: int, seq: int) -> None:
        self.cursors += 1

    def sync(self, sid: int, sync: Any, room: int) -> None:
        pass

    def fetch(self, ticket: int, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> None:
        pass

    def service(self, sid: int, frame: Any) -> None:
        pass


class Client:
    """A client end: its protocol core, the server session and the fake transport between them."""

    def __init__(self, gateway: Gateway, suite: Suite, app_id: str) -> None:
        self.conn = ClientConnection(dataclasses.replace(client_config(suite), app_id=app_id), now=0.0)
        self.conn.connect(now=0.0)
        self.transport = FakeTransport()
        self.session = gateway.protocol_factory()
        self.session.connection_made(self.transport)  # type: ignore[arg-type]

    def pump(self) -> None:
        """Carry bytes both ways until quiet."""
        while True:
            out = self.conn.data_to_send()
            if out:
                self.session.data_received(out)
                self.session.gateway._flush_dirty()
            chunks, self.transport.chunks = self.transport.chunks, []
            for chunk in chunks:
                self.conn.receive_data(chunk)
            if not out and not chunks:
                return


def setup(pairs: int, suite: Suite) -> tuple[Gateway, RecordingCore, list[tuple[Client, Client]]]:
    """A gateway with `pairs` sender/receiver clients, handshakes done."""
    loop = asyncio.get_event_loop()
    config = Config()
    apps = {f"{side}{i}": AppCredential.from_secret(f"{side}{i}", APP_SECRET) for i in range(pairs) for side in "ab"}
    protocol = server_config(apps=apps)
    gateway = Gateway(config=config, server_config=protocol, loop=loop, metrics=Metrics(process=False))
    core = RecordingCore(gateway)
    gateway.attach(core)  # type: ignore[arg-type]
    clients = []
    for i in range(pairs):
        a, b = Client(gateway, suite, f"a{i}"), Client(gateway, suite, f"b{i}")
        for c in (a, b):
            c.pump()
            c.conn.events_received()
        clients.append((a, b))
    return gateway, core, clients


def run_once(messages: int, suite: Suite, profile: bool) -> float:
    gateway, core, clients = setup(min(100, messages), suite)
    pr = cProfile.Profile() if profile else None
    seqs = [0] * len(clients)
    client_side = 0.0
    start = time.process_time()
    if pr is not None:
        pr.enable()
    for n in range(messages):
        k = n % len(clients)
        a, b = clients[k]
        t = time.process_time()
        a.conn.send(Send(n.to_bytes(16, "big"), CONVERSATION_BASE + k, 1, b"x" * 200, ()))
        raw = a.conn.data_to_send()
        client_side += time.process_time() - t
        a.session.data_received(raw)
        sid, send = core.sends.pop()
        seqs[k] += 1
        seq = seqs[k]
        stored = StoredMessage(CONVERSATION_BASE + k, seq, n + 1, 1_700_000_000_000, "a", send.client_msg_id, 1,
                               send.body, ())  # fmt: skip
        gateway.submitted(sid, send, SendResult(0, False, stored, ("a", "b")), seq - 1)
        gateway.publish(outgoing(stored), [(b.session.user, seq - 1)], 0, time.monotonic())
        gateway._flush_dirty()
        t = time.process_time()
        a.transport.chunks.clear()
        for chunk in b.transport.chunks:
            b.conn.receive_data(chunk)
        b.transport.chunks.clear()
        b.conn.events_received()
        b.conn.send(DeliverAck((AckEntry(CONVERSATION_BASE + k, seq),)))
        raw = b.conn.data_to_send()
        client_side += time.process_time() - t
        b.session.data_received(raw)
        gateway._flush_dirty()
    elapsed = time.process_time() - start
    if pr is not None:
        pr.disable()
        pstats.Stats(pr).sort_stats(os.environ.get("SORT", "tottime")).print_stats(int(os.environ.get("TOP", "25")))
    return (elapsed - client_side) / messages * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--suite", choices=("national", "international"), default="national")
    p.add_argument("--profile", action="store_true", help="cProfile one run instead of timing")
    args = p.parse_args(argv)
    suite = Suite[args.suite.upper()]
    uvloop.install()
    asyncio.set_event_loop(asyncio.new_event_loop())
    if args.profile:
        run_once(args.messages, suite, True)
        return 0
    results = [run_once(args.messages, suite, False) for _ in range(args.runs)]
    print(f"gateway CPU per message ({args.suite}): median {statistics.median(results):.1f} us "
          f"(runs: {', '.join(f'{r:.1f}' for r in results)}); pid {os.getpid()}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
