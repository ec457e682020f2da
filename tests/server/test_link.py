"""The links between the gateways and the core (`kefu.server.link`, spec section 14): the frames, one link end over
a real Unix socketpair, and a gateway's end joined to a real `Core` (over the in-memory log of tests/server/fakes).

What the multi-process server does with them under faults (a killed gateway, a killed core, a stopped gateway) is in
tests/integration/test_workers.py; here are the properties that are hard to reach through a whole server: a peer that
stops reading costs bounded memory and is given up, a broken frame ends the link, a request outlives the core it was
sent to.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

from kefu.protocol.errors import ErrorCode, RemoteProtocolError
from kefu.protocol.frames import ContentType, Deliver, MetaEntry, Send
from kefu.server.config import Config
from kefu.server.engine.core import MEMBERS_KEY, Core
from kefu.server.link import frames as lf
from kefu.server.link.channel import Channel
from kefu.server.link.core_side import GatewayLink
from kefu.server.link.gateway_side import CoreLink

from .fakes import WAIT_S, MemoryLog, RecordingEndpoint

DELIVER = b"\x00" * 12 + b"deliver"
SAMPLES: list[Any] = [
    lf.Hello(3, 4242),
    lf.Restore(7, "10.0.0.1", "alice"),
    lf.Restore(8, "10.0.0.2", ""),
    lf.Admit(9, "::1"),
    lf.Opened(9, "坐席-7"),
    lf.Closed(9),
    lf.Submit(9, 123_456_789, b"a send, header and body"),
    lf.CursorAdvance("bob", 2**62 + 1, 17),
    lf.SyncRequest(9, 256, b"a sync"),
    lf.Fetch(5, 1001, 10, 20, 8),
    lf.Service(9, b"a service request"),
    lf.Submitted(9, 4, 0, 1, 65535, bytes(range(16)), 1001, 5, 77, 1_700_000_000_000),
    lf.Publish(9, 1, 1001, 5, DELIVER, (lf.Recipient("alice", 4), lf.Recipient("bob", 0))),
    lf.Publish(0, 1, 1001, 6, DELIVER, ()),
    lf.FrameFor(9, b"any frame"),
    lf.Resume(9, 3, 0, (lf.Plan(1001, 2, 5, (lf.Item(3, DELIVER), lf.Item(4, DELIVER))), lf.Plan(1002, 0, 0, ()))),
    lf.Admitted(9, 0),
    lf.Admitted(10, int(ErrorCode.RATE_LIMITED)),
    lf.Fetched(5, 1001, (lf.Item(11, DELIVER),)),
]


# --- frames -----------------------------------------------------------------------------------------------


def test_every_link_frame_round_trips() -> None:
    assert {lf.CLASSES[int(t)] for t in lf.LinkType} == {type(f) for f in SAMPLES}, "a sample of every type"
    for frame in SAMPLES:
        data = lf.build(frame)
        length, frame_type = lf.HEAD.unpack_from(data)
        assert length == len(data) - 4
        assert lf.CLASSES[frame_type] is type(frame)
        assert lf.parse(frame_type, data[lf.HEAD.size :]) == frame


def test_a_broken_payload_or_type_is_refused() -> None:
    data = lf.build(lf.Submit(1, 2, b"xyz"))
    with pytest.raises(ValueError, match="malformed Submit"):
        lf.parse(lf.LinkType.SUBMIT, data[lf.HEAD.size : -1])
    with pytest.raises(ValueError, match="unknown link frame type 0x7f"):
        lf.parse(0x7F, b"")
    with pytest.raises(ValueError, match="malformed Opened"):
        lf.parse(lf.LinkType.OPENED, lf.Closed(1)._wire_build(lf.Closed(1))[:-1])  # type: ignore[attr-defined]


def test_a_carried_kefu_frame_must_be_whole() -> None:
    raw = lf.carry(Send(bytes(16), 1001, ContentType.TEXT, b"hi", (), request_id=1))
    assert isinstance(lf.kefu_frame(raw), Send)
    for broken in (raw[:-1], raw + b"\x00"):
        with pytest.raises(RemoteProtocolError) as err:
            lf.kefu_frame(broken)
        assert err.value.code == ErrorCode.MALFORMED_FRAME


# --- one link end -----------------------------------------------------------------------------------------


class End:
    """A raw link end over one side of a socketpair: keeps every frame it gets, and why it was lost."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, max_buffered: int | None = None) -> None:
        self.frames: list[Any] = []
        self.lost: asyncio.Future[str] = loop.create_future()
        kwargs = {} if max_buffered is None else {"max_buffered": max_buffered}
        self.channel = Channel(loop, self._frame, self._lost, **kwargs)

    def _frame(self, frame_type: int, payload: bytes) -> None:
        self.frames.append(lf.parse(frame_type, payload))

    def _lost(self, reason: str) -> None:
        if not self.lost.done():
            self.lost.set_result(reason)

    async def connect(self, sock: socket.socket) -> End:
        await asyncio.get_running_loop().create_unix_connection(lambda: self.channel, sock=sock)
        return self


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait (bounded) until `check()` holds."""
    async with asyncio.timeout(WAIT_S):
        while not check():
            await asyncio.sleep(0.005)
    assert check(), what


@pytest.mark.asyncio
async def test_frames_queued_in_one_iteration_arrive_whole_and_in_order() -> None:
    loop = asyncio.get_running_loop()
    left_sock, right_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    left, right = await End(loop).connect(left_sock), await End(loop).connect(right_sock)
    for frame in SAMPLES:
        left.channel.send(frame)
    assert left.channel.buffered > 0 and right.frames == []  # queued: written at the end of this iteration
    await until(lambda: len(right.frames) == len(SAMPLES), "every frame arrived")
    assert right.frames == SAMPLES
    assert left.channel.frames_out == right.channel.frames_in == len(SAMPLES)
    left.channel.close("done")
    assert await asyncio.wait_for(right.lost, WAIT_S) == "link closed by the peer"


@pytest.mark.asyncio
async def test_frames_are_cut_out_of_reads_of_any_size() -> None:
    """Reads that end inside a head or a frame, one byte at a time or several frames at once, give the same frames."""
    data = b"".join(lf.build(frame) for frame in SAMPLES)
    loop = asyncio.get_running_loop()
    for size in (1, 3, 64, len(data)):
        got: list[tuple[int, bytes]] = []
        channel = Channel(loop, lambda t, p: got.append((t, p)), lambda _reason: None)  # noqa: B023 - used at once
        for start in range(0, len(data), size):
            channel.data_received(data[start : start + size])
        assert [lf.parse(t, p) for t, p in got] == SAMPLES, size
        assert all(type(p) is bytes for _, p in got) and channel.frames_in == len(SAMPLES)


@pytest.mark.parametrize("length", [0, lf.MAX_LINK_FRAME + 1])
@pytest.mark.asyncio
async def test_a_frame_of_an_impossible_length_ends_the_link(length: int) -> None:
    loop = asyncio.get_running_loop()
    left_sock, right_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    right = await End(loop).connect(right_sock)
    left_sock.sendall(lf.HEAD.pack(length, lf.LinkType.HELLO))
    assert await asyncio.wait_for(right.lost, WAIT_S) == f"link frame of {length} bytes"
    assert right.frames == []
    left_sock.close()


@pytest.mark.asyncio
async def test_a_peer_that_stops_reading_costs_bounded_memory_and_is_given_up() -> None:
    """The side that writes never waits for its peer: what it holds is bounded by max_buffered (plus one iteration's
    frames), and past it the link ends."""
    loop = asyncio.get_running_loop()
    bound, chunk = 1 << 20, b"x" * (64 << 10)
    writer_sock, reader_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)  # reader_sock: never read
    writer = await End(loop, max_buffered=bound).connect(writer_sock)
    high = 0
    async with asyncio.timeout(WAIT_S):
        while not writer.lost.done():
            for _ in range(4):  # 256 KiB an iteration
                writer.channel.send(lf.FrameFor(1, chunk))
            high = max(high, writer.channel.buffered)
            await asyncio.sleep(0)
    assert writer.lost.result() == f"peer not reading: more than {bound} bytes queued"
    assert bound < high <= bound + 2 * 4 * (len(chunk) + 64), high
    assert writer.channel.buffered == 0, "what was queued is dropped with the link"
    writer.channel.send(lf.FrameFor(1, chunk))  # a lost link takes nothing more
    assert writer.channel.buffered == 0
    reader_sock.close()


# --- a gateway's end and the core -------------------------------------------------------------------------


class HeldConnections:
    """The gateway's side of `CoreLink`: the connections it holds, and the frames the core sent them."""

    def __init__(self) -> None:
        self.connections: list[tuple[int, str, str]] = []
        self.sent: list[tuple[int, bytes]] = []

    def held(self) -> list[tuple[int, str, str]]:
        return list(self.connections)

    def send_encoded(self, sid: int, raw: bytes) -> None:
        self.sent.append((sid, raw))


