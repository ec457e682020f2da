"""Redelivery after a reconnect (issue #14 point 1), on the delivery side (kefu.server.engine.streams.Outbound): a
resume of every conversation (SYNC 0) never rewinds a stream behind the position the client stated on the connection,
and a stream that starts behind never sends the connection's user its own messages (spec/PROTOCOL.md sections 4.5 and
4.10, items 5 to 7).

The plans are those the core sends for the reference client's reconnect: SYNC(conversation, handled) for every
conversation it knows, then SYNC(0); after a crash the stored cursors may be behind what the client handled.
"""

from __future__ import annotations

from kefu.protocol.frames import Deliver, SyncDone

from .fakes import RecordingOutlet
from .test_engine_streams import Rig, delivered, message


def plan(conversation: int, after: int, last: int, senders: dict[int, str] | None = None) -> tuple:
    """A resume plan from the core: after..last with every message in its first window (sent by erin unless
    `senders` says otherwise)."""
    senders = senders or {}
    first = [message(conversation, s, senders.get(s, "erin")) for s in range(after + 1, last + 1)]
    return (conversation, after, last, first)


def test_resume_all_does_not_rewind_a_stream_the_client_positioned() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.outbound.resume(alice, 1, 7, [plan(7, 20, 25)])  # SYNC(7, after_seq=20): what the client handled
    assert delivered(alice) == [21, 22, 23, 24, 25]
    rig.outbound.resume(alice, 2, 0, [plan(7, 3, 25), plan(8, 0, 2)])  # SYNC(0): cursors a crash left behind
    assert delivered(alice, 7) == [21, 22, 23, 24, 25], "nothing the client said it has, nothing twice"
    assert delivered(alice, 8) == [1, 2], "a conversation the client did not name resumes from its cursor"
    assert alice.sent[-1] == SyncDone(0, 2, 0, request_id=2)
    assert alice.window is not None and alice.window.in_flight == 7


def test_resume_all_leaves_a_live_stream_where_it_is() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [5, 6], cursor=4)  # a live message started the stream at the cursor
    rig.ack(alice, (7, 6))
    rig.outbound.resume(alice, 3, 0, [plan(7, 4, 6)])  # the cursor as the core read it a moment before
    assert delivered(alice) == [5, 6]
    rig.publish(alice, 7, [7])
    assert delivered(alice) == [5, 6, 7]


def test_a_resume_of_one_conversation_still_rewinds_where_the_client_says() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.outbound.resume(alice, 1, 7, [plan(7, 2, 4)])
    rig.outbound.resume(alice, 2, 7, [plan(7, 1, 4)])  # the client asks again, from further back: its choice
    assert delivered(alice) == [3, 4, 2, 3, 4]


def test_a_resume_never_sends_the_user_its_own_messages_stored_before_it() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    mine = {4: "alice", 6: "alice"}
    rig.outbound.resume(alice, 1, 7, [plan(7, 2, 6, mine)])
    assert delivered(alice) == [3, 5], "alice's 4 and 6 were sent by one of her devices, maybe this one's client"
    rig.ack(alice, (7, 5))
    assert rig.core.cursors == [("alice", 7, 6)], "her own count as acknowledged: her cursor moves past them"


def test_a_resume_of_nothing_but_own_messages_moves_the_cursor_at_once() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.outbound.resume(alice, 1, 0, [plan(7, 2, 4, {3: "alice", 4: "alice"})])
    assert delivered(alice) == [] and alice.sent == [SyncDone(0, 1, 0, request_id=1)]
    assert rig.core.cursors == [("alice", 7, 4)], "no DELIVER_ACK will come: the position is reported now"


def test_own_messages_read_from_the_core_for_a_catch_up_are_skipped_too() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice", window_size=2)
    rig.outbound.resume(alice, 1, 7, [(7, 0, 5, [message(7, 1), message(7, 2)])])  # the first window only
    rig.ack(alice, (7, 2))
    [read] = rig.core.fetches
    rig.outbound.fetched(read.ticket, [message(7, 3, "alice"), message(7, 4)])
    assert delivered(alice) == [1, 2, 4]


def test_the_users_messages_stored_while_the_stream_runs_reach_its_other_devices() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")  # another device of alice's than the one that sends below
    rig.outbound.resume(alice, 1, 7, [plan(7, 0, 2)])
    for seq in (3, 4):
        m = message(7, seq, "alice")
        rig.outbound.recent.add(m)
        rig.outbound.offer(alice, m, 0, 0.0)
    assert delivered(alice) == [1, 2, 3, 4], "stored after the resume: section 4.10 item 1"


def test_a_live_stream_catching_up_from_the_cursor_skips_the_users_own() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [6], cursor=2)  # the stream starts at the cursor, 3..5 to catch up
    [read] = rig.core.fetches
    assert (read.after_seq, read.until_seq) == (2, 6)
    rig.outbound.fetched(read.ticket, [message(7, 3), message(7, 4, "alice"), message(7, 5), message(7, 6)])
    assert [f.seq for f in alice.sent if isinstance(f, Deliver)] == [3, 5, 6]
