"""A resumption ticket is accepted once per host, across restarts of the server (issue #13, point 8; spec section 5.6
"Server processing" step 6; kefu.server.identity.tickets): a CLIENT_HELLO captured on the wire and replayed after a
restart is refused, in both modes of `kefu serve` and after a graceful stop as after a kill -9, while a ticket not used
before the restart still resumes once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.protocol import crypto, frames
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import HandshakeComplete, TicketReceived
from kefu.protocol.handshake import ClientConfig
from kefu.protocol.keyschedule import KeySchedule
from kefu.protocol.tickets import SessionTicket

from .conftest import ServerProcess, add_app
from .peer import TIMEOUT, Peer

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


class RecordingPeer(Peer):
    """A `Peer` that keeps every byte it wrote: its CLIENT_HELLO is what an eavesdropper captures."""

    written = b""

    def _flush(self) -> None:
        data = self.conn.data_to_send()
        self.written += data
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    @property
    def client_hello(self) -> bytes:
        """The first frame it wrote."""
        length = frames.HEADER.unpack_from(self.written)[0]
        return self.written[: frames.HEADER_LEN + length]


async def connect(server: ServerProcess, *, ticket: SessionTicket | None = None) -> RecordingPeer:
    """alice's connection, through the reference client's handshake (resuming with `ticket`, if given)."""
    loop = asyncio.get_running_loop()
    config = ClientConfig("alice", server.pins, (crypto.Suite.NATIONAL,), app_secret=server.secrets["alice"],
                          ticket=ticket)  # fmt: skip
    peer = RecordingPeer(config)
    await loop.create_connection(lambda: peer, "127.0.0.1", server.port)
    await asyncio.wait_for(asyncio.shield(peer.ready), TIMEOUT)
    return peer


async def new_ticket(server: ServerProcess) -> SessionTicket:
    """A ticket from a fresh full handshake, stamped with its time of receipt as the client's adapter does."""
    peer = await connect(server)
    ticket = (await peer.next(TicketReceived)).ticket
    peer.close()
    return dataclasses.replace(ticket, received_at=time.time())


def psk_only_hello(ticket: SessionTicket) -> bytes:
    """A CLIENT_HELLO that resumes with `ticket` in PSK_ONLY mode and offers no key share, so that a refused ticket
    cannot fall back to a full handshake (spec section 5.6, "No resumption"): its binder made as the spec says."""
    age = (int((time.time() - ticket.received_at) * 1000) + ticket.age_add) % (1 << 32)
    hello = frames.ClientHello(
        bytes(32), (int(ticket.suite),), (), 30_000, frames.PskMode.PSK_ONLY, ticket.ticket, age, bytes(32)
    )
    hash_name = crypto.SUITES[ticket.suite].hash_name
    covered = frames.encode(hello)[frames.HEADER_LEN : -(1 + crypto.HASH_LEN)]
    binder_key = KeySchedule(hash_name, ticket.psk).binder_key()
    hello.binder = crypto.hmac_digest(hash_name, binder_key, crypto.hash_digest(hash_name, covered))
    return frames.encode(hello)


async def answer_to(server: ServerProcess, hello: bytes) -> frames.Frame:
    """Send `hello` as is on a new connection; the server's first frame in reply (plaintext: SERVER_HELLO or
    ERROR)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(hello)
        length, _, kind, flags, request_id = frames.HEADER.unpack(await reader.readexactly(frames.HEADER_LEN))
        body = await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
        return frames.parse_body(kind, body, flags=flags, request_id=request_id)
    finally:
        writer.close()


def restart(server: ServerProcess, how: str) -> None:
    if how == "kill -9":
        server.kill()
    else:
        assert server.stop() == 0
    server.start()


@pytest.fixture(params=[(0, "SIGTERM"), (2, "SIGTERM"), (2, "kill -9")], ids=["single-SIGTERM", "workers-SIGTERM",
                                                                             "workers-kill-9"])  # fmt: skip
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, str]]:
    workers, how = request.param
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir, env={"KEFU_SERVER_WORKERS": str(workers)})
    server.secrets["alice"] = add_app(data_dir, "alice")
    server.start()
    yield server, how
    server.kill()


async def test_a_captured_resumption_hello_is_refused_after_a_restart(served: tuple[ServerProcess, str]) -> None:
    server, how = served
    async with asyncio.timeout(60):
        # Before the restart: the reference client resumes (its CLIENT_HELLO captured), a key-share-less CLIENT_HELLO
        # resumes with a second ticket, and a third ticket is kept unused.
        first, second, unused = [await new_ticket(server) for _ in range(3)]
        resumed = await connect(server, ticket=first)
        done = resumed.ready.result()
        assert isinstance(done, HandshakeComplete) and done.resumed
        captured = resumed.client_hello
        resumed.close()
        bare = psk_only_hello(second)
        accepted = await answer_to(server, bare)
        assert isinstance(accepted, frames.ServerHello) and accepted.psk_accepted == 1 and not accepted.key_share
        replay = await answer_to(server, captured)
        assert isinstance(replay, frames.ServerHello) and replay.psk_accepted == 0, "refused before the restart"

        await asyncio.to_thread(restart, server, how)

        # The reference client's captured hello: the ticket is refused and the server goes on with a full handshake
        # (its key share and signature), which the replayer cannot finish without alice's secret.
        replay = await answer_to(server, captured)
        assert isinstance(replay, frames.ServerHello), replay
        assert replay.psk_accepted == 0 and replay.key_share, f"a used ticket was accepted again after {how}"
        # The key-share-less hello has no full handshake to fall back to: TICKET_REJECTED, fatal.
        refused = await answer_to(server, bare)
        assert isinstance(refused, frames.Error), refused
        assert refused.code == ErrorCode.TICKET_REJECTED, ErrorCode(refused.code).name

        # A ticket not used before the restart still resumes (its key is now the previous one), once.
        fresh = await connect(server, ticket=unused)
        assert fresh.ready.result().resumed, "an unused ticket resumes after the restart"
        fresh.close()
        again = await connect(server, ticket=unused)
        assert not again.ready.result().resumed, "and only once"
