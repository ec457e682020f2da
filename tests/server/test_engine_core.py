"""The delivery core (kefu.server.engine.core.Core) against fakes of its ports: admission, presence across gateways,
SEND validation and acknowledgement, fan-out, the arrival grace, the three forms of SYNC (spec/PROTOCOL.md sections
4.5 and 4.10), and what a lost gateway takes with it.

The core reads `time.monotonic()`; every test here replaces its clock with a `ManualClock`, so rates and the arrival
grace are exact.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Iterable
from typing import Any

import pytest

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import (
    SERVICE_BASE,
    SYSTEM_SENDER,
    ContentType,
    Deliver,
    Error,
    Flag,
    Frame,
    MetaEntry,
    OpenConversation,
    Send,
    Sync,
    SyncDone,
)
from kefu.server.config import Config
from kefu.server.engine import core as core_module
from kefu.server.engine.core import ARRIVAL_GRACE_S, MEMBERS_KEY, Core, deliver_frame, outgoing
from kefu.server.engine.messages import SendRequest, SendResult
from kefu.server.engine.ports import LogClosed

from .fakes import ManualClock, MemoryLog, Published, RecordingEndpoint, RecordingPolicy, decode_one

OK = ErrorCode.OK
SERVICE = SERVICE_BASE + 1
_ids = itertools.count(1)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """The core's clock (it calls `time.monotonic()` of its module)."""
    clock = ManualClock()
    monkeypatch.setattr(core_module, "time", clock)
    return clock


def make_core(
    *, limits: dict[str, Any] | None = None, server: dict[str, Any] | None = None,
    delivery: dict[str, Any] | None = None, policy: RecordingPolicy | None = None,
) -> tuple[Core, MemoryLog]:  # fmt: skip
    """A core over a fresh MemoryLog, with the embedded defaults changed as asked."""
    c = Config()
    config = dataclasses.replace(
        c,
        limits=dataclasses.replace(c.limits, **(limits or {})),
        server=dataclasses.replace(c.server, **(server or {})),
        delivery=dataclasses.replace(c.delivery, **(delivery or {})),
    )
    loop = asyncio.get_running_loop()
    log = MemoryLog(loop)
    core = Core(config=config, log=log, loop=loop, events=lambda *_, **__: None)
    core.policy = policy
    return core, log


_sids = itertools.count(1)


def connect(core: Core, endpoint: RecordingEndpoint, user: str) -> int:
    """A connection admitted (from an address of its own) and ready as `user`; its sid."""
    sid = next(_sids)
    core.admit(endpoint, sid, f"198.51.100.{sid % 250}:{sid}")
    assert endpoint.verdicts[-1] == (sid, None)
    core.opened(endpoint, sid, user)
    return sid


def send(conversation: int, *, body: bytes = b"hi", to: Iterable[str] = (), msg_id: int = 0) -> Send:
    """A SEND (naming the members of the conversation it creates with `to`)."""
    n = msg_id or next(_ids)
    meta = (MetaEntry(MEMBERS_KEY, ",".join(to).encode()),) if to else ()
    return Send(n.to_bytes(16, "big"), conversation, ContentType.TEXT, body, meta, request_id=n % 65536)


async def post(
    core: Core, log: MemoryLog, endpoint: RecordingEndpoint, sid: int, conversation: int, count: int = 1,
    *, to: Iterable[str] = (),
) -> None:  # fmt: skip
    """`count` messages from connection `sid`, each durable before the next is sent."""
    to = tuple(to)
    for _ in range(count):
        core.submit(endpoint, sid, send(conversation, to=to), 0.0)
        await log.durable()
        assert endpoint.acks[-1][2].status == OK


def ack_of(endpoint: RecordingEndpoint, s: Send) -> tuple[int, Send, SendResult, int]:
    [found] = [a for a in endpoint.acks if a[1] is s]
    return found


def system_write(conversation: int, members: tuple[str, ...], msg_id: int = 0) -> SendRequest:
    n = msg_id or next(_ids)
    return SendRequest(
        SYSTEM_SENDER, n.to_bytes(16, "big"), conversation, ContentType.EVENT, b'{"event":"opened"}', (),
        create_members=members, system=True,
    )  # fmt: skip


