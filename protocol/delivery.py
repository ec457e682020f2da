"""Delivery bookkeeping on the sending side of DELIVERs (spec/PROTOCOL.md section 4.10).

Theory of operation: a server connection carries one `Stream` per conversation it delivers. A stream knows
the highest sequence number the device acknowledged (`acked`, cumulative) and the next one to send
(`next_seq`). `DeliveryWindow` bounds the DELIVERs in flight on the whole connection and decides, with `now`
passed in, which sequence numbers go out now and which are due for a retry.

Retries back off exponentially per stream, from `rto_initial` to `rto_max`. A retry resends everything in
flight on that stream from `acked + 1` (DELIVER_ACK is cumulative, so the first unacknowledged message is
the one that matters), in order. Nothing here does I/O or reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_WINDOW = 256
"""DELIVERs in flight per connection: enough to keep a fast device busy across a 50 ms round trip at
5,000 messages per second, small enough that a stalled device pins at most 256 messages of memory."""

DEFAULT_RTO_INITIAL = 1.0
DEFAULT_RTO_MAX = 30.0


class Stream:
    """One conversation's delivery state on one connection."""

    __slots__ = ("acked", "conversation_id", "deadline", "fetching", "last", "next_seq", "own", "rto")

    def __init__(self, conversation_id: int, acked: int, rto: float) -> None:
        self.conversation_id = conversation_id
        self.acked = acked
        self.next_seq = acked + 1
        self.last = acked
        """The conversation's last seq as far as the sender knows: what the stream should catch up to."""
        self.deadline: float | None = None
        self.rto = rto
        self.own: set[int] | None = None
        """Sequence numbers this device sent itself: never delivered back to it, counted as acknowledged."""
        self.fetching = 0
        """Nonzero while the sender waits for the messages from `next_seq` on (its own ticket for that read)."""

    @property
    def in_flight(self) -> int:
        """DELIVERs sent and not yet acknowledged."""
        return self.next_seq - 1 - self.acked


@dataclass(frozen=True, slots=True)
class Retry:
    """Resend seq `first`..`last` of `conversation_id` (inclusive)."""

    conversation_id: int
    first: int
    last: int


class DeliveryWindow:
    """The in-flight DELIVERs of one connection, across its streams."""

    __slots__ = ("_in_flight", "rto_initial", "rto_max", "streams", "window")

    def __init__(
        self, window: int = DEFAULT_WINDOW, rto_initial: float = DEFAULT_RTO_INITIAL, rto_max: float = DEFAULT_RTO_MAX
    ) -> None:
        self.window = window
        self.rto_initial = rto_initial
        self.rto_max = rto_max
        self.streams: dict[int, Stream] = {}
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """DELIVERs in flight on the connection."""
        return self._in_flight

    @property
    def room(self) -> int:
        """How many more DELIVERs may be sent now."""
        return self.window - self._in_flight

    def stream(self, conversation_id: int, acked: int) -> Stream:
        """The stream of `conversation_id`, created at `acked` if new."""
        stream = self.streams.get(conversation_id)
        if stream is None:
            stream = self.streams[conversation_id] = Stream(conversation_id, acked, self.rto_initial)
        return stream

    def rewind(self, conversation_id: int, after_seq: int) -> Stream:
        """Restart a stream after `after_seq` (SYNC resume): everything later is sent again."""
        stream = self.stream(conversation_id, after_seq)
        self._in_flight -= stream.in_flight
        stream.acked = after_seq
        stream.next_seq = after_seq + 1
        stream.deadline = None
        stream.rto = self.rto_initial
        stream.fetching = 0
        return stream

    def mark_own(self, stream: Stream, seq: int) -> None:
        """The device sent `seq` itself (its SEND_ACK carries the seq): never send it back to this device."""
        if seq >= stream.next_seq:
            if stream.own is None:
                stream.own = set()
            stream.own.add(seq)
            if seq == stream.next_seq == stream.acked + 1:
                stream.next_seq += 1
                stream.acked += 1
                stream.own.discard(seq)
                if not stream.own:
                    stream.own = None

    def take(self, stream: Stream, last_seq: int, *, now: float) -> range:
        """The sequence numbers to send now on `stream`, up to `last_seq`, within the window; marks them sent.

        Own sequence numbers are in the range (the caller skips them); those that follow the acknowledged
        prefix are counted as acknowledged at once."""
        count = min(last_seq - stream.next_seq + 1, self.room)
        if count <= 0:
            return range(0)
        seqs = range(stream.next_seq, stream.next_seq + count)
        stream.next_seq += count
        self._in_flight += count
        self._absorb_own(stream)
        if stream.deadline is None and stream.in_flight:
            stream.deadline = now + stream.rto
        return seqs

    def _absorb_own(self, stream: Stream) -> None:
        own = stream.own
        while own and stream.acked + 1 in own and stream.acked + 1 < stream.next_seq:
            own.discard(stream.acked + 1)
            stream.acked += 1
            self._in_flight -= 1
        if own is not None and not own:
            stream.own = None
        if not stream.in_flight:
            stream.deadline = None

    def ack(self, conversation_id: int, seq: int, *, now: float) -> Stream | None:
        """Apply a cumulative acknowledgement; returns the stream if it advanced, else None."""
        stream = self.streams.get(conversation_id)
        if stream is None or seq <= stream.acked:
            return None
        seq = min(seq, stream.next_seq - 1)
        if seq <= stream.acked:
            return None
        self._in_flight -= seq - stream.acked
        stream.acked = seq
        if stream.own:
            stream.own = {s for s in stream.own if s > seq} or None
            self._absorb_own(stream)
        stream.rto = self.rto_initial
        stream.deadline = now + stream.rto if stream.in_flight else None
        return stream

    def due(self, *, now: float) -> list[Retry]:
        """Streams whose oldest DELIVER went unacknowledged past its deadline; backs their timers off."""
        retries = []
        for stream in self.streams.values():
            if stream.deadline is not None and stream.deadline <= now and stream.in_flight:
                retries.append(Retry(stream.conversation_id, stream.acked + 1, stream.next_seq - 1))
                stream.rto = min(stream.rto * 2, self.rto_max)
                stream.deadline = now + stream.rto
        return retries

    def next_deadline(self) -> float | None:
        """The earliest retry deadline, or None when nothing is in flight."""
        earliest = None
        for s in self.streams.values():  # runs at every flush of a receiving connection: no list, no min()
            deadline = s.deadline
            if deadline is not None and s.in_flight and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest
