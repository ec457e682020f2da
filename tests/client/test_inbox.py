"""The receiving side without a socket: duplicate filter, ack coalescing, the bounded queue."""

from __future__ import annotations

import asyncio
import random

import pytest

from kefu.client.inbox import AckCoalescer, Cursors, Inbox, Verdict
from kefu.client.messages import Message
from kefu.protocol.frames import SYSTEM_SENDER, AckEntry, ContentType, Deliver, Flag, MetaEntry


def message(conversation_id: int, seq: int, size: int = 1) -> Message:
    return Message(conversation_id, seq, "agent", b"x" * size, 1, bytes(16), seq, 0)


# --- explicit acknowledgement -------------------------------------------------------------------------


def given_out(cursors: Cursors, conversation_id: int, *seqs: int) -> None:
    for seq in seqs:
        assert cursors.admit(conversation_id, seq) is Verdict.NEW
        cursors.hand_out(conversation_id, seq)


def test_explicit_acks_advance_only_over_acked_seqs_in_any_order() -> None:
    cursors = Cursors()
    given_out(cursors, 7, 1, 2, 4, 5)  # 3 is the app's own message: never delivered to it, counts as handled
    assert cursors.acknowledge(7, 2) == 0  # 1 is still out
    assert cursors.acknowledge(7, 5) == 0
    assert cursors.acknowledge(7, 1) == 3  # 1, 2 and the own 3: up to just below 4
    assert cursors.acknowledge(7, 1) == 0  # idempotent
    assert cursors.acknowledge(7, 4) == 5  # nothing out any more: everything given out
    assert cursors.handled(7) == 5
    assert cursors.acknowledge(8, 1) == 0  # never given out


@pytest.mark.parametrize("seed", range(20))
def test_random_explicit_acks_match_a_model(seed: int) -> None:
    """Acks in random order, with repeats and a rewind midway: `handled` is always just below the lowest seq given
    out and not acked (or the highest given out), as a plain model computes it."""
    rng = random.Random(seed)
    cursors, out, handed, handled = Cursors(), set(), 0, 0
    seqs = list(range(1, 201))
    given_out(cursors, 3, *seqs[:100])
    out, handed = set(seqs[:100]), 100
    order = rng.sample(seqs[:100], 100) + rng.sample(seqs[:100], 10)  # ten repeats at the end
    for i, seq in enumerate(order):
        if i == 50:
            given_out(cursors, 3, *seqs[100:])
            out |= set(seqs[100:])
            handed = 200
            order += rng.sample(seqs[100:], 100)
        advanced = cursors.acknowledge(3, seq)
        out.discard(seq)
        expected = (min(out) - 1) if out else handed
        if expected > handled:
            assert advanced == expected
            handled = expected
        else:
            assert advanced == 0
        assert cursors.handled(3) == handled
    assert handled == 200


def test_after_a_rewind_what_was_not_acked_comes_again_and_what_was_does_not() -> None:
    cursors = Cursors()
    given_out(cursors, 7, 1, 2, 3)
    assert cursors.admit(7, 4) is Verdict.NEW  # queued, not yet given out when the connection went
    assert cursors.acknowledge(7, 2) == 0
    cursors.rewind()  # a new connection: the server resends everything after handled (0)
    assert [cursors.admit(7, s) for s in (1, 2, 3, 4)] == [Verdict.NEW, Verdict.QUEUED, Verdict.NEW, Verdict.NEW]
    assert [cursors.was_handed(7, s) for s in (1, 3, 4)] == [True, True, False]
    cursors.hand_out(7, 1)
    assert cursors.acknowledge(7, 1) == 2  # the old copy's ack or the new one's: the same seq
    cursors.hand_out(7, 3)
    assert cursors.acknowledge(7, 3) == 3


# --- duplicate filter ---------------------------------------------------------------------------------


def test_in_order_messages_are_new_and_repeats_are_not() -> None:
    cursors = Cursors()
    assert [cursors.admit(7, s) for s in (1, 2, 3)] == [Verdict.NEW] * 3
    assert cursors.admit(7, 2) is Verdict.QUEUED  # not handled yet: its ack comes when the app is done
    cursors.mark_handled(7, 2)
    assert cursors.admit(7, 1) is Verdict.HANDLED
    assert cursors.admit(7, 2) is Verdict.HANDLED
    assert cursors.admit(7, 3) is Verdict.QUEUED
    assert cursors.admit(7, 4) is Verdict.NEW


def test_conversations_are_independent() -> None:
    cursors = Cursors()
    assert cursors.admit(1, 5) is Verdict.NEW  # first seen mid-stream (resumed from the server's cursor)
    assert cursors.admit(2, 1) is Verdict.NEW
    assert cursors.admit(1, 5) is Verdict.QUEUED
    assert cursors.admit(2, 2) is Verdict.NEW


def test_handled_never_goes_back() -> None:
    cursors = Cursors()
    cursors.admit(1, 3)
    cursors.mark_handled(1, 3)
    cursors.mark_handled(1, 2)
    assert cursors.handled(1) == 3
    assert cursors.handled(99) == 0