def a_send(n: int, conversation: int, to: tuple[str, ...] = ()) -> Send:
    meta = (MetaEntry(MEMBERS_KEY, ",".join(to).encode()),) if to else ()
    return Send(n.to_bytes(16, "big"), conversation, ContentType.TEXT, f"m{n}".encode(), meta, request_id=n)


@dataclasses.dataclass
class Host:
    """A core over an in-memory log, and a gateway's CoreLink joined to it by a real link."""

    core: Core
    log: MemoryLog
    gateway: CoreLink
    endpoint: RecordingEndpoint
    state: HeldConnections
    core_ends: list[GatewayLink]

    async def join(self) -> GatewayLink:
        """A new link between the gateway and the core (as the supervisor makes one when either restarts)."""
        loop = asyncio.get_running_loop()
        core_sock, gateway_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        end = GatewayLink(self.core, loop, lambda _link: None)
        await loop.create_unix_connection(lambda: end.channel, sock=core_sock)
        await self.gateway.attach(gateway_sock)
        self.core_ends.append(end)
        return end


@pytest_asyncio.fixture
async def host() -> AsyncIterator[Host]:
    loop = asyncio.get_running_loop()
    log = MemoryLog(loop)
    core = Core(config=Config(), log=log, loop=loop, events=lambda *_, **__: None)
    endpoint, state = RecordingEndpoint(), HeldConnections()
    gateway = CoreLink(endpoint, state, loop, gateway=0)
    h = Host(core, log, gateway, endpoint, state, [])
    await h.join()
    yield h
    gateway.close()
    for end in h.core_ends:
        end.channel.close("test over")