# --- admission ------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_new_connections_are_rate_limited_per_address_across_gateways(clock: ManualClock) -> None:
    core, _ = make_core(limits={"new_conns_per_ip_per_s": 1, "new_conns_per_ip_burst": 2})
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    core.admit(one, 1, "192.0.2.1")
    core.admit(two, 1, "192.0.2.1")
    core.admit(one, 2, "192.0.2.1")
    core.admit(two, 2, "192.0.2.9")
    assert one.verdicts == [(1, None), (2, ErrorCode.RATE_LIMITED)], "the burst is the address's, not a gateway's"
    assert two.verdicts == [(1, None), (2, None)], "another address has a bucket of its own"
    assert core.connections == 3, "a refused connection is not counted"
    clock.advance(1.0)
    core.admit(two, 3, "192.0.2.1")
    assert two.verdicts[-1] == (3, None), "a second later the bucket has one token again"


@pytest.mark.asyncio
async def test_the_connection_limit_counts_every_gateway(clock: ManualClock) -> None:
    core, _ = make_core(server={"max_connections": 2})
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    core.admit(one, 1, "192.0.2.1")
    core.admit(two, 1, "192.0.2.2")
    core.admit(one, 2, "192.0.2.3")
    assert one.verdicts == [(1, None), (2, ErrorCode.RATE_LIMITED)] and two.verdicts == [(1, None)]
    core.closed(two, 1)
    core.admit(one, 3, "192.0.2.4")
    assert one.verdicts[-1] == (3, None) and core.connections == 2


@pytest.mark.asyncio
async def test_a_draining_core_refuses_connections(clock: ManualClock) -> None:
    core, _ = make_core()
    one = RecordingEndpoint()
    core.admit(one, 1, "192.0.2.1")
    core.draining = True
    core.admit(one, 2, "192.0.2.2")
    assert one.verdicts == [(1, None), (2, ErrorCode.SHUTTING_DOWN)] and core.connections == 1


# --- presence and fan-out --------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_user_on_two_gateways_gets_every_message_on_both(clock: ManualClock) -> None:
    core, log = make_core()
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    a1, a2, b = connect(core, one, "alice"), connect(core, two, "alice"), connect(core, one, "bob")
    assert {(d.endpoint, d.sid) for d in core.devices("alice")} == {(one, a1), (two, a2)}
    await post(core, log, one, b, 7, to=["alice"])
    assert [(p.recipients, p.origin) for p in one.published] == [([("alice", 0)], b)], "bob's device is the origin"
    assert [(p.recipients, p.origin) for p in two.published] == [([("alice", 0)], 0)]
    assert one.published[0].message == two.published[0].message == outgoing(log.messages(7)[0])
    deliver = decode_one(one.published[0].message.frame)
    assert isinstance(deliver, Deliver) and (deliver.conversation_id, deliver.seq, deliver.sender) == (7, 1, "bob")
    assert deliver.flags == 0 and deliver.request_id == 0

    core.cursor("alice", 7, 1)
    await post(core, log, one, a1, 7)
    assert [(p.recipients, p.origin) for p in one.published[1:]] == [([("bob", 0)], a1)]
    assert [(p.recipients, p.origin) for p in two.published[1:]] == [([("alice", 1)], 0)], "with alice's cursor"
    await post(core, log, two, a2, 7)
    assert [(p.recipients, p.origin) for p in one.published[2:]] == [([("bob", 0), ("alice", 1)], 0)], "members' order"
    assert two.published[2:] == [], "alice's only device there sent it: that gateway gets nothing to deliver"


@pytest.mark.asyncio
async def test_one_publish_per_gateway_however_many_devices(clock: ManualClock) -> None:
    core, log = make_core()
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    carol = connect(core, two, "carol")
    for user in ("alice", "bob", "alice", "bob", "alice"):
        connect(core, one, user)
    await post(core, log, two, carol, 7, to=["alice", "bob"])
    assert [(p.recipients, p.origin) for p in one.published] == [([("alice", 0), ("bob", 0)], 0)]
    assert two.published == []


