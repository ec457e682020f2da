"""The delivery side (kefu.server.engine.streams.Outbound, with kefu.protocol.delivery.DeliveryWindow) against a
recording core and recording connections: offers within the window, catch-ups from the recent cache and from the core,
acknowledgements, a device's own messages, retries and SYNC resumes (spec/PROTOCOL.md section 4.10, items 5 to 7).

Each test plays the gateway's part as `kefu.server.edge.gateway.Gateway.publish` does: a durable message goes into
the recent cache, then is offered to the connection.
"""

from __future__ import annotations

from collections.abc import Iterable

from kefu.protocol.frames import AckEntry, ContentType, Deliver, DeliverAck, Flag, SyncDone
from kefu.server.engine.core import outgoing
from kefu.server.engine.messages import Outgoing, StoredMessage
from kefu.server.engine.streams import PUMP_BATCH, Outbound, Outlet

from .fakes import START_MS, FetchRequest, ManualClock, RecordingCore, RecordingOutlet, decode_one


def message(conversation: int, seq: int, sender: str = "erin") -> Outgoing:
    """A durable message, encoded as the core hands it to the gateways."""
    stored = StoredMessage(
        conversation, seq, 1000 + seq, START_MS, sender, seq.to_bytes(16, "big"), ContentType.TEXT,
        f"message {seq}".encode(), (),
    )  # fmt: skip
    return outgoing(stored)


class Rig:
    """One gateway's delivery side over a recording core, its clock, and the connections it deferred."""

    def __init__(self) -> None:
        self.core = RecordingCore()
        self.clock = ManualClock()
        self.deferred: list[Outlet] = []
        self.retried: list[int] = []
        self.outbound = Outbound(
            self.core, defer=self.deferred.append, count_retries=self.retried.append, clock=self.clock
        )

    def publish(self, outlet: RecordingOutlet, conversation: int, seqs: Iterable[int], cursor: int = 0) -> None:
        """Durable messages offered to `outlet`, as the gateway does (into the cache first)."""
        for seq in seqs:
            m = message(conversation, seq)
            self.outbound.recent.add(m)
            self.outbound.offer(outlet, m, cursor, 0.0)

    def ack(self, outlet: RecordingOutlet, *entries: tuple[int, int]) -> None:
        """A DELIVER_ACK from the connection."""
        self.outbound.acked(outlet, DeliverAck(tuple(AckEntry(c, s) for c, s in entries)))

    def answer(self, fetch: FetchRequest, seqs: Iterable[int] | None = None) -> None:
        """The core's answer to a read: the messages it asked for (or those of `seqs`)."""
        wanted = range(fetch.after_seq + 1, fetch.until_seq + 1) if seqs is None else seqs
        self.outbound.fetched(fetch.ticket, [message(fetch.conversation_id, seq) for seq in wanted])


def delivered(outlet: RecordingOutlet, conversation: int | None = None) -> list[int]:
    """The seqs of the DELIVERs the connection was sent (of one conversation, if given), in order."""
    return [
        f.seq
        for f in outlet.sent
        if isinstance(f, Deliver) and (conversation is None or f.conversation_id == conversation)
    ]


def redeliveries(outlet: RecordingOutlet) -> list[tuple[int, bool]]:
    """(seq, REDELIVERY flag set) of every DELIVER sent."""
    return [(f.seq, bool(f.flags & Flag.REDELIVERY)) for f in outlet.sent if isinstance(f, Deliver)]


# --- live offers -------------------------------------------------------------------------------------------------


def test_offers_go_out_in_order_within_the_window() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice", window_size=3)
    rig.publish(alice, 7, range(1, 6))
    assert delivered(alice) == [1, 2, 3], "the window holds three"
    assert all(f.flags == 0 and f.request_id == 0 for f in alice.sent if isinstance(f, Deliver))
    rig.ack(alice, (7, 2))
    assert delivered(alice) == [1, 2, 3, 4, 5], "the acknowledgement made room: the rest from the cache"
    assert rig.core.cursors == [("alice", 7, 2)] and rig.core.fetches == []
    assert alice.sent[0] == decode_one(message(7, 1).frame), "the DELIVER the core encoded, as it is"


def test_a_new_stream_starts_at_the_users_cursor() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [4], cursor=3)
    rig.publish(alice, 7, [3, 4], cursor=0)  # older or repeated offers are nothing new for the stream
    assert delivered(alice) == [4] and rig.core.fetches == []