async def connected(host: Host, sid: int, user: str) -> None:
    """Connection `sid` admitted by the core over the link and ready as `user`."""
    host.gateway.admit(sid, f"198.51.100.{sid}")
    await until(lambda: (sid, None) in host.endpoint.verdicts, "admitted")
    host.gateway.opened(sid, user)
    host.state.connections.append((sid, f"198.51.100.{sid}", user))


@pytest.mark.asyncio
async def test_a_send_crosses_the_link_and_its_deliver_comes_back_encoded_once(host: Host) -> None:
    await connected(host, 1, "alice")
    await connected(host, 2, "bob")
    send = a_send(1, 1001, ("alice", "bob"))
    host.gateway.submit(1, send, 0.5)
    await until(lambda: len(host.endpoint.acks) == 1 and len(host.endpoint.published) == 1, "acked and published")
    [(sid, acked, result, _cursor)] = host.endpoint.acks
    assert (sid, acked, result.status, result.duplicate) == (1, send, ErrorCode.OK, False)
    assert result.message is not None and (result.message.conversation_id, result.message.seq) == (1001, 1)
    [published] = host.endpoint.published
    assert (published.origin, published.message.seq, published.t0) == (1, 1, pytest.approx(0.5))
    assert [user for user, _ in published.recipients] == ["bob"], "the sender's only device is the origin"
    deliver = lf.kefu_frame(published.message.frame)
    assert isinstance(deliver, Deliver) and (deliver.sender, deliver.body) == ("alice", b"m1")
    assert host.gateway.waiting == 0


@pytest.mark.asyncio
async def test_what_a_dead_core_left_unanswered_is_asked_again_of_the_next(host: Host) -> None:
    """The core's end of the link dies with its requests unanswered; a new core gets HELLO, the held connections,
    and the same SEND again, which it stores once."""
    await connected(host, 1, "alice")
    await connected(host, 2, "bob")
    dead = host.core_ends[0]
    first = a_send(1, 1001, ("alice", "bob"))
    host.gateway.submit(1, first, 0.0)
    await until(lambda: len(host.endpoint.acks) == 1, "the first SEND answered")

    # The core stops answering (its process is stopped), then dies: the second SEND waits, then is sent again.
    dead.channel.transport.pause_reading()  # type: ignore[union-attr]
    second = a_send(2, 1001)
    host.gateway.submit(1, second, 0.0)
    host.gateway.cursor("bob", 1001, 1)
    await asyncio.sleep(0.05)
    assert len(host.endpoint.acks) == 1 and host.gateway.waiting == 1
    dead.channel.close("core killed")
    host.core.endpoint_lost(dead)
    await until(lambda: not host.gateway.up, "the gateway saw its link end")
    host.gateway.cursor("bob", 1001, 1)  # an advance made while no core listens: kept for the next one

    # A new link (the restarted core keeps its log: the first message is durable there).
    await host.join()
    await until(lambda: len(host.endpoint.acks) == 2, "the waiting SEND answered by the next core")
    sid, acked, result, _cursor = host.endpoint.acks[1]
    assert (sid, acked, result.status) == (1, second, ErrorCode.OK)
    assert result.message is not None and result.message.seq == 2
    assert [m.seq for m in host.log.conversations[1001].messages] == [1, 2], "stored once each"
    assert host.gateway.waiting == 0
    # The core knows the held connections again: bob (restored, never re-admitted) gets the second message.
    await until(lambda: len(host.endpoint.published) == 2, "published to the restored connections")
    assert [u for u, _ in host.endpoint.published[1].recipients] == ["bob"]