# --- SEND -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "conversation", "code"),
    [
        (b"x" * 17, 7, ErrorCode.MESSAGE_TOO_LARGE),
        (b"", 7, ErrorCode.BAD_REQUEST),
        (b"hi", 0, ErrorCode.BAD_REQUEST),
        (b"hi", SERVICE, ErrorCode.BAD_REQUEST),  # the service range without a policy
    ],
)
@pytest.mark.asyncio
async def test_invalid_sends_are_refused_at_once(
    clock: ManualClock, body: bytes, conversation: int, code: ErrorCode
) -> None:
    core, log = make_core(server={"max_message_bytes": 16})
    one = RecordingEndpoint()
    sid = connect(core, one, "alice")
    s = send(conversation, body=body, to=["bob"])
    core.submit(one, sid, s, 0.0)
    assert one.acks == [(sid, s, SendResult(int(code), False, None, ()), 0)], "answered before anything is stored"
    assert log.requests == [] and one.published == []


@pytest.mark.parametrize("conversation", [7, SERVICE], ids=["plain", "service"])
@pytest.mark.asyncio
async def test_a_clients_event_is_refused_in_any_conversation(clock: ManualClock, conversation: int) -> None:
    """Only the server's system sender writes EVENT (sections 4.1, 13.2): a client's is BAD_REQUEST, stored nowhere."""
    core, log = make_core(policy=RecordingPolicy())
    one = RecordingEndpoint()
    sid = connect(core, one, "alice")
    s = dataclasses.replace(send(conversation, to=["bob"]), content_type=ContentType.EVENT)
    core.submit(one, sid, s, 0.0)
    assert one.acks == [(sid, s, SendResult(int(ErrorCode.BAD_REQUEST), False, None, ()), 0)]
    assert log.requests == [] and one.published == []


@pytest.mark.asyncio
async def test_a_body_of_exactly_the_limit_is_stored(clock: ManualClock) -> None:
    core, log = make_core(server={"max_message_bytes": 16})
    one = RecordingEndpoint()
    sid = connect(core, one, "alice")
    s = send(7, body=b"x" * 16, to=["bob"])
    core.submit(one, sid, s, 0.0)
    await log.durable()
    assert ack_of(one, s)[2].status == OK and log.last_seq(7) == 1


@pytest.mark.asyncio
async def test_the_service_range_is_written_under_the_policy(clock: ManualClock) -> None:
    policy = RecordingPolicy(send_code=ErrorCode.FORBIDDEN)
    core, log = make_core(policy=policy)
    one = RecordingEndpoint()
    sid = connect(core, one, "alice")
    refused = send(SERVICE)
    core.submit(one, sid, refused, 0.0)
    assert ack_of(one, refused)[2].status == ErrorCode.FORBIDDEN
    assert policy.checked == [("alice", SERVICE, ContentType.TEXT)], "the policy is asked with the content type"

    creating = send(SERVICE, to=["bob"])
    core.submit(one, sid, creating, 0.0)
    assert ack_of(one, creating)[2].status == ErrorCode.BAD_REQUEST, "only the server creates service conversations"
    assert len(policy.checked) == 1 and log.requests == []

    policy.send_code = None
    core.write(system_write(SERVICE, ("alice",)), lambda _: None)
    await log.durable()
    allowed = send(SERVICE)
    core.submit(one, sid, allowed, 0.0)
    await log.durable()
    result = ack_of(one, allowed)[2]
    assert result.status == OK and result.message is not None and result.message.seq == 2
    assert policy.committed_results == [result], "the policy hears of committed service messages"