def test_a_slow_reader_is_deferred_and_caught_up_when_drained() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    alice.buffers_full = True
    rig.publish(alice, 7, [1, 2])
    assert delivered(alice) == [] and rig.deferred == [alice, alice]
    alice.buffers_full = False
    rig.outbound.pump_all(alice)
    assert delivered(alice) == [1, 2]


def test_a_connection_not_ready_is_offered_nothing() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    alice.ready = False
    rig.publish(alice, 7, [1])
    rig.outbound.resume(alice, 9, 7, [(7, 0, 1, [message(7, 1)])])
    assert alice.sent == [] and alice.window is None


# --- catch-up ------------------------------------------------------------------------------------------------------


def test_a_stream_behind_catches_up_from_the_core_in_order() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [3])
    assert delivered(alice) == [] and rig.core.fetches == [FetchRequest(1, 7, 0, 3, 3)]
    rig.publish(alice, 7, [4])
    rig.publish(alice, 7, [1])  # offered again (a publish for another device of alice's, say)
    assert delivered(alice) == [] and len(rig.core.fetches) == 1, "the read holds the stream: one at a time"
    rig.answer(rig.core.fetches[0])
    assert delivered(alice) == [1, 2, 3, 4], "the answer, then the cache"
    assert rig.outbound.reads_waiting == 0


def test_a_catch_up_reads_in_batches_within_the_window() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [40])
    assert rig.core.fetches == [FetchRequest(1, 7, 0, PUMP_BATCH, PUMP_BATCH)]
    rig.answer(rig.core.fetches[0])
    assert rig.core.fetches[1] == FetchRequest(2, 7, PUMP_BATCH, 2 * PUMP_BATCH, PUMP_BATCH)
    bob = RecordingOutlet("bob", window_size=3)
    rig.publish(bob, 8, [10])
    assert rig.core.fetches[2] == FetchRequest(3, 8, 0, 3, 3), "no more than the window takes"


def test_a_sync_rewind_makes_a_read_on_its_way_stale() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [3])
    [read] = rig.core.fetches
    rig.outbound.resume(alice, 9, 7, [(7, 0, 3, [message(7, s) for s in (1, 2, 3)])])
    assert delivered(alice) == [1, 2, 3] and alice.sent[-1] == SyncDone(7, 3, 0, request_id=9)
    rig.answer(read)
    assert delivered(alice) == [1, 2, 3], "the stale answer sends nothing twice"
    assert alice.window is not None and alice.window.in_flight == 3


def test_a_read_a_rewind_replaced_is_ignored() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [3])
    rig.outbound.resume(alice, 9, 7, [(7, 0, 3, [])])  # the core had no room for a first window
    stale, current = rig.core.fetches
    assert (stale.after_seq, current.after_seq) == (0, 0) and alice.sent == [SyncDone(7, 3, 1, request_id=9)]
    rig.answer(stale)
    assert delivered(alice) == [], "the stream waits for the read its rewind asked for"
    rig.answer(current)
    assert delivered(alice) == [1, 2, 3] and rig.outbound.reads_waiting == 0


def test_a_forgotten_connection_ignores_its_reads() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [5])
    assert rig.outbound.reads_waiting == 1
    rig.outbound.forget(alice)
    assert rig.outbound.reads_waiting == 0
    rig.answer(rig.core.fetches[0])
    assert delivered(alice) == []


# --- acknowledgements and own messages ---------------------------------------------------------------------------


def test_acks_advance_streams_and_report_the_users_cursors() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [1, 2, 3])
    rig.publish(alice, 8, [1, 2])
    rig.ack(alice, (7, 2), (8, 5), (9, 1))
    assert rig.core.cursors == [("alice", 7, 2), ("alice", 8, 2)], "clamped to what was sent; no stream of 9"
    rig.ack(alice, (7, 1), (8, 2))
    assert len(rig.core.cursors) == 2, "nothing new acknowledged: nothing reported"
    assert alice.window is not None and alice.window.in_flight == 1
    unused = RecordingOutlet("carol")
    rig.ack(unused, (7, 1))
    assert unused.window is None and len(rig.core.cursors) == 2


def test_an_own_message_after_the_cursor_starts_the_stream_caught_up() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.outbound.own(alice, 7, 3, 2)
    assert rig.core.cursors == [("alice", 7, 3)], "counted as acknowledged at once"
    rig.publish(alice, 7, [4], cursor=2)
    assert delivered(alice) == [4] and rig.core.fetches == []


