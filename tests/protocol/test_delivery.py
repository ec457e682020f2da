"""Delivery bookkeeping: windows, cumulative acks, retries with backoff, rewinds."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from kefu.protocol.delivery import DeliveryWindow, Retry


def test_window_bounds_what_is_taken() -> None:
    window = DeliveryWindow(window=3)
    stream = window.stream(7, acked=0)
    assert list(window.take(stream, 10, now=0.0)) == [1, 2, 3]
    assert window.room == 0 and list(window.take(stream, 10, now=0.0)) == []
    assert window.ack(7, 2, now=0.5) is stream
    assert list(window.take(stream, 10, now=0.5)) == [4, 5]


def test_acks_are_cumulative_and_clamped() -> None:
    window = DeliveryWindow(window=10)
    stream = window.stream(1, acked=4)
    window.take(stream, 8, now=0.0)
    assert window.ack(1, 3, now=0.0) is None
    assert window.ack(1, 100, now=0.0) is stream
    assert stream.acked == 8 and window.in_flight == 0
    assert window.ack(2, 1, now=0.0) is None


def test_retry_backoff_and_reset() -> None:
    window = DeliveryWindow(window=10, rto_initial=1.0, rto_max=4.0)
    stream = window.stream(1, acked=0)
    window.take(stream, 3, now=0.0)
    assert window.due(now=0.9) == []
    assert window.due(now=1.0) == [Retry(1, 1, 3)]
    assert window.next_deadline() == 3.0
    assert window.due(now=3.0) == [Retry(1, 1, 3)]
    assert window.due(now=7.0) == [Retry(1, 1, 3)]
    assert window.next_deadline() == 11.0, "capped at rto_max"
    window.ack(1, 2, now=7.5)
    assert window.due(now=8.5) == [Retry(1, 3, 3)]
    window.ack(1, 3, now=9.0)
    assert window.next_deadline() is None


def test_rewind_resends_from_the_sync_point() -> None:
    window = DeliveryWindow(window=10)
    stream = window.stream(1, acked=0)
    window.take(stream, 5, now=0.0)
    window.rewind(1, 2)
    assert window.in_flight == 0
    assert list(window.take(stream, 5, now=1.0)) == [3, 4, 5]


@given(st.lists(st.tuples(st.sampled_from(["take", "ack", "due", "rewind"]), st.integers(0, 40)), max_size=60))
def test_in_flight_accounting_never_drifts(ops: list[tuple[str, int]]) -> None:
    window = DeliveryWindow(window=8)
    now = 0.0
    for op, n in ops:
        now += 0.5
        stream = window.stream(n % 3, acked=0)
        if op == "take":
            window.take(stream, n, now=now)
        elif op == "ack":
            window.ack(n % 3, n, now=now)
        elif op == "due":
            window.due(now=now)
        else:
            window.rewind(n % 3, min(n, stream.next_seq - 1))
        assert window.in_flight == sum(s.in_flight for s in window.streams.values())
        assert 0 <= window.in_flight <= window.window


def test_own_messages_are_skipped_and_count_as_acknowledged() -> None:
    window = DeliveryWindow(window=10)
    stream = window.stream(1, acked=0)
    window.mark_own(stream, 1)  # caught up: absorbed at once
    assert (stream.acked, stream.next_seq, window.in_flight) == (1, 2, 0)
    assert list(window.take(stream, 3, now=0.0)) == [2, 3]  # another member's messages in flight
    window.mark_own(stream, 4)  # sent while 2 and 3 are unacknowledged
    assert list(window.take(stream, 5, now=0.0)) == [4, 5]
    assert stream.own == {4}
    window.ack(1, 3, now=1.0)  # the ack of 3 reaches the own message: it is acknowledged too
    assert stream.acked == 4 and window.in_flight == 1 and stream.own is None
    window.ack(1, 5, now=1.0)
    assert window.in_flight == 0 and window.next_deadline() is None


def test_a_trailing_own_message_never_waits_for_an_ack() -> None:
    window = DeliveryWindow(window=10)
    stream = window.stream(1, acked=0)
    window.take(stream, 1, now=0.0)
    window.mark_own(stream, 2)
    window.take(stream, 2, now=0.0)
    window.ack(1, 1, now=0.5)
    assert stream.acked == 2 and window.in_flight == 0 and window.next_deadline() is None