@pytest.mark.asyncio
async def test_the_app_rate_is_shared_by_every_gateway(clock: ManualClock) -> None:
    core, log = make_core(limits={"app_frames_per_s": 1, "app_frames_burst": 2})
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    a1, a2, b = connect(core, one, "alice"), connect(core, two, "alice"), connect(core, one, "bob")
    first, second, third = send(7, to=["bob"]), send(7), send(7)
    core.submit(one, a1, first, 0.0)
    core.submit(two, a2, second, 0.0)
    core.submit(one, a1, third, 0.0)
    assert ack_of(one, third)[2] == SendResult(int(ErrorCode.RATE_LIMITED), False, None, ())
    core.sync(two, a2, Sync(0, 0, 0, 0, request_id=5), 10)
    [refusal] = two.frames_for(a2)
    assert isinstance(refusal, Error) and (refusal.code, refusal.request_id) == (ErrorCode.RATE_LIMITED, 5)
    bobs = send(7)
    core.submit(one, b, bobs, 0.0)
    await log.durable()
    assert [ack_of(one, first)[2].status, ack_of(two, second)[2].status, ack_of(one, bobs)[2].status] == [OK] * 3
    clock.advance(1.0)
    fourth = send(7)
    core.submit(two, a2, fourth, 0.0)
    await log.durable()
    assert ack_of(two, fourth)[2].status == OK, "a second later alice has a token again"


@pytest.mark.asyncio
async def test_the_logs_refusals_and_failures_reach_the_send_ack(clock: ManualClock) -> None:
    core, log = make_core()
    one = RecordingEndpoint()
    alice, carol = connect(core, one, "alice"), connect(core, one, "carol")
    await post(core, log, one, alice, 7, to=["bob"])
    unknown, stranger = send(8), send(7)
    core.submit(one, alice, unknown, 0.0)
    core.submit(one, carol, stranger, 0.0)
    await log.durable()
    assert ack_of(one, unknown)[2].status == ErrorCode.NOT_FOUND, "no such conversation, and no kefu.to"
    assert ack_of(one, stranger)[2].status == ErrorCode.NOT_FOUND, "carol is not a member: told as if there were none"
    assert log.members(7) == ("alice", "bob") and log.last_seq(7) == 1, "nothing stored"
    log.failing = True
    failed = send(7)
    core.submit(one, alice, failed, 0.0)
    await log.durable()
    assert ack_of(one, failed)[2].status == ErrorCode.STORAGE_UNAVAILABLE
    log.close()
    late = send(7)
    core.submit(one, alice, late, 0.0)
    assert ack_of(one, late)[2].status == ErrorCode.SHUTTING_DOWN
    assert log.last_seq(7) == 1, "only the first message was stored"


@pytest.mark.asyncio
async def test_a_send_from_a_connection_not_ready_is_dropped(clock: ManualClock) -> None:
    core, log = make_core()
    one = RecordingEndpoint()
    core.admit(one, 1, "192.0.2.1")  # admitted, handshake not finished
    core.submit(one, 1, send(7, to=["bob"]), 0.0)
    core.submit(one, 2, send(7, to=["bob"]), 0.0)  # never admitted
    assert one.acks == [] and log.requests == []


@pytest.mark.asyncio
async def test_a_committed_send_is_acknowledged_once_durable_with_the_senders_cursor(clock: ManualClock) -> None:
    policy = RecordingPolicy()
    core, log = make_core(policy=policy)
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    alice, bob = connect(core, one, "alice"), connect(core, two, "bob")
    await post(core, log, one, alice, 7, to=["bob"])
    core.cursor("alice", 7, 1)
    s = send(7)
    core.submit(one, alice, s, 0.0)
    assert len(one.acks) == 1 and len(two.published) == 1, "nothing is acknowledged or published before durability"
    await log.durable()
    sid, _, result, cursor = one.acks[-1]
    assert (sid, result.status, result.duplicate, cursor) == (alice, OK, False, 1)
    assert result.message is not None and result.message.seq == 2 and result.members == ("alice", "bob")
    assert [(p.message.seq, p.recipients) for p in two.published] == [(1, [("bob", 0)]), (2, [("bob", 0)])]
    assert one.published == [], "alice's only device sent both"
    assert policy.committed_results == [], "the policy hears only of the service range"

    again = dataclasses.replace(s, body=b"something else")
    core.submit(one, alice, again, 0.0)
    await log.durable()
    sid, _, repeat, cursor = one.acks[-1]
    assert repeat.duplicate and repeat.message == result.message and cursor == 0
    assert len(two.published) == 2 and log.last_seq(7) == 2, "a duplicate is neither stored nor published again"
    assert bob in {d.sid for d in core.devices("bob")}