@pytest.mark.asyncio
async def test_a_gateway_that_stops_reading_does_not_stall_the_core(host: Host) -> None:
    """The core writes PUBLISH frames to a gateway that reads none of them: what it queues stays bounded, the link is
    given up past the bound (MAX_BUFFERED, scaled down here), and the core keeps serving another gateway."""
    loop = asyncio.get_running_loop()
    stalled_end = host.core_ends[0]
    bound = 2 << 20
    stalled_end.channel._max_buffered = bound
    await connected(host, 1, "alice")

    # A second gateway, holding bob and carol.
    other_endpoint, other_state = RecordingEndpoint("other"), HeldConnections()
    other = CoreLink(other_endpoint, other_state, loop, gateway=1)
    core_sock, gateway_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    other_end = GatewayLink(host.core, loop, lambda _link: None)
    await loop.create_unix_connection(lambda: other_end.channel, sock=core_sock)
    await other.attach(gateway_sock)
    other.admit(1, "198.51.100.200")
    await until(lambda: (1, None) in other_endpoint.verdicts, "bob admitted")
    other.opened(1, "bob")
    other.admit(2, "198.51.100.201")
    await until(lambda: (2, None) in other_endpoint.verdicts, "carol admitted")
    other.opened(2, "carol")

    # alice's gateway stops reading; bob keeps sending large messages to alice and carol.
    assert host.gateway.channel is not None and host.gateway.channel.transport is not None
    host.gateway.channel.transport.pause_reading()
    body = b"x" * (60 << 10)
    high = 0
    messages = 100  # 6 MB for a gateway that reads nothing
    for n in range(1, messages + 1):
        meta = (MetaEntry(MEMBERS_KEY, b"alice,bob,carol"),) if n == 1 else ()
        other.submit(1, Send(n.to_bytes(16, "big"), 1001, ContentType.TEXT, body, meta, request_id=n), 0.0)
        await until(lambda n=n: len(other_endpoint.acks) == n, f"bob's SEND {n} acknowledged")  # type: ignore[misc]
        high = max(high, stalled_end.channel.buffered)
    assert [r.status for _, _, r, _ in other_endpoint.acks] == [ErrorCode.OK] * messages
    assert stalled_end.channel.lost, "the link to the gateway that stopped reading was given up"
    assert high <= bound + 2 * (len(body) + 256), high
    assert len(other_endpoint.published) == messages, "the other gateway got every message meanwhile"
    assert {u for p in other_endpoint.published for u, _ in p.recipients} == {"carol"}
    # The core forgot the stalled gateway's connections (alice is offline: her messages wait in the log for her).
    assert list(host.core.devices("alice")) == [] and host.core.connections == 2
    other.close()


@pytest.mark.asyncio
async def test_a_run_of_cursor_advances_leaves_as_one_frame_per_cursor_before_the_next_frame(host: Host) -> None:
    """Advances with no other frame between them are merged (the highest seq per cursor, as the core keeps it), and
    every other frame still reaches the core after the advances made before it."""
    await connected(host, 1, "alice")
    await connected(host, 2, "bob")
    for n in (1, 2, 3):
        host.gateway.submit(1, a_send(n, 1001, ("alice", "bob")), 0.0)
    await until(lambda: len(host.endpoint.acks) == 3, "three messages stored")
    end = host.core_ends[0]
    received: list[int] = []
    handle = end.channel._on_frame

    def record(frame_type: int, payload: bytes) -> None:
        received.append(frame_type)
        handle(frame_type, payload)

    end.channel._on_frame = record
    host.gateway.cursor("bob", 1001, 2)
    host.gateway.cursor("bob", 1001, 3)
    host.gateway.cursor("bob", 1001, 1)  # lower: the core would keep 3, and so does the merged frame
    host.gateway.cursor("alice", 1001, 2)
    host.gateway.submit(2, a_send(4, 1001), 0.0)
    host.gateway.cursor("alice", 1001, 3)
    await until(lambda: len(host.endpoint.acks) == 4 and len(received) == 4, "the SEND answered, the last advance")
    assert received == [lf.LinkType.CURSOR, lf.LinkType.CURSOR, lf.LinkType.SUBMIT, lf.LinkType.CURSOR]
    assert (host.log.cursor("bob", 1001), host.log.cursor("alice", 1001)) == (3, 3)