def test_an_own_message_is_skipped_and_acknowledged_with_what_precedes_it() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [1])
    rig.outbound.own(alice, 7, 2, 0)
    rig.outbound.recent.add(message(7, 2, sender="alice"))  # published for the others; alice's gateway has it
    assert rig.core.cursors == [], "1 is not acknowledged yet"
    rig.publish(alice, 7, [3])
    assert delivered(alice) == [1, 3], "never echoed"
    rig.clock.advance(1.0)
    rig.outbound.retry(alice, now=rig.clock.now, drained=True)
    assert redeliveries(alice)[2:] == [(1, True), (3, True)], "nor retransmitted"
    rig.ack(alice, (7, 1))
    assert rig.core.cursors == [("alice", 7, 2)], "the own seq counts once everything before it is acknowledged"
    rig.ack(alice, (7, 3))
    assert rig.core.cursors[-1] == ("alice", 7, 3) and alice.window is not None and alice.window.in_flight == 0


def test_an_own_message_this_gateway_never_held_needs_no_read() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [1])
    rig.outbound.own(alice, 7, 2, 0)  # the others are on another gateway: message 2 was published to none here
    rig.publish(alice, 7, [3])
    assert delivered(alice) == [1, 3] and rig.core.fetches == [], "the catch-up passes over the own seq"
    rig.ack(alice, (7, 1))
    assert rig.core.cursors == [("alice", 7, 2)]
    rig.ack(alice, (7, 3))
    assert rig.core.cursors[-1] == ("alice", 7, 3) and alice.window is not None and alice.window.in_flight == 0


def test_a_catch_up_past_own_seqs_reads_from_the_first_message_missing() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [1])
    rig.outbound.own(alice, 7, 2, 0)
    rig.outbound.own(alice, 7, 3, 0)
    rig.outbound.offer(alice, message(7, 5), 0, 0.0)  # 4 is in no cache
    [read] = rig.core.fetches
    assert (read.after_seq, read.until_seq) == (3, 5), "2 and 3 are taken without a read"
    rig.answer(read)
    assert delivered(alice) == [1, 4, 5]
    rig.ack(alice, (7, 5))
    assert rig.core.cursors[-1] == ("alice", 7, 5) and alice.window is not None and alice.window.in_flight == 0


def test_an_own_message_is_not_sent_back_even_when_offered() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [1])
    rig.outbound.own(alice, 7, 2, 0)
    rig.outbound.offer(alice, message(7, 2, sender="alice"), 0, 0.0)  # a publish that did not name its origin
    rig.publish(alice, 7, [3])
    assert delivered(alice) == [1, 3]
    rig.ack(alice, (7, 1))
    assert rig.core.cursors == [("alice", 7, 2)]


def test_an_own_message_behind_the_cursor_is_skipped_by_the_catch_up() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.outbound.own(alice, 8, 5, 2)
    assert alice.window is not None and rig.core.cursors == [], "a stream at the cursor, nothing acknowledged yet"
    [read] = rig.core.fetches
    assert (read.after_seq, read.until_seq) == (2, 5), "it catches up to the own message"
    rig.answer(read)
    rig.publish(alice, 8, [6], cursor=2)
    assert delivered(alice) == [3, 4, 6], "the sending device never gets its own message back (issue #14)"
    rig.ack(alice, (8, 4))
    assert rig.core.cursors == [("alice", 8, 5)], "the own seq counts once everything before it is acknowledged"


# --- retries -------------------------------------------------------------------------------------------------------


def test_retries_resend_what_is_in_flight_only_to_a_drained_connection() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice", rto=1.0, rto_max=8.0)
    rig.publish(alice, 7, [1, 2])
    window = alice.window
    assert window is not None and window.next_deadline() == rig.clock.now + 1.0
    rig.outbound.retry(alice, now=rig.clock.now + 1.0, drained=False)
    assert redeliveries(alice) == [(1, False), (2, False)] and rig.retried == []
    assert window.next_deadline() == rig.clock.now + 3.0, "the timer backs off all the same"
    rig.outbound.retry(alice, now=rig.clock.now + 3.0, drained=True)
    assert redeliveries(alice)[2:] == [(1, True), (2, True)] and rig.retried == [2]
    rig.clock.advance(4.0)
    rig.ack(alice, (7, 1))
    rig.outbound.retry(alice, now=rig.clock.now + 0.5, drained=True)
    assert len(redeliveries(alice)) == 4, "an acknowledgement restarts the timer"
    rig.outbound.retry(alice, now=rig.clock.now + 1.0, drained=True)
    assert redeliveries(alice)[4:] == [(2, True)], "from the first unacknowledged"
    assert rig.core.fetches == [], "all from the cache"