@pytest.mark.asyncio
async def test_a_sender_gone_before_durability_gets_no_ack_but_the_message_goes_out(clock: ManualClock) -> None:
    core, log = make_core()
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    alice, bob = connect(core, one, "alice"), connect(core, two, "bob")
    core.submit(one, alice, send(7, to=["bob"]), 0.0)
    core.closed(one, alice)
    await log.durable()
    assert one.acks == [], "its connection is gone: the client sends it again after reconnecting"
    assert [(p.message.seq, p.recipients) for p in two.published] == [(1, [("bob", 0)])]
    assert bob == next(iter(core.devices("bob"))).sid


# --- the arrival grace -----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_device_that_arrives_late_gets_what_was_stored_since_its_admission(clock: ManualClock) -> None:
    core, log = make_core()
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    alice = connect(core, one, "alice")
    core.admit(two, 50, "192.0.2.50")  # bob's connection, in its handshake
    clock.advance(0.5)
    stored_at = clock.now
    await post(core, log, one, alice, 7, to=["bob"])
    assert two.published == [], "bob has no ready device"
    clock.advance(0.5)
    core.opened(two, 50, "bob")
    assert two.published == [Published(outgoing(log.messages(7)[0]), [("bob", 0)], 0, stored_at)]


@pytest.mark.asyncio
async def test_a_device_admitted_after_the_message_does_not_get_it(clock: ManualClock) -> None:
    core, log = make_core()
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    alice = connect(core, one, "alice")
    await post(core, log, one, alice, 7, to=["bob"])
    clock.advance(0.5)
    core.admit(two, 50, "192.0.2.50")
    clock.advance(0.5)
    core.opened(two, 50, "bob")
    assert two.published == [], "its stream starts at bob's cursor when the conversation next has news"


@pytest.mark.asyncio
async def test_the_arrival_grace_is_bounded(clock: ManualClock) -> None:
    core, log = make_core()
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    alice = connect(core, one, "alice")
    core.admit(two, 50, "192.0.2.50")
    clock.advance(0.1)
    await post(core, log, one, alice, 7, to=["bob"])
    clock.advance(ARRIVAL_GRACE_S + 0.1)
    core.opened(two, 50, "bob")
    assert two.published == []


@pytest.mark.asyncio
async def test_a_second_device_that_arrives_late_gets_what_was_stored_since_its_admission(
    clock: ManualClock,
) -> None:
    core, log = make_core()
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    alice = connect(core, one, "alice")
    connect(core, one, "bob")  # bob's first device, online all along
    core.admit(two, 50, "192.0.2.50")  # bob's second device, in its handshake
    clock.advance(0.5)
    await post(core, log, one, alice, 7, to=["bob"])
    core.cursor("bob", 7, 1)  # the first device acknowledged it: a resume-all would not carry it
    assert log.cursor("bob", 7) == 1
    clock.advance(0.5)
    core.opened(two, 50, "bob")
    assert [(p.message.seq, p.recipients) for p in two.published] == [(1, [("bob", 0)])], (
        "offered from just below it, not from the stored cursor the first device moved past it"
    )


# --- SYNC -----------------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_sync_resumes_one_conversation_with_the_first_window(clock: ManualClock) -> None:
    core, log = make_core()
    one = RecordingEndpoint()
    alice, bob = connect(core, one, "alice"), connect(core, one, "bob")
    await post(core, log, one, bob, 7, 5, to=["alice"])
    messages = [outgoing(m) for m in log.messages(7)]
    core.sync(one, alice, Sync(7, 2, 0, 99, request_id=9), 2)
    core.sync(one, alice, Sync(7, 9, 0, 0, request_id=10), 2)
    core.sync(one, alice, Sync(7, 2, 0, 0, request_id=11), 0)
    assert one.resumed == [
        (alice, 9, 7, [(7, 2, 5, messages[2:4])]),  # limit is ignored: the window's room decides
        (alice, 10, 7, [(7, 5, 5, [])]),  # after_seq beyond the last seq: at most the last
        (alice, 11, 7, [(7, 2, 5, [])]),  # no room: the stream catches up as acknowledgements come
    ]
    assert one.frames_for(alice) == [], "SYNC_DONE is the gateway's, after the first window"


