"""Micro-benchmarks of the sans-IO protocol core (issue #2).

Run ``.venv/bin/python bench/bench_protocol.py`` (``--quick`` for a short run, ``--only receive`` for a
subset). It prints a table and writes every number to ``bench/out/protocol.json``.

What is measured, and why
-------------------------
The issue sets per-operation budgets for the three things a kefu server does all day:

1. **Receiving one message.** A RECORD frame holding one DELIVER with a 200-byte body goes through the
   whole receive path a real peer runs: ``FrameDecoder.feed`` -> ``Direction.open`` -> ``decode_inner``
   (split and parse in one pass; a ``Deliver`` comes out). A record's nonce is its sequence number, so each run
   seals N records with a sender ``Direction`` beforehand (what a sending ``Connection`` does with one
   queued frame), and the timed loop opens them in order with a receiver ``Direction`` built from the
   same secret. A second row feeds the wire bytes of a real sending ``ServerConnection`` into a
   ``ClientConnection`` (``receive_data`` + ``events_received``): the whole core, state table included.
   Breakdown rows time each of the four steps alone.
2. **Sending a burst.** 32 DELIVERs (200-byte bodies) are encoded and sealed as one record, per message:
   through ``encode`` x32 + one ``Direction.seal`` of the joined frames, and through ``Connection.send``
   x32 + ``data_to_send()``.
3. **Server CPU per handshake.** Only the server's side is timed. Client hellos are made beforehand (one
   ``ClientConnection.connect()`` per handshake, untimed). Timed: ``ServerConnection(...)``,
   ``receive_data(hello)``, ``data_to_send()`` (key exchange, key schedule, signature: the section
   ``client_hello``); then, after the clients have answered untimed, ``receive_data(client's second
   flight)``, ``data_to_send()`` and ``events_received()`` (Finished MAC, app proof, NEW_TICKET: the
   section ``client_finished``). The sum is the server CPU per handshake. Clients offer one suite and
   prove an app secret (auth mode APP_SECRET). Resumption needs a fresh ticket per handshake because
   ``TicketGuard`` makes tickets single-use: a pool is filled by full handshakes once, and the NEW_TICKET
   of every resumed handshake refills it for the next run, as a real client chains its tickets.

Every benchmark runs once to warm up, then ``runs`` times (7; 3 with ``--quick``); each run times a batch
of operations as a whole (``benchlib``): wall time with ``perf_counter_ns``, CPU time with
``process_time_ns``, the garbage collector off. The table shows the median over runs and the range;
pass/fail compares the median with the target.

The machine is a noisy shared VM, so the same process also times the primitives the targets are built on,
at the same sizes: AES-GCM and SM4-GCM through ``cryptography``, HMAC through ``hmac.digest``, X25519 and
Ed25519, SM2 key generation, ECDH and signing through ``kefu.protocol.sm2``. Each target's ratio to its
baseline says how much the protocol adds on top of the cryptography it cannot avoid, which is steadier
across machines and runs than absolute times.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchlib import Result, Stopwatch, Trial, machine, measure, table
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kefu.protocol import sm2
from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.connection import State
from kefu.protocol.crypto import SUITES, KeyType, SigningKey, Suite
from kefu.protocol.events import HandshakeComplete, TicketReceived
from kefu.protocol.frames import (
    ContentType,
    Deliver,
    FrameDecoder,
    PskMode,
    RawFrame,
    decode_inner,
    encode,
)
from kefu.protocol.handshake import SERVER_SIGNATURE_CONTEXT, AppCredential, ClientConfig, ServerConfig
from kefu.protocol.records import Direction
from kefu.protocol.serverconn import ServerConnection
from kefu.protocol.tickets import SessionTicket, TicketKeys

DEFAULT_OUT = Path(__file__).resolve().parent / "out" / "protocol.json"

BODY_LEN = 200
"""The issue's message: a 200-byte body."""
BATCH = 32
"""The issue's burst: 32 messages sealed as one record."""
SUITE_TAG = {Suite.NATIONAL: "sm4", Suite.INTERNATIONAL: "aes"}
"""Row labels name a suite by its records' AEAD."""