def test_resume_points_are_the_handled_seqs_most_recent_first() -> None:
    cursors = Cursors()
    for conv in (1, 2, 3):
        cursors.admit(conv, 4)
        cursors.mark_handled(conv, conv)
    cursors.admit(1, 5)
    assert cursors.resume_points() == [(1, 1), (3, 3), (2, 2)]


def test_extends_means_duplicate_or_next() -> None:
    cursors = Cursors()
    assert cursors.extends(1, 1) and not cursors.extends(1, 2)
    cursors.admit(1, 1)
    assert cursors.extends(1, 1) and cursors.extends(1, 2) and not cursors.extends(1, 3)


def test_bounded_least_recent_forgotten() -> None:
    cursors = Cursors(limit=3)
    for conv in (1, 2, 3):
        cursors.admit(conv, 1)
    cursors.admit(1, 2)  # 1 is now the most recent
    cursors.admit(4, 1)  # evicts 2
    assert len(cursors) == 3
    assert {c for c, _ in cursors.resume_points()} == {1, 3, 4}


def test_forget() -> None:
    cursors = Cursors()
    cursors.admit(1, 1)
    cursors.forget(1)
    assert cursors.resume_points() == []
    assert cursors.admit(1, 1) is Verdict.NEW


# --- ack coalescing -----------------------------------------------------------------------------------


def test_acks_coalesce_to_the_highest_seq_per_conversation() -> None:
    acks = AckCoalescer()
    for seq in (1, 2, 3):
        acks.add(10, seq)
    acks.add(20, 5)
    acks.add(10, 2)  # lower: ignored, acks are cumulative
    assert len(acks) == 2
    assert acks.take() == (AckEntry(10, 3), AckEntry(20, 5))
    assert acks.take() == () and len(acks) == 0


def test_ack_take_is_chunked() -> None:
    acks = AckCoalescer()
    for conv in range(1, 11):
        acks.add(conv, conv)
    first = acks.take(limit=4)
    assert [e.conversation_id for e in first] == [1, 2, 3, 4]
    rest = acks.take(limit=100)
    assert [e.conversation_id for e in rest] == list(range(5, 11))


# --- the queue ----------------------------------------------------------------------------------------


def test_water_marks_on_count_and_bytes() -> None:
    inbox = Inbox(high_messages=4, low_messages=2, high_bytes=100, low_bytes=50)
    for seq in range(1, 4):
        inbox.put(message(1, seq))
    assert not inbox.above_high
    inbox.put(message(1, 4))
    assert inbox.above_high and not inbox.below_low

    big = Inbox(high_messages=100, low_messages=50, high_bytes=100, low_bytes=50)
    big.put(message(1, 1, size=60))
    assert not big.above_high and not big.below_low
    big.put(message(1, 2, size=40))
    assert big.above_high


def test_get_in_order_then_close_ends() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        inbox.put(message(1, 1))
        inbox.put(message(1, 2))
        first = await inbox.get()
        assert first is not None and first.seq == 1
        assert len(inbox) == 1 and inbox.below_low
        inbox.close()
        assert await inbox.get() is None

    asyncio.run(scenario())


def test_get_waits_and_cancelling_loses_nothing() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        waiter = asyncio.ensure_future(inbox.get())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        inbox.put(message(1, 1))
        later = asyncio.ensure_future(inbox.get())
        got = await asyncio.wait_for(later, 1)
        assert got is not None and got.seq == 1

    asyncio.run(scenario())


def test_fail_raises_after_the_queue_drains() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        inbox.put(message(1, 1))
        inbox.fail(RuntimeError("gone"))
        got = await inbox.get()
        assert got is not None and got.seq == 1
        with pytest.raises(RuntimeError, match="gone"):
            await inbox.get()

    asyncio.run(scenario())


def test_message_from_deliver() -> None:
    frame = Deliver(5, 2, 77, 123, b"\x01" * 16, 2, "agent", b"{}", (MetaEntry("k", b"v"),), flags=Flag.REDELIVERY)
    msg = Message.from_deliver(frame)
    assert (msg.conversation_id, msg.seq, msg.server_msg_id, msg.timestamp_ms) == (5, 2, 77, 123)
    assert (msg.sender, msg.text, msg.content_type, msg.metadata, msg.redelivery) == (
        "agent",
        "{}",
        2,
        {"k": b"v"},
        True,
    )


@pytest.mark.parametrize(
    ("sender", "content_type", "system"),
    [
        ("#kefu", ContentType.EVENT, True),  # the server's own event
        ("v1", ContentType.EVENT, False),  # a peer's EVENT is the peer's message, whatever its body says
        ("#kefu", ContentType.TEXT, False),  # an auto-reply of the server's: a message, not an event
        ("agent", ContentType.TEXT, False),
    ],
)
def test_a_system_event_is_an_event_from_the_system_sender(sender: str, content_type: int, system: bool) -> None:
    body = b'{"event":"transferred","agent":"a2"}'
    msg = Message.from_deliver(Deliver(5, 2, 77, 123, bytes(16), content_type, sender, body, ()))
    assert msg.is_system_event is system
    assert SYSTEM_SENDER == "#kefu", "spec section 13.2"