@pytest.mark.asyncio
async def test_sync_resumes_every_conversation_behind_sharing_the_window(clock: ManualClock) -> None:
    core, log = make_core()
    one = RecordingEndpoint()
    alice, bob = connect(core, one, "alice"), connect(core, one, "bob")
    await post(core, log, one, bob, 7, 3, to=["alice"])
    await post(core, log, one, bob, 8, 4, to=["alice"])
    await post(core, log, one, bob, 9, 2, to=["alice"])
    await post(core, log, one, bob, 10, 2, to=["carol"])
    core.cursor("alice", 7, 1)
    core.cursor("alice", 9, 2)
    c7, c8 = [outgoing(m) for m in log.messages(7)], [outgoing(m) for m in log.messages(8)]
    core.sync(one, alice, Sync(0, 0, 0, 0, request_id=1), 3)
    core.sync(one, alice, Sync(0, 5, 9, 100, request_id=2), 1)
    assert one.resumed == [
        (alice, 1, 0, [(7, 1, 3, c7[1:3]), (8, 0, 4, c8[:1])]),
        (alice, 2, 0, [(7, 1, 3, c7[1:2]), (8, 0, 4, [])]),  # whatever the other fields
    ]


@pytest.mark.asyncio
async def test_sync_fetches_a_range_once_with_limit_and_cap(clock: ManualClock) -> None:
    core, log = make_core(delivery={"sync_max_limit": 4})
    one = RecordingEndpoint()
    alice, bob = connect(core, one, "alice"), connect(core, one, "bob")
    await post(core, log, one, bob, 7, 10, to=["alice"])
    stored = log.messages(7)

    def fetch(after: int, until: int, limit: int, request_id: int) -> tuple[list[int], Frame]:
        before = len(one.frames_for(alice))
        core.sync(one, alice, Sync(7, after, until, limit, request_id=request_id), 0)
        *delivers, done = one.frames_for(alice)[before:]
        for frame in delivers:
            assert isinstance(frame, Deliver)
            assert frame == deliver_frame(stored[frame.seq - 1], redelivery=True, request_id=request_id)
            assert frame.flags == Flag.REDELIVERY
        return [frame.seq for frame in delivers if isinstance(frame, Deliver)], done

    assert fetch(2, 8, 3, 11) == ([3, 4, 5], SyncDone(7, 5, 1, request_id=11)), "the limit cut it short"
    assert fetch(5, 8, 0, 12) == ([6, 7, 8], SyncDone(7, 8, 0, request_id=12)), "limit 0: the cap; all sent"
    assert fetch(0, 100, 50, 13) == ([1, 2, 3, 4], SyncDone(7, 4, 1, request_id=13)), "the cap cut it short"
    assert fetch(8, 100, 0, 14) == ([9, 10], SyncDone(7, 10, 0, request_id=14)), "no later than the last seq"
    assert fetch(10, 20, 0, 15) == ([], SyncDone(7, 10, 0, request_id=15)), "none: last_seq is after_seq"
    assert one.resumed == [], "a fetch is answered by the core entirely, outside the stream"