def test_a_retry_not_in_the_cache_is_read_from_the_core_without_holding_the_stream() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice", rto=1.0)
    for seq in (1, 2):  # offered without the cache (evicted since)
        rig.outbound.offer(alice, message(7, seq), 0, 0.0)
    rig.outbound.retry(alice, now=rig.clock.now + 1.0, drained=True)
    [read] = rig.core.fetches
    assert read == FetchRequest(1, 7, 0, 2, 2)
    rig.publish(alice, 7, [3])
    assert delivered(alice) == [1, 2, 3], "new messages go on while the retry is read"
    rig.ack(alice, (7, 1))
    rig.answer(read)
    assert redeliveries(alice)[3:] == [(2, True)], "only what is still unacknowledged"


# --- SYNC ---------------------------------------------------------------------------------------------------------


def test_resume_sends_the_first_window_before_sync_done() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice", window_size=3)
    rig.outbound.resume(alice, 9, 7, [(7, 0, 5, [message(7, s) for s in (1, 2, 3)])])
    assert delivered(alice) == [1, 2, 3] and alice.sent[3:] == [SyncDone(7, 5, 1, request_id=9)]
    assert redeliveries(alice) == [(1, False), (2, False), (3, False)], "ordinary stream DELIVERs"
    rig.ack(alice, (7, 3))
    assert rig.core.fetches == [FetchRequest(1, 7, 3, 5, 2)], "the rest follows as the window frees, no SYNC"
    rig.answer(rig.core.fetches[0])
    assert delivered(alice) == [1, 2, 3, 4, 5]

    bob = RecordingOutlet("bob")
    rig.outbound.resume(bob, 10, 7, [(7, 2, 4, [message(7, s) for s in (3, 4)])])
    assert delivered(bob) == [3, 4] and bob.sent[-1] == SyncDone(7, 4, 0, request_id=10), "everything went out"
    carol = RecordingOutlet("carol", window_size=2)
    rig.outbound.resume(carol, 11, 7, [(7, 0, 3, [message(7, s) for s in (1, 2)])])
    assert delivered(carol) == [1, 2] and carol.sent[-1] == SyncDone(7, 3, 1, request_id=11), "one is still to come"


def test_resume_all_answers_with_the_number_of_conversations() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    plans = [(7, 0, 2, [message(7, 1), message(7, 2)]), (8, 1, 3, [message(8, 2)])]
    rig.outbound.resume(alice, 4, 0, plans)
    assert [(f.conversation_id, f.seq) for f in alice.sent if isinstance(f, Deliver)] == [(7, 1), (7, 2), (8, 2)]
    assert alice.sent[-1] == SyncDone(0, 2, 0, request_id=4)
    assert rig.core.fetches == [FetchRequest(1, 8, 2, 3, 1)], "the window's room went to the first plans: 8 catches up"


def test_resume_rewinds_a_stream_and_sends_again_from_after_seq() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice")
    rig.publish(alice, 7, [1, 2, 3, 4])
    rig.ack(alice, (7, 2))
    rig.outbound.resume(alice, 5, 7, [(7, 1, 4, [message(7, s) for s in (2, 3, 4)])])
    assert redeliveries(alice)[4:] == [(2, False), (3, False), (4, False)]
    assert alice.sent[-1] == SyncDone(7, 4, 0, request_id=5)
    assert alice.window is not None and alice.window.in_flight == 3, "rewound: 2..4 in flight again"


def test_resume_with_a_full_window_says_more() -> None:
    rig = Rig()
    alice = RecordingOutlet("alice", window_size=2)
    rig.publish(alice, 8, [1, 2])
    rig.outbound.resume(alice, 6, 7, [(7, 0, 3, [])])
    assert delivered(alice, 7) == [] and alice.sent[-1] == SyncDone(7, 3, 1, request_id=6)
    rig.ack(alice, (8, 2))
    [read] = rig.core.fetches
    assert read == FetchRequest(1, 7, 0, 2, 2)