@dataclass(frozen=True, slots=True)
class Sizes:
    """How many runs, and how many operations each run times."""

    runs: int
    records: int
    """Records received per run."""
    batches: int
    """32-message batches sealed per run."""
    handshakes: int
    """Server handshakes per run."""
    symmetric: int
    """Operations per run of the symmetric and HMAC baselines."""
    asymmetric: int
    """Operations per run of the public-key baselines."""


FULL = Sizes(runs=7, records=20_000, batches=1_000, handshakes=200, symmetric=20_000, asymmetric=500)
QUICK = Sizes(runs=3, records=2_000, batches=100, handshakes=30, symmetric=2_000, asymmetric=60)


# --- fixtures -------------------------------------------------------------------------------------------

APP_ID = "bench-app"
APP_SECRET = b"\x5a" * 32


class World:
    """The server's long-term keys and configuration, and a pool of unused tickets per suite."""

    def __init__(self) -> None:
        keys = {KeyType.SM2: SigningKey.generate(KeyType.SM2), KeyType.ED25519: SigningKey.generate(KeyType.ED25519)}
        self.pins = frozenset(k.verify_key.fingerprint() for k in keys.values())
        apps = {APP_ID: AppCredential.from_secret(APP_ID, APP_SECRET)}
        self.server = ServerConfig(keys=keys, apps=apps, ticket_keys=TicketKeys.generate())
        self.tickets: dict[Suite, list[SessionTicket]] = {suite: [] for suite in Suite}

    def client(
        self, suite: Suite, ticket: SessionTicket | None = None, psk_mode: PskMode = PskMode.PSK_ONLY
    ) -> ClientConnection:
        """A client offering `suite` alone, proving the app secret, resuming with `ticket` if given."""
        config = ClientConfig(APP_ID, self.pins, (suite,), app_secret=APP_SECRET, ticket=ticket, psk_mode=psk_mode)
        return ClientConnection(config, now=0.0)

    def pair(self, suite: Suite) -> tuple[ClientConnection, ServerConnection]:
        """A connected client and server after a full handshake; the client's ticket goes to the pool."""
        client, server = self.client(suite), ServerConnection(self.server, now=0.0)
        client.connect(now=0.0)
        server.receive_data(client.data_to_send())
        client.receive_data(server.data_to_send())
        server.receive_data(client.data_to_send())
        client.receive_data(server.data_to_send())
        self.keep_tickets(client.events_received())
        server.events_received()
        assert client.state is State.CONNECTED and server.state is State.CONNECTED
        return client, server

    def take_tickets(self, suite: Suite, count: int) -> list[SessionTicket]:
        """`count` unused tickets of `suite`, made by full handshakes when the pool runs short."""
        pool = self.tickets[suite]
        while len(pool) < count:
            self.pair(suite)
        taken, pool[:] = pool[:count], pool[count:]
        return taken

    def keep_tickets(self, events: list[Any]) -> None:
        """Pool the tickets among a client's events."""
        for event in events:
            if isinstance(event, TicketReceived):
                self.tickets[event.ticket.suite].append(event.ticket)