@pytest.mark.asyncio
async def test_sync_refusals_are_errors_with_the_request_id(clock: ManualClock) -> None:
    policy = RecordingPolicy(readable=[("carol", SERVICE), ("carol", 7)])
    core, log = make_core(policy=policy)
    one = RecordingEndpoint()
    alice, carol = connect(core, one, "alice"), connect(core, one, "carol")
    await post(core, log, one, alice, 7, 2, to=["bob"])
    core.write(system_write(SERVICE, ("alice",)), lambda _: None)
    await log.durable()

    def refusal(sync: Sync) -> tuple[int, int] | None:
        before = len(one.frames_for(carol))
        core.sync(one, carol, sync, 10)
        frames = one.frames_for(carol)[before:]
        if len(frames) == 1 and isinstance(frames[0], Error):
            return frames[0].code, frames[0].request_id
        return None

    assert refusal(Sync(99, 0, 0, 0, request_id=1)) == (ErrorCode.NOT_FOUND, 1)
    assert refusal(Sync(99, 0, 5, 0, request_id=2)) == (ErrorCode.NOT_FOUND, 2)
    assert refusal(Sync(7, 0, 0, 0, request_id=3)) == (ErrorCode.NOT_FOUND, 3), "carol is not a member"
    assert refusal(Sync(7, 0, 5, 0, request_id=4)) == (ErrorCode.NOT_FOUND, 4), "the policy rules service ranges only"
    assert refusal(Sync(SERVICE, 0, 0, 0, request_id=5)) == (ErrorCode.FORBIDDEN, 5), "a reader never resumes"
    assert refusal(Sync(SERVICE, 0, 5, 0, request_id=6)) is None, "but may fetch what the policy lets it read"
    assert one.frames_for(carol)[-1] == SyncDone(SERVICE, 1, 0, request_id=6)
    assert one.resumed == []


@pytest.mark.asyncio
async def test_a_conversation_one_may_not_read_is_refused_as_one_that_does_not_exist(clock: ManualClock) -> None:
    """A SYNC (either form) and a SEND cannot tell a peer which conversation ids exist: a stranger gets for an existing
    conversation, plain or in the service range, the very ERROR frame or SEND_ACK status it gets for a missing one."""
    core, log = make_core(policy=RecordingPolicy())
    one = RecordingEndpoint()
    alice, carol = connect(core, one, "alice"), connect(core, one, "carol")
    await post(core, log, one, alice, 7, to=["bob"])
    core.write(system_write(SERVICE, ("alice",)), lambda _: None)
    await log.durable()

    def answer(conversation: int, until: int) -> Frame:
        core.sync(one, carol, Sync(conversation, 0, until, 0, request_id=9), 10)
        return one.frames_for(carol)[-1]

    for until in (0, 5):
        missing = answer(99, until)
        assert missing == Error(ErrorCode.NOT_FOUND, "not_found", request_id=9)
        assert (
            answer(7, until) == missing and answer(SERVICE, until) == missing and answer(SERVICE + 1, until) == missing
        )
    sends = [send(7), send(99), send(SERVICE), send(SERVICE + 1)]
    for s in sends:
        core.submit(one, carol, s, 0.0)
    await log.durable()
    assert [ack_of(one, s)[2] for s in sends] == [SendResult(int(ErrorCode.NOT_FOUND), False, None, ())] * 4
    assert one.resumed == [] and log.last_seq(7) == 1 and log.last_seq(SERVICE) == 1


@pytest.mark.asyncio
async def test_a_fetch_for_a_catch_up_answers_the_gateway(clock: ManualClock) -> None:
    core, log = make_core()
    one = RecordingEndpoint()
    alice = connect(core, one, "alice")
    await post(core, log, one, alice, 7, 4, to=["bob"])
    core.fetch(one, 5, 7, after=1, until=3, limit=2)
    core.fetch(one, 6, 7, after=2, until=0, limit=10)
    stored = [outgoing(m) for m in log.messages(7)]
    assert one.fetched_answers == [(5, stored[1:3]), (6, stored[2:4])]


# --- devices coming and going ------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_the_policy_hears_of_ready_devices_once(clock: ManualClock) -> None:
    policy = RecordingPolicy()
    core, _ = make_core(policy=policy)
    one = RecordingEndpoint()
    sid = connect(core, one, "alice")
    core.opened(one, sid, "alice")
    core.opened(one, 99, "mallory")  # never admitted
    core.admit(one, 100, "192.0.2.100")
    core.closed(one, 100)  # gone during its handshake
    core.closed(one, sid)
    core.closed(one, sid)
    assert [d.user for d in policy.connected_devices] == ["alice"]
    assert [d.user for d in policy.disconnected_devices] == ["alice"]
    assert core.connections == 0 and tuple(core.devices("alice")) == ()


