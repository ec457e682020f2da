"""The client over real sockets against a scripted server (tests/client/scripted.py), on asyncio and uvloop.

Each test plays the server's side frame by frame: what the client must send (SYNCs, request ids, acks
only after handling, coalesced), and how it reacts to refusals, duplicates, GOAWAY, silence and loss.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from kefu.client import (
    AuthFailed,
    BlockingClient,
    Client,
    ClientClosed,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    NoCommonSuite,
    SendRefused,
    ServerNotTrusted,
    Suite,
)
from kefu.client.connection import Clock
from kefu.client.inbox import Inbox
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionClosed
from kefu.protocol.frames import DeliverAck, Flag, Goaway, Send, Sync, SyncDone

from .conftest import free_port
from .scripted import APP_ID, APP_SECRET, PINS, ScriptedServer, Session, ack_for, deliver

CONV = 9


def client_for(server: ScriptedServer, **options: Any) -> Client:
    options.setdefault("connect_timeout", 3)
    return Client("127.0.0.1", server.port, app_id=APP_ID, app_secret=APP_SECRET, server_pins=PINS, **options)


def acked(session: Session) -> dict[int, int]:
    """Highest acknowledged seq per conversation over every DELIVER_ACK the session got."""
    highest: dict[int, int] = {}
    for frame in session.of(DeliverAck):
        for entry in frame.acks:
            highest[entry.conversation_id] = max(highest.get(entry.conversation_id, 0), entry.seq)
    return highest


async def drain(client: Client, timeout: float = 0.3) -> list[int]:
    """Receive until quiet; the seqs received."""
    seqs = []
    while (message := await client.receive(timeout)) is not None:
        seqs.append(message.seq)
    return seqs


# --- connecting ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", [Suite.NATIONAL, Suite.INTERNATIONAL])
def test_connect_then_sync_everything(run: Any, suite: Suite) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server, suites=(suite,)) as client:
            session = await server.accept()
            (sync,) = await session.wait_for(Sync)
            assert (sync.conversation_id, sync.after_seq, sync.until_seq, sync.limit) == (0, 0, 0, 0)
            assert sync.request_id != 0
            assert client.connected and client.suite is suite and not client.resumed and client.reconnects == 0

    run(scenario())


def test_refusals_raise_connect_errors_with_the_wire_code(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            with pytest.raises(AuthFailed) as auth:
                await Client("127.0.0.1", server.port, app_id=APP_ID, app_secret=b"wrong", server_pins=PINS).connect()
            assert auth.value.code is ErrorCode.AUTH_FAILED
            with pytest.raises(ServerNotTrusted) as pin:
                await Client(
                    "127.0.0.1", server.port, app_id=APP_ID, app_secret=APP_SECRET, server_pins=["sm2:" + "0" * 64]
                ).connect()
            assert pin.value.code is ErrorCode.SERVER_KEY_NOT_PINNED
        async with ScriptedServer(suites=(Suite.INTERNATIONAL,)) as server:
            with pytest.raises(NoCommonSuite):
                await client_for(server, suites=(Suite.NATIONAL,)).connect()
        with pytest.raises(ConnectError) as refused:
            await Client("127.0.0.1", free_port(), app_id=APP_ID, app_secret=APP_SECRET, server_pins=PINS).connect()
        assert refused.value.code is None

    run(scenario())


def test_a_refused_first_connect_is_not_retried(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            client = Client("127.0.0.1", server.port, app_id=APP_ID, app_secret=b"wrong", server_pins=PINS)
            with pytest.raises(AuthFailed):
                await client.connect()
            await asyncio.sleep(0.8)  # longer than the first reconnect delay would be
            assert client._reconnect_task is None and len(server.all) == 1
            assert not client.connected

    run(scenario())


def test_options_are_checked() -> None:
    with pytest.raises(ValueError):
        Client("h", 1, app_id=APP_ID, app_secret=APP_SECRET, server_pins=PINS, suites=())
    with pytest.raises(ValueError):
        Client("h", 1, app_id=APP_ID, server_pins=PINS)
    for keepalive in (4.9, 301):
        with pytest.raises(ValueError):
            Client("h", 1, app_id=APP_ID, app_secret=APP_SECRET, server_pins=PINS, keepalive_s=keepalive)


def test_local_addr_binds_the_source_address(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server, local_addr="127.0.0.2"):
            session = await server.accept()
            assert session.transport is not None
            assert session.transport.get_extra_info("peername")[0] == "127.0.0.2"

    run(scenario())


def test_connect_timeout(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            server.silent = True
            with pytest.raises(ConnectTimeout):
                await client_for(server, connect_timeout=0.3).connect()
            await (await server.sessions.get()).wait_end()

    run(scenario())


# --- sending ------------------------------------------------------------------------------------------


def test_send_returns_the_receipt_matched_by_client_msg_id(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server) as client:
            session = await server.accept()
            first = asyncio.ensure_future(client.send(CONV, "one", to=["agent-1"]))
            second = asyncio.ensure_future(client.send(CONV, b"two", metadata={"k": b"v"}))
            sends = await session.wait_for(Send, 2)
            assert sends[0].request_id != sends[1].request_id
            assert {m.key: m.value for m in sends[0].metadata} == {"kefu.to": b"agent-1"}
            assert {m.key: m.value for m in sends[1].metadata} == {"k": b"v"}
            session.send(ack_for(sends[1], 2), ack_for(sends[0], 1, flags=Flag.DUPLICATE))
            one, two = await first, await second
            assert (one.seq, one.duplicate, one.client_msg_id) == (1, True, sends[0].client_msg_id)
            assert (two.seq, two.duplicate, two.server_msg_id) == (2, False, 5002)

    run(scenario())


def test_rate_limited_send_is_retried_with_the_same_id_and_refusal_raises(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server) as client:
            session = await server.accept()
            sending = asyncio.ensure_future(client.send(CONV, "hi"))
            (send,) = await session.wait_for(Send)
            session.send(ack_for(send, 0, status=ErrorCode.RATE_LIMITED))
            again = (await session.wait_for(Send, 2))[1]
            assert again.client_msg_id == send.client_msg_id
            session.send(ack_for(again, 4))
            assert (await sending).seq == 4

            refused = asyncio.ensure_future(client.send(CONV, "no"))
            third = (await session.wait_for(Send, 3))[2]
            session.send(ack_for(third, 0, status=ErrorCode.FORBIDDEN))
            with pytest.raises(SendRefused) as error:
                await refused
            assert error.value.code is ErrorCode.FORBIDDEN

    run(scenario())


def test_send_timeout_and_close_end_pending_sends(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            client = client_for(server)
            await client.connect()
            with pytest.raises(TimeoutError):
                await client.send(CONV, "slow", timeout=0.2)
            pending = asyncio.ensure_future(client.send(CONV, "never acked"))
            await asyncio.sleep(0.05)
            await client.close()
            with pytest.raises(ClientClosed):
                await pending
            with pytest.raises(ClientClosed):
                await client.send(CONV, "after close")

    run(scenario())


# --- receiving ----------------------------------------------------------------------------------------


def test_in_order_once_and_acknowledged_only_after_handling(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            client = client_for(server)
            async with client:
                session = await server.accept()
                session.send(deliver(CONV, 1), deliver(CONV, 2), deliver(CONV, 3))
                session.send(deliver(CONV, 2, flags=Flag.REDELIVERY), deliver(CONV, 1, flags=Flag.REDELIVERY))
                seen = []
                async for message in client.deliveries():
                    seen.append(message.seq)
                    await asyncio.sleep(0.1)  # "handling": nothing may be acknowledged meanwhile
                    assert acked(session).get(CONV, 0) == message.seq - 1
                    if message.seq == 3:
                        break
                assert seen == [1, 2, 3]
            # leaving `async with` normally acknowledges the message the loop broke on, before CLOSE
            assert acked(session)[CONV] == 3
            assert isinstance(await session.wait_end(), ConnectionClosed)

    run(scenario())


def test_a_failing_handler_leaves_its_message_unacknowledged(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            session: Session | None = None
            with pytest.raises(RuntimeError):
                async with client_for(server) as client:
                    session = await server.accept()
                    session.send(deliver(CONV, 1), deliver(CONV, 2))
                    async for message in client.deliveries():
                        if message.seq == 2:
                            raise RuntimeError("handler failed")
            assert session is not None
            await session.wait_end()
            assert acked(session)[CONV] == 1

    run(scenario())


def test_acks_are_coalesced_into_one_frame_per_flush(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server) as client:
            session = await server.accept()
            frames = [deliver(conv, seq) for seq in range(1, 41) for conv in (1, 2, 3)]
            session.send(*frames)
            async with asyncio.timeout(5):
                while len(client._inbox) < len(frames):
                    await asyncio.sleep(0.01)
            for _ in frames:  # the queue is full: no await yields to the loop, so one flush follows
                assert await client.receive() is not None
            await asyncio.sleep(0.1)
            (ack,) = session.of(DeliverAck)
            assert sorted((e.conversation_id, e.seq) for e in ack.acks) == [(1, 40), (2, 40), (3, 39)]
            assert await client.receive(0.1) is None  # acknowledges the last one
            await session.wait_for(DeliverAck, 2)
            assert acked(session) == {1: 40, 2: 40, 3: 40}

    run(scenario())


def test_duplicate_of_a_handled_message_is_acknowledged_again(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server) as client:
            session = await server.accept()
            session.send(deliver(CONV, 1))
            assert await drain(client) == [1]
            await session.wait_for(DeliverAck)
            session.send(deliver(CONV, 1, flags=Flag.REDELIVERY))  # our ack "was lost"
            await session.wait_for(DeliverAck, 2)
            assert session.of(DeliverAck)[1].acks[0].seq == 1
            assert await client.receive(0.2) is None

    run(scenario())


def test_full_queue_stops_reading_until_the_app_catches_up(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            client = client_for(server)
            client._inbox = Inbox(high_messages=5, low_messages=2)
            async with client:
                session = await server.accept()
                total = 3000
                for start in range(1, total + 1, 500):
                    session.send(*(deliver(CONV, s, b"x" * 200) for s in range(start, start + 500)))
                async with asyncio.timeout(5):
                    while client._link is None or not client._link.read_paused:
                        await asyncio.sleep(0.01)
                await asyncio.sleep(0.2)
                assert len(client._inbox) < total  # one socket read past the mark at most
                assert await drain(client, timeout=1) == list(range(1, total + 1))
                assert not client._link.read_paused

    run(scenario())


def test_history_fetch_labelled_or_not_stays_out_of_deliveries(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server) as client:
            session = await server.accept()
            session.send(*(deliver(CONV, s) for s in range(1, 6)))
            assert await drain(client) == [1, 2, 3, 4, 5]

            fetching = asyncio.ensure_future(client.sync(CONV, 0, 3))
            sync = (await session.wait_for(Sync, 2))[1]
            assert (sync.conversation_id, sync.after_seq, sync.until_seq, sync.limit) == (CONV, 0, 3, 100)
            rid = sync.request_id
            session.send(*(deliver(CONV, s, flags=Flag.REDELIVERY, request_id=rid) for s in (1, 2, 3)))
            session.send(SyncDone(CONV, 3, 0, request_id=rid))
            assert [m.seq for m in await fetching] == [1, 2, 3]

            # a server that does not label its answers: attributed by range, kept out of the live stream
            fetching = asyncio.ensure_future(client.sync(CONV, 10, 12))
            sync = (await session.wait_for(Sync, 3))[2]
            session.send(*(deliver(CONV, s, flags=Flag.REDELIVERY) for s in (11, 12)))
            session.send(SyncDone(CONV, 12, 0, request_id=sync.request_id))
            history = await fetching
            assert [(m.seq, m.redelivery) for m in history] == [(11, True), (12, True)]
            assert await client.receive(0.2) is None
            session.send(deliver(CONV, 6))
            assert await drain(client) == [6]

            resuming = asyncio.ensure_future(client.sync(CONV, 2))  # live resume: answered by SYNC_DONE alone
            sync = (await session.wait_for(Sync, 4))[3]
            assert (sync.conversation_id, sync.after_seq, sync.until_seq, sync.limit) == (CONV, 2, 0, 0)
            session.send(*(deliver(CONV, s, flags=Flag.REDELIVERY) for s in range(3, 8)))
            session.send(SyncDone(CONV, 7, 0, request_id=sync.request_id))
            assert await resuming == []
            assert await drain(client) == [7]  # 3..6 were duplicates

    run(scenario())


# --- losing the connection ----------------------------------------------------------------------------


def test_reconnect_resumes_resends_and_resyncs(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server) as client:
            first = await server.accept()
            first.send(deliver(CONV, 1), deliver(CONV, 2))
            assert await drain(client) == [1, 2]
            sending = asyncio.ensure_future(client.send(CONV, "across the outage"))
            (lost_send,) = await first.wait_for(Send)
            first.abort()

            second = await server.accept()
            syncs = await second.wait_for(Sync, 2)
            assert [(s.conversation_id, s.after_seq, s.until_seq) for s in syncs] == [(CONV, 2, 0), (0, 0, 0)]
            (resent,) = await second.wait_for(Send)
            assert resent.client_msg_id == lost_send.client_msg_id
            second.send(ack_for(resent, 3, flags=Flag.DUPLICATE))
            receipt = await sending
            assert receipt.seq == 3 and receipt.duplicate
            assert client.resumed and client.reconnects == 1

            second.send(*(deliver(CONV, s, flags=Flag.REDELIVERY) for s in (2, 3)))
            assert await drain(client) == [3]

    run(scenario())


def test_psk_with_ecdhe_resumes_too(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server, psk_with_ecdhe=True) as client:
            (await server.accept()).abort()
            await server.accept()
            async with asyncio.timeout(5):
                while client.reconnects < 1 or not client.connected:
                    await asyncio.sleep(0.01)
            assert client.resumed

    run(scenario())


def test_goaway_closes_and_reconnects_after_its_delay(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server) as client:
            first = await server.accept()
            loop = asyncio.get_running_loop()
            sent_at = loop.time()
            first.send(Goaway(ErrorCode.SHUTTING_DOWN, 400, 100, 1000, 0, "restarting"))
            assert isinstance(await first.wait_end(), ConnectionClosed)
            await server.accept()
            assert loop.time() - sent_at >= 0.38
            policy = client._dialer.policy
            assert (policy.initial, policy.maximum, policy.jitter, policy.first) == (0.1, 1.0, 0.0, None)

    run(scenario())


def test_a_send_refused_while_the_server_drains_goes_again_on_the_next_connection(run: Any) -> None:
    """Spec 4.10 item 10: SHUTTING_DOWN is not the message's fault; it is resent, same client_msg_id, once the
    client is connected again."""

    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server) as client:
            first = await server.accept()
            sending = asyncio.ensure_future(client.send(CONV, "during the drain"))
            (refused,) = await first.wait_for(Send)
            first.send(Goaway(ErrorCode.SHUTTING_DOWN, 50, 50, 100, 0, "draining"))
            first.send(ack_for(refused, 0, status=ErrorCode.SHUTTING_DOWN))
            second = await server.accept()
            (resent,) = await second.wait_for(Send)
            assert resent.client_msg_id == refused.client_msg_id
            second.send(ack_for(resent, 4))
            receipt = await asyncio.wait_for(sending, 5)
            assert receipt.seq == 4 and not receipt.duplicate

    run(scenario())


class WarpedClock(Clock):
    """The core's clock running `speed` times faster than the loop's: keepalive intervals in a blink."""

    def __init__(self, loop: asyncio.AbstractEventLoop, speed: float) -> None:
        super().__init__(loop)
        self.speed = speed
        self.start = loop.time()

    def now(self) -> float:
        return self.start + self.offset + (self.loop.time() - self.start) * self.speed

    def to_loop(self, wall: float) -> float:
        return self.start + (wall - self.start - self.offset) / self.speed


def test_keepalive_pings_a_quiet_server_and_gives_up_on_a_silent_one(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            client = client_for(server, keepalive_s=5)
            client._clock = WarpedClock(asyncio.get_running_loop(), speed=25)  # 5 s keepalive = 0.2 s
            async with client:
                first = await server.accept()
                await asyncio.sleep(1.5)  # over seven intervals of quiet: PINGs answered by PONGs keep it up
                assert client.connected and client.reconnects == 0
                first.silent = True  # no more PONGs: 1.5 intervals later the client gives up and reconnects
                await server.accept(timeout=3)
                assert first.lost.done()
                async with asyncio.timeout(3):
                    while client.reconnects != 1:
                        await asyncio.sleep(0.01)

    run(scenario())


def test_reconnecting_stops_when_the_app_is_revoked(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server) as client:
            first = await server.accept()
            server.config = dataclasses.replace(server.config, apps={})
            pending = asyncio.ensure_future(client.send(CONV, "queued while reconnecting"))
            first.abort()
            with pytest.raises(ConnectionLost, match="AUTH_FAILED"):
                await client.receive(5)
            with pytest.raises(ConnectionLost):
                await pending
            assert client._reconnect_task is not None and client._reconnect_task.done()

    run(scenario())


def test_blocking_client_that_cannot_connect_stops_its_thread() -> None:
    blocking = BlockingClient("127.0.0.1", free_port(), app_id=APP_ID, app_secret=APP_SECRET, server_pins=PINS)
    with pytest.raises(ConnectError), blocking:
        pass
    assert not blocking._thread.is_alive()


def test_blocking_client(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            blocking = BlockingClient("127.0.0.1", server.port, app_id=APP_ID, app_secret=APP_SECRET, server_pins=PINS)
            await asyncio.to_thread(blocking.connect)
            session = await server.accept()
            assert blocking.connected and blocking.suite is Suite.NATIONAL
            sending = asyncio.ensure_future(asyncio.to_thread(blocking.send, CONV, "from a script"))
            (send,) = await session.wait_for(Send)
            session.send(ack_for(send, 1), deliver(CONV, 1))
            assert (await sending).seq == 1
            message = await asyncio.to_thread(blocking.receive, 2)
            assert message is not None and message.seq == 1
            assert await asyncio.to_thread(blocking.receive, 0.1) is None
            await asyncio.to_thread(blocking.close)
            assert acked(session) == {CONV: 1}
            assert isinstance(await session.wait_end(), ConnectionClosed)
            with pytest.raises(RuntimeError):
                blocking.receive(0)

    run(scenario())


def test_without_reconnect_a_loss_fails_everything(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server, reconnect=False) as client:
            session = await server.accept()
            session.send(deliver(CONV, 1))
            assert await client.receive(1) is not None
            session.abort()
            with pytest.raises(ConnectionLost):
                await client.receive(2)
            with pytest.raises(ConnectionLost):
                await client.send(CONV, "x")

    run(scenario())