def delivers(count: int, start: int = 0) -> list[Deliver]:
    """`count` DELIVER frames of one conversation, each with a distinct 200-byte body."""
    return [
        Deliver(
            conversation_id=0x1234_5678,
            seq=seq,
            server_msg_id=1_000_000 + seq,
            timestamp_ms=1_760_000_000_000 + seq,
            client_msg_id=seq.to_bytes(16, "big"),
            content_type=ContentType.TEXT,
            sender="visitor-8f3a2c",
            body=(seq.to_bytes(8, "big") * (BODY_LEN // 8 + 1))[:BODY_LEN],
        )
        for seq in range(start, start + count)
    ]


def sealed_records(suite: Suite, count: int) -> tuple[Direction, list[bytes]]:
    """A receiver Direction and `count` RECORD frames, one DELIVER each, sealed in order with its secret."""
    spec = SUITES[suite]
    secret = os.urandom(32)
    sender = Direction(spec, secret)
    return Direction(spec, secret), [sender.seal(encode(frame)) for frame in delivers(count)]


# --- 1. receiving one message ---------------------------------------------------------------------------


def receive_records(suite: Suite, count: int) -> Trial:
    """feed -> open -> decode_inner (split and parse in one pass), one record of one DELIVER at a time.

    This is the path Connection.receive_data takes for a RECORD, without the state machine around it.
    """

    def trial(watch: Stopwatch) -> int:
        receiver, wires = sealed_records(suite, count)
        decoder = FrameDecoder()
        frame = None
        with watch.timing():
            for wire in wires:
                for raw in decoder.feed(wire):
                    frame = decode_inner(receiver.open(raw.header, raw.body))[-1][0]
        assert isinstance(frame, Deliver) and frame.seq == count - 1 and len(frame.body) == BODY_LEN
        return count

    return trial


def receive_connection(world: World, suite: Suite, count: int) -> Trial:
    """ClientConnection.receive_data + events_received of the records a ServerConnection sent."""

    def trial(watch: Stopwatch) -> int:
        client, server = world.pair(suite)
        wires = []
        for frame in delivers(count):
            server.send(frame)
            wires.append(server.data_to_send())
        events: list[Any] = []
        with watch.timing():
            for wire in wires:
                client.receive_data(wire)
                events = client.events_received()
        assert client.state is State.CONNECTED, events
        assert len(events) == 1 and isinstance(events[0], Deliver) and events[0].seq == count - 1
        return count

    return trial


def receive_step(suite: Suite, count: int, step: str) -> Trial:
    """One step of the receive path alone, the steps before it done untimed (the breakdown rows)."""

    def trial(watch: Stopwatch) -> int:
        receiver, wires = sealed_records(suite, count)
        decoder = FrameDecoder()
        if step == "feed":
            with watch.timing():
                for wire in wires:
                    decoder.feed(wire)
            return count
        raws: list[RawFrame] = [decoder.feed(wire)[0] for wire in wires]
        if step == "open":
            with watch.timing():
                for raw in raws:
                    receiver.open(raw.header, raw.body)
            return count
        plaintexts = [receiver.open(raw.header, raw.body) for raw in raws]
        with watch.timing():
            for plaintext in plaintexts:
                decode_inner(plaintext)
        return count

    return trial


RECEIVE_STEPS = ("feed", "open", "decode_inner")


# --- 2. sealing a burst ---------------------------------------------------------------------------------


def seal_batches(suite: Suite, batches: int) -> Trial:
    """encode x32 + one Direction.seal of the joined frames, per message."""

    def trial(watch: Stopwatch) -> int:
        spec = SUITES[suite]
        secret = os.urandom(32)
        sender = Direction(spec, secret)
        frames = [delivers(BATCH, start=i * BATCH) for i in range(batches)]
        out = []
        with watch.timing():
            for batch in frames:
                out.append(sender.seal(b"".join([encode(frame) for frame in batch])))
        raw = FrameDecoder().feed(out[0])[0]
        assert len(decode_inner(Direction(spec, secret).open(raw.header, raw.body))) == BATCH
        return batches * BATCH

    return trial


def seal_connection(world: World, suite: Suite, batches: int) -> Trial:
    """ServerConnection.send x32 + data_to_send(), per message."""

    def trial(watch: Stopwatch) -> int:
        client, server = world.pair(suite)
        frames = [delivers(BATCH, start=i * BATCH) for i in range(batches)]
        out = []
        with watch.timing():
            for batch in frames:
                for frame in batch:
                    server.send(frame)
                out.append(server.data_to_send())
        client.receive_data(b"".join(out[:2]))
        assert len(client.events_received()) == 2 * BATCH and client.state is State.CONNECTED
        return batches * BATCH

    return trial


# --- 3. server CPU per handshake ------------------------------------------------------------------------


def server_handshakes(world: World, suite: Suite, count: int, resume: PskMode | None = None) -> Trial:
    """The server's two steps of `count` handshakes, each step timed as one batch; the clients untimed."""

    def trial(watch: Stopwatch) -> int:
        if resume is None:
            clients = [world.client(suite) for _ in range(count)]
        else:
            clients = [world.client(suite, ticket, resume) for ticket in world.take_tickets(suite, count)]
        hellos = []
        for client in clients:
            client.connect(now=0.0)
            hellos.append(client.data_to_send())
        servers, flights = _server_hellos(world, hellos, watch)
        finishes = []
        for client, flight in zip(clients, flights, strict=True):
            client.receive_data(flight)
            finishes.append(client.data_to_send())
        replies, events = _server_finishes(servers, finishes, watch)
        for client, reply in zip(clients, replies, strict=True):
            client.receive_data(reply)
            world.keep_tickets(client.events_received())
        for server, got in zip(servers, events, strict=True):
            assert server.state is State.CONNECTED, got
            assert isinstance(got[0], HandshakeComplete) and got[0].resumed == (resume is not None), got
        return count

    return trial


def _server_hellos(world: World, hellos: list[bytes], watch: Stopwatch) -> tuple[list[ServerConnection], list[bytes]]:
    servers = []
    flights = []
    with watch.timing("client_hello"):
        for hello in hellos:
            server = ServerConnection(world.server, now=0.0)
            server.receive_data(hello)
            flights.append(server.data_to_send())
            servers.append(server)
    return servers, flights


def _server_finishes(
    servers: list[ServerConnection], finishes: list[bytes], watch: Stopwatch
) -> tuple[list[bytes], list[list[Any]]]:
    replies = []
    events = []
    with watch.timing("client_finished"):
        for server, finish in zip(servers, finishes, strict=True):
            server.receive_data(finish)
            replies.append(server.data_to_send())
            events.append(server.events_received())
    return replies, events


# --- baselines ------------------------------------------------------------------------------------------

RECORD_PLAINTEXT_LEN = len(encode(delivers(1)[0]))
"""Bytes of one encoded DELIVER with its header: the plaintext of a one-message record."""


def _repeat(count: int, op: Callable[[], object], per_op: int = 1) -> Trial:
    """Time `count` calls of `op`; each counts as `per_op` operations (32 for a batch, per message)."""

    def trial(watch: Stopwatch) -> int:
        with watch.timing():
            for _ in range(count):
                op()
        return count * per_op

    return trial


def baselines(count: int, asymmetric: int) -> dict[str, tuple[str, Trial]]:
    """name -> (description, trial) of the primitives the targets are built on, at the targets' sizes."""
    key, nonce, aad = os.urandom(16), os.urandom(12), os.urandom(12)
    one, batch = os.urandom(RECORD_PLAINTEXT_LEN), os.urandom(RECORD_PLAINTEXT_LEN * BATCH)
    aes = AESGCM(key)
    aes_ct, sm4_ct = aes.encrypt(nonce, one, aad), _sm4_encrypt(key, nonce, aad, one)
    x_key, x_peer = x25519.X25519PrivateKey.generate(), x25519.X25519PrivateKey.generate().public_key()
    ed_key = ed25519.Ed25519PrivateKey.generate()
    sm2_key, sm2_peer = sm2.SM2PrivateKey.generate(), sm2.SM2PrivateKey.generate().public_key()
    signed = SERVER_SIGNATURE_CONTEXT + os.urandom(32)
    mac_key, msg = os.urandom(32), os.urandom(64)
    size = f"{RECORD_PLAINTEXT_LEN} bytes"

    def sm4_open() -> bytes:
        return _sm4_decrypt(key, nonce, aad, sm4_ct)

    def sm2_sign() -> bytes:
        return sm2_key.sign(signed, signer_id=sm2.SIGNER_ID_RFC8998)

    batches = max(1, count // BATCH)
    return {
        "aes_gcm_decrypt": (f"AESGCM.decrypt, {size}", _repeat(count, lambda: aes.decrypt(nonce, aes_ct, aad))),
        "sm4_gcm_decrypt": (f"SM4-GCM decrypt (cryptography Cipher), {size}", _repeat(count, sm4_open)),
        "aes_gcm_encrypt_batch": (
            f"AESGCM.encrypt of 32 x {size}, per message",
            _repeat(batches, lambda: aes.encrypt(nonce, batch, aad), BATCH),
        ),
        "sm4_gcm_encrypt_batch": (
            f"SM4-GCM encrypt of 32 x {size}, per message",
            _repeat(batches, lambda: _sm4_encrypt(key, nonce, aad, batch), BATCH),
        ),
        "hmac_sha256": ("hmac.digest sha256, 64 bytes", _repeat(count, lambda: hmac.digest(mac_key, msg, "sha256"))),
        "hmac_sm3": ("hmac.digest sm3, 64 bytes", _repeat(count, lambda: hmac.digest(mac_key, msg, "sm3"))),
        "x25519_keygen": ("X25519 key generation + public bytes", _repeat(asymmetric, _x25519_keygen)),
        "x25519_exchange": ("one X25519 exchange", _repeat(asymmetric, lambda: x_key.exchange(x_peer))),
        "ed25519_sign": ("one Ed25519 signature", _repeat(asymmetric, lambda: ed_key.sign(signed))),
        "sm2_keygen": ("SM2 key generation (OpenSSL, constant time)", _repeat(asymmetric, sm2.SM2PrivateKey.generate)),
        "sm2_ecdh": ("one SM2 ECDH (OpenSSL via ctypes)", _repeat(asymmetric, lambda: sm2_key.exchange(sm2_peer))),
        "sm2_sign": ("one SM2-with-SM3 signature (OpenSSL, constant time)", _repeat(asymmetric, sm2_sign)),
    }


def _sm4_encrypt(key: bytes, nonce: bytes, aad: bytes, plaintext: bytes) -> bytes:
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    return enc.update(plaintext) + enc.finalize() + enc.tag


def _sm4_decrypt(key: bytes, nonce: bytes, aad: bytes, data: bytes) -> bytes:
    dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, data[-16:])).decryptor()
    dec.authenticate_additional_data(aad)
    return dec.update(data[:-16]) + dec.finalize()


def _x25519_keygen() -> bytes:
    return x25519.X25519PrivateKey.generate().public_key().public_bytes_raw()


# --- the plan: every row, its target and its baseline ---------------------------------------------------

RECEIVE_TARGET_US = {Suite.NATIONAL: 10.0, Suite.INTERNATIONAL: 3.0}
SEAL_TARGET_US = {Suite.NATIONAL: 12.0, Suite.INTERNATIONAL: 4.0}
FULL_HANDSHAKE_TARGET_US = {Suite.NATIONAL: 1200.0, Suite.INTERNATIONAL: 300.0}
RESUMPTION_TARGET_US = 100.0

HANDSHAKE_BASELINE = {
    Suite.NATIONAL: ("sm2_keygen", "sm2_ecdh", "sm2_sign"),
    Suite.INTERNATIONAL: ("x25519_keygen", "x25519_exchange", "ed25519_sign"),
}
"""The server's unavoidable public-key work in a full handshake: an ephemeral key, ECDHE, a signature."""
HMAC_BASELINE = {Suite.NATIONAL: ("hmac_sm3",), Suite.INTERNATIONAL: ("hmac_sha256",)}
"""Resumption has no public-key work; its ratio counts it in HMACs of the suite's hash."""


@dataclass(frozen=True, slots=True)
class Row:
    """One benchmark of the plan."""

    name: str
    group: str
    description: str
    trial: Trial
    target_us: float | None = None
    baseline: tuple[str, ...] = ()


def plan(world: World, sizes: Sizes) -> list[Row]:
    """Every row, in table order."""
    rows: list[Row] = []
    for suite in Suite:
        tag, n, target = SUITE_TAG[suite], sizes.records, RECEIVE_TARGET_US[suite]
        aead = (f"{tag}_gcm_decrypt",)
        rows += [
            Row(f"receive_{tag}", "receive", "feed+open+decode_inner",
                receive_records(suite, n), target, aead),
            Row(f"receive_{tag}_connection", "receive", "Connection.receive_data+events_received",
                receive_connection(world, suite, n), target, aead),
        ]  # fmt: skip
        rows += [
            Row(f"receive_{tag}_{step}", "receive-steps", step, receive_step(suite, n, step)) for step in RECEIVE_STEPS
        ]
    for suite in Suite:
        tag, n, target = SUITE_TAG[suite], sizes.batches, SEAL_TARGET_US[suite]
        aead = (f"{tag}_gcm_encrypt_batch",)
        rows += [
            Row(f"seal32_{tag}", "seal", "encode x32 + Direction.seal, per message",
                seal_batches(suite, n), target, aead),
            Row(f"seal32_{tag}_connection", "seal", "Connection.send x32 + data_to_send, per message",
                seal_connection(world, suite, n), target, aead),
        ]  # fmt: skip
    for suite in Suite:
        name, n = suite.name.lower(), sizes.handshakes
        rows += [
            Row(f"handshake_full_{name}", "handshake", "server CPU, full handshake",
                server_handshakes(world, suite, n), FULL_HANDSHAKE_TARGET_US[suite], HANDSHAKE_BASELINE[suite]),
            Row(f"handshake_resume_psk_only_{name}", "handshake", "server CPU, fresh ticket, PSK_ONLY",
                server_handshakes(world, suite, n, PskMode.PSK_ONLY), RESUMPTION_TARGET_US, HMAC_BASELINE[suite]),
            Row(f"handshake_resume_psk_ecdhe_{name}", "handshake", "server CPU, fresh ticket, PSK_WITH_ECDHE",
                server_handshakes(world, suite, n, PskMode.PSK_WITH_ECDHE), None, HMAC_BASELINE[suite]),
        ]  # fmt: skip
    return rows


def run(sizes: Sizes, only: str = "", log: Callable[[str], None] = print) -> list[Result]:
    """The baselines, then every row whose name contains `only`; ratios use the baselines of this run."""
    world = World()
    results: dict[str, Result] = {}
    for name, (description, trial) in baselines(sizes.symmetric, sizes.asymmetric).items():
        results[name] = measure(name, "baseline", description, trial, sizes.runs)
        log(f"  {name}: {results[name].median:.3f} us")
    for row in plan(world, sizes):
        if only not in row.name:
            continue
        result = measure(row.name, row.group, row.description, row.trial, sizes.runs)
        result.target_us = row.target_us
        if row.baseline:
            result.baseline = " + ".join(row.baseline)
            result.ratio = result.median / sum(results[b].median for b in row.baseline)
        results[row.name] = result
        log(f"  {row.name}: {result.median:.3f} us")
    return list(results.values())


# --- the command ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description="Micro-benchmarks of kefu's protocol core (issue #2).")
    parser.add_argument("--quick", action="store_true", help="3 runs of smaller batches")
    parser.add_argument("--runs", type=int, help="timed runs per benchmark (default 7, or 3 with --quick)")
    parser.add_argument("--only", default="", metavar="TEXT", help="only the rows whose name contains TEXT")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output (default bench/out/protocol.json)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.runs:
        sizes = Sizes(args.runs, sizes.records, sizes.batches, sizes.handshakes, sizes.symmetric, sizes.asymmetric)
    command = " ".join([".venv/bin/python bench/bench_protocol.py", *(sys.argv[1:] if argv is None else argv)])
    return report(sizes, args.only, args.out, command)


def report(sizes: Sizes, only: str, out: Path, command: str) -> int:
    """Run with `sizes`, print the machine, the progress and the table, and write the JSON to `out`."""
    info = machine()
    print(command)
    print(", ".join(f"{k}={v}" for k, v in info.items()))
    print(sizes)
    started = time.perf_counter()
    results = run(sizes, only)
    info["loadavg_after"] = os.getloadavg()
    info["elapsed_s"] = round(time.perf_counter() - started, 1)
    print()
    print(table(results))
    document = {
        "command": command,
        "machine": info,
        "sizes": asdict(sizes),
        "results": [r.summary() for r in results],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