@pytest.mark.asyncio
async def test_a_lost_gateway_takes_its_devices_and_the_policy_is_told(clock: ManualClock) -> None:
    policy = RecordingPolicy()
    core, log = make_core(policy=policy)
    one, two = RecordingEndpoint("one"), RecordingEndpoint("two")
    a1, a2, b = connect(core, one, "alice"), connect(core, two, "alice"), connect(core, one, "bob")
    core.admit(one, 77, "192.0.2.77")  # in its handshake
    await post(core, log, two, a2, 7, to=["bob"])
    there = {(d.user, d.sid): d for user in ("alice", "bob") for d in core.devices(user) if d.endpoint is one}
    assert set(there) == {("alice", a1), ("bob", b)}
    core.endpoint_lost(one)
    assert core.connections == 1
    assert sorted(map(id, policy.disconnected_devices)) == sorted(map(id, there.values())), "each ready one, once"
    assert [(d.endpoint, d.sid) for d in core.devices("alice")] == [(two, a2)] and tuple(core.devices("bob")) == ()
    published = len(one.published)
    await post(core, log, two, a2, 7)
    assert len(one.published) == published, "nothing goes to a lost gateway"
    core.submit(one, b, send(7), 0.0)
    core.sync(one, b, Sync(7, 0, 0, 0, request_id=3), 10)
    assert one.acks == [] and one.frames == [] and one.resumed == [], "requests of lost connections are dropped"


# --- what the desk uses ------------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_server_write_is_published_before_done_runs(clock: ManualClock) -> None:
    core, log = make_core()
    one = RecordingEndpoint()
    connect(core, one, "alice")
    seen: list[tuple[int, bool]] = []
    request = system_write(SERVICE, ("alice",))
    core.write(request, lambda result: seen.append((len(one.published), result.duplicate)))
    await log.durable()
    assert seen == [(1, False)] and one.published[0].recipients == [("alice", 0)] and one.published[0].origin == 0
    core.write(request, lambda result: seen.append((len(one.published), result.duplicate)))
    await log.durable()
    assert seen[-1] == (1, True), "a duplicate is not published again"
    log.close()
    with pytest.raises(LogClosed):
        core.write(system_write(SERVICE, ("alice",)), lambda _: None)


@pytest.mark.asyncio
async def test_service_requests_go_to_the_policy_under_the_app_rate(clock: ManualClock) -> None:
    core, _ = make_core(limits={"app_frames_per_s": 1, "app_frames_burst": 1})
    one = RecordingEndpoint()
    alice = connect(core, one, "alice")
    request = OpenConversation(b"\x01" * 16, "", "", (), b"", request_id=4)
    core.service(one, alice, request)
    [refusal] = one.frames_for(alice)
    assert isinstance(refusal, Error) and (refusal.code, refusal.request_id) == (ErrorCode.NOT_FOUND, 4)
    policy = RecordingPolicy()
    core.policy = policy
    clock.advance(1.0)
    core.service(one, alice, request)
    core.service(one, alice, request)
    assert [(d.user, f) for d, f in policy.requests] == [("alice", request)]
    refusal = one.frames_for(alice)[-1]
    assert isinstance(refusal, Error) and (refusal.code, refusal.request_id) == (ErrorCode.RATE_LIMITED, 4)


@pytest.mark.asyncio
async def test_acknowledgements_reach_the_log_as_cursors(clock: ManualClock) -> None:
    core, log = make_core()
    one = RecordingEndpoint()
    alice = connect(core, one, "alice")
    await post(core, log, one, alice, 7, 3, to=["bob"])
    core.cursor("bob", 7, 2)
    core.cursor("bob", 7, 1)
    assert log.cursor("bob", 7) == 2 and log.pending("bob") == [(7, 2, 3)]
