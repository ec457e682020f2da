"""The delivery side of the engine, next to the connections: each connection's streams, window, retries and catch-up
(spec section 4.10). One `Outbound` per gateway.

Theory of operation:

- A durable message arrives from the core (`offer`) for every device here of its members. A device's stream of the
  conversation (created at the member's stored cursor) sends it at once if it is next in sequence and the window
  has room; otherwise the stream catches up later (`pump`) as acknowledgements free the window.
- Catching up reads messages: from a small cache of the messages offered here lately, else from the core
  (`CorePort.fetch`, answered by `fetched`). A stream waits for at most one read at a time (`Stream.fetching` holds
  its ticket); a SYNC that rewinds the stream makes an answer still on its way stale.
- DELIVER_ACK advances streams; each advance of the user's position goes to the core (`CorePort.cursor`).
- A device's own messages are never sent back to it: its SEND_ACK carries the seq (`own`), which its stream counts as
  acknowledged once everything before it is (a stream is created for it at the user's cursor if there is none yet).
- Nor is a user's message sent back to that user on a stream that starts (at the user's cursor, or where a SYNC puts
  it) behind messages stored before it began: a connection cannot tell the device that sent them from another of the
  user's, and the user's cursor would include them if a cumulative position could skip over a gap. Each such stream
  remembers the last seq stored before it began (`_before`); its own user's messages up to there count as
  acknowledged as the stream reaches them, like a device's own (the messages stored while it runs are offered as
  usual, to every device of the user but the sending one).
- Retries (`retry`) resend what is in flight on a stream, in order, from the cache or the core.
- SYNC: the core sends a plan with the first window of each resumed stream (`resume`); those DELIVERs go out before
  SYNC_DONE. A resume of every conversation (SYNC 0, from the user's stored cursors) leaves alone the streams the
  connection already has: they were positioned by the client's own SYNC of the conversation, or started at the cursor
  by a live message, and go on from there. Rewinding them to a stored cursor that a crash left behind sent everything
  since again (issue #14).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from kefu.protocol.delivery import DeliveryWindow, Stream
from kefu.protocol.frames import HEADER, DeliverAck, Flag, Frame, SyncDone

from .messages import Outgoing
from .ports import CorePort, ResumePlan

__all__ = ["PUMP_BATCH", "Outbound", "Outlet", "RecentMessages", "redelivered", "sender_of"]

PUMP_BATCH = 16
"""DELIVERs read per step of a catch-up, so the buffer bound is checked every few messages."""
RECENT_MESSAGES = 8192
"""Messages kept for catch-ups and retries (about 3 MiB of 300-byte messages): a window that was full a moment ago
catches up without asking the core."""
_FLAGS_LOW = HEADER.size - 5
"""Offset of the low byte of a frame header's flags (u16 at 6..7): REDELIVERY is bit 0."""
_SENDER_AT = HEADER.size + 50
"""Offset of a DELIVER's `sender` (utf8<u8>), after its 50 bytes of fixed fields (section 4.3)."""


def sender_of(frame: bytes) -> bytes:
    """The `sender` of an encoded DELIVER, as UTF-8."""
    return frame[_SENDER_AT + 1 : _SENDER_AT + 1 + frame[_SENDER_AT]]


def redelivered(frame: bytes) -> bytes:
    """An encoded DELIVER with the REDELIVERY flag set (a retry)."""
    return frame[:_FLAGS_LOW] + bytes((frame[_FLAGS_LOW] | Flag.REDELIVERY,)) + frame[_FLAGS_LOW + 1 :]


class Outlet(Protocol):
    """A connection, as its delivery side sees it (implemented by `kefu.server.edge.session.Session`)."""

    @property
    def user(self) -> str:
        """The app id."""

    @property
    def ready(self) -> bool:
        """Handshake done and not closed."""

    @property
    def window(self) -> DeliveryWindow | None:
        """The delivery window, None until the first delivery."""

    def delivery_window(self) -> DeliveryWindow:
        """The delivery window, created on first use."""

    def can_send_more(self) -> bool:
        """Room for more DELIVERs in the connection's buffers."""

    def send(self, frame: Frame) -> None:
        """Queue a frame."""

    def send_encoded(self, raw: bytes) -> None:
        """Queue an encoded frame (a DELIVER the core encoded)."""


class RecentMessages:
    """The messages offered here lately, by conversation, least recently used conversation evicted first."""

    def __init__(self, capacity: int = RECENT_MESSAGES) -> None:
        self._capacity = capacity
        self._size = 0
        self._by_conversation: OrderedDict[int, dict[int, Outgoing]] = OrderedDict()

    def add(self, message: Outgoing) -> None:
        """Remember a message."""
        messages = self._by_conversation.get(message.conversation_id)
        if messages is None:
            messages = self._by_conversation[message.conversation_id] = {}
        else:
            self._by_conversation.move_to_end(message.conversation_id)
        if message.seq not in messages:
            messages[message.seq] = message
            self._size += 1
        while self._size > self._capacity:
            _, evicted = self._by_conversation.popitem(last=False)
            self._size -= len(evicted)

    def run(
        self, conversation_id: int, first: int, last: int, own: Collection[int] | None = None
    ) -> tuple[int, list[Outgoing]]:
        """The messages first, first + 1, ... up to `last` that are here without a gap: (the last seq of that run,
        first - 1 if none; its messages). A seq in `own` (a connection's own message, never sent to it) needs no
        message: a gateway holds no DELIVER of a message only its own connection sent (the core publishes it to no
        one here), so without this a catch-up whose next seq was the connection's own asked the core for it, to skip
        it: with the two parties of a conversation on different gateways, a read per SEND or so."""
        messages = self._by_conversation.get(conversation_id) or {}
        out: list[Outgoing] = []
        for seq in range(first, last + 1):
            if own and seq in own:
                continue
            message = messages.get(seq)
            if message is None:
                return seq - 1, out
            out.append(message)
        return last, out


class _Read:
    """A read the core was asked for: who waits for it, and what for (`retry`: resend first..last with the
    REDELIVERY flag; else the stream's catch-up from first)."""

    __slots__ = ("first", "last", "outlet", "retry", "stream")

    def __init__(self, outlet: Outlet, stream: Stream, first: int, last: int, *, retry: bool = False) -> None:
        self.outlet, self.stream, self.first, self.last, self.retry = outlet, stream, first, last, retry


class Outbound:
    """The delivery side of one gateway: every connection's streams."""

    def __init__(
        self,
        core: CorePort,
        *,
        defer: Callable[[Outlet], None],
        observe: Callable[[float], None] | None = None,
        count_retries: Callable[[int], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`defer(outlet)`: the connection has more to send than its buffers take now, pump it when they drain;
        `observe(seconds)`: delivery latency of a live DELIVER; `clock`: the windows' deadlines."""
        self.core = core
        self._defer = defer
        self._observe = observe
        self._count_retries = count_retries
        self._clock = clock
        self.recent = RecentMessages()
        self._reads: dict[int, _Read] = {}
        self._next_ticket = 1
        self._before: dict[Outlet, dict[int, int]] = {}
        """Per connection, per conversation whose stream began behind: the last seq stored before it began (the
        user's own messages up to there are never sent). Dropped once the stream is past it."""

    # --- live messages -------------------------------------------------------------------------------------

    def offer(self, outlet: Outlet, message: Outgoing, cursor: int, t0: float) -> None:
        """A durable message of a conversation this connection's user belongs to; `cursor`: the user's stored cursor
        (where a new stream starts). Sent at once if next in line, else caught up later."""
        if not outlet.ready:
            return
        window = outlet.delivery_window()
        stream = window.streams.get(message.conversation_id)
        if stream is None:
            stream = window.stream(message.conversation_id, cursor)
            self._began(outlet, stream, message.seq - 1)
        stream.last = max(stream.last, message.seq)
        if not outlet.can_send_more():
            self._defer(outlet)
            return
        if stream.next_seq == message.seq and window.room > 0 and not stream.fetching and outlet not in self._before:
            own = stream.own is not None and message.seq in stream.own  # before take(), which may absorb it
            window.take(stream, message.seq, now=self._clock())
            if not own:
                outlet.send_encoded(message.frame)
                if self._observe is not None:
                    self._observe(time.monotonic() - t0)
        elif stream.next_seq <= message.seq:
            self.pump(outlet, stream)

    def own(self, outlet: Outlet, conversation_id: int, seq: int, cursor: int) -> None:
        """The connection sent message `seq` itself (its SEND_ACK carries it): never deliver it back; count it as
        acknowledged once everything before it is. `cursor`: the user's stored cursor before it."""
        window = outlet.delivery_window()
        stream = window.streams.get(conversation_id)
        if stream is None:  # where the next live message would start it; a catch-up skips `seq`
            stream = window.stream(conversation_id, cursor)
            self._began(outlet, stream, seq - 1)
        stream.last = max(stream.last, seq)
        before = stream.acked
        window.mark_own(stream, seq)
        if stream.acked > before:
            self.core.cursor(outlet.user, conversation_id, stream.acked)
        if stream.next_seq < seq:
            self.pump(outlet, stream)

    # --- catch-up --------------------------------------------------------------------------------------------

    def pump(self, outlet: Outlet, stream: Stream) -> None:
        """Send what the window and the buffers allow of `stream`, up to the conversation's last seq."""
        window = outlet.window
        if window is None:
            return
        while not stream.fetching and outlet.can_send_more():
            first = stream.next_seq
            last = min(stream.last, first + PUMP_BATCH - 1, first + window.room - 1)
            if last < first:
                return
            covered, cached = self.recent.run(stream.conversation_id, first, last, stream.own)
            if covered < first:
                self._read(outlet, stream, first, last)
                return
            self._send_run(outlet, window, stream, covered, cached)
        if stream.next_seq <= stream.last and not stream.fetching:
            self._defer(outlet)

    def pump_all(self, outlet: Outlet) -> None:
        """After a pause: catch every stream up."""
        if outlet.window is None:
            return
        for stream in list(outlet.window.streams.values()):
            self.pump(outlet, stream)

    def _send_run(
        self, outlet: Outlet, window: DeliveryWindow, stream: Stream, last: int, messages: Sequence[Outgoing]
    ) -> None:
        """Take next_seq..`last` from the window (as far as it allows) and send the messages among them."""
        acked = stream.acked
        if outlet in self._before:
            self._skip_users_own(outlet, window, stream, messages)
        own = set(stream.own) if stream.own else None  # before take(), which may absorb some of them
        seqs = window.take(stream, last, now=self._clock())
        for message in messages:
            if message.seq in seqs and (own is None or message.seq not in own):  # never echo a device's own
                outlet.send_encoded(message.frame)
        if stream.acked > acked:  # own messages absorbed: the user's position moved without a DELIVER_ACK
            self.core.cursor(outlet.user, stream.conversation_id, stream.acked)

    def _began(self, outlet: Outlet, stream: Stream, before: int) -> None:
        """`stream` (re)starts behind `before`, the last seq stored before it began: see `_skip_users_own`."""
        if stream.acked < before:
            self._before.setdefault(outlet, {})[stream.conversation_id] = before

    def _skip_users_own(
        self, outlet: Outlet, window: DeliveryWindow, stream: Stream, messages: Sequence[Outgoing]
    ) -> None:
        """Count as own (never sent, acknowledged with what precedes them) the messages of the connection's user
        among `messages` that were stored before its stream began."""
        befores = self._before[outlet]
        conversation_id = stream.conversation_id
        before = befores.get(conversation_id, 0)
        user = outlet.user.encode()
        for message in messages:
            if message.seq > before:
                break
            if message.seq >= stream.next_seq and sender_of(message.frame) == user:
                window.mark_own(stream, message.seq)
        if messages and messages[-1].seq >= before:
            befores.pop(conversation_id, None)
            if not befores:
                del self._before[outlet]

    def _read(self, outlet: Outlet, stream: Stream, first: int, last: int, *, retry: bool = False) -> None:
        """Ask the core for first..last of the stream's conversation (a catch-up holds the stream until the answer,
        which may come before this returns: in one process the core answers at once)."""
        ticket = self._next_ticket
        self._next_ticket = ticket + 1 if ticket < (1 << 62) else 1
        self._reads[ticket] = _Read(outlet, stream, first, last, retry=retry)
        if not retry:
            stream.fetching = ticket
        self.core.fetch(ticket, stream.conversation_id, first - 1, last, last - first + 1)

    def fetched(self, ticket: int, messages: Sequence[Outgoing]) -> None:
        """The core's answer to a read."""
        read = self._reads.pop(ticket, None)
        if read is None:
            return
        for message in messages:
            self.recent.add(message)
        outlet, stream = read.outlet, read.stream
        window = outlet.window
        if not outlet.ready or window is None:
            return
        if read.retry:
            self._resend(outlet, stream, read.first, read.last, messages)
            return
        if stream.fetching != ticket:
            return  # rewound by a SYNC meanwhile: a newer read or the SYNC's plan carries on
        stream.fetching = 0
        if window.streams.get(stream.conversation_id) is not stream:
            return
        if stream.next_seq == read.first:
            # Messages retention deleted are missing from the answer: the range is taken all the same (the client's
            # cumulative acknowledgement covers the gap), as the store has nothing else to send for it.
            self._send_run(outlet, window, stream, read.last, messages)
        self.pump(outlet, stream)

    # --- acknowledgements and retries --------------------------------------------------------------------------

    def acked(self, outlet: Outlet, ack: DeliverAck) -> None:
        """Advance streams, report the user's new positions, and continue the catch-ups the ack made room for."""
        window = outlet.window
        if window is None:
            return  # nothing was delivered to this connection: nothing to acknowledge
        now = self._clock()
        for entry in ack.acks:
            stream = window.ack(entry.conversation_id, entry.seq, now=now)
            if stream is not None:
                self.core.cursor(outlet.user, entry.conversation_id, stream.acked)
        for stream in list(window.streams.values()):
            if window.room <= 0:
                break
            self.pump(outlet, stream)

    def retry(self, outlet: Outlet, *, now: float, drained: bool) -> None:
        """Streams whose oldest DELIVER went unacknowledged too long: resend what is in flight, in order. Only a
        connection that has `drained` what it was sent gets retries: resending to one that has not even read the
        first copies is what made retransmissions snowball under overload. The timers back off either way."""
        window = outlet.window
        if window is None:
            return
        for retry in window.due(now=now):
            if not drained:
                continue
            stream = window.streams.get(retry.conversation_id)
            if stream is None:
                continue
            if self._count_retries is not None:
                self._count_retries(retry.last - retry.first + 1)
            covered, cached = self.recent.run(retry.conversation_id, retry.first, retry.last, stream.own)
            if covered == retry.last:
                self._resend(outlet, stream, retry.first, retry.last, cached)
            else:
                self._read(outlet, stream, retry.first, retry.last, retry=True)

    @staticmethod
    def _resend(outlet: Outlet, stream: Stream, first: int, last: int, messages: Sequence[Outgoing]) -> None:
        own = stream.own
        for message in messages:
            seq = message.seq
            if first <= seq <= last and stream.acked < seq < stream.next_seq and (own is None or seq not in own):
                outlet.send_encoded(redelivered(message.frame))

    # --- SYNC ------------------------------------------------------------------------------------------------

    def resume(self, outlet: Outlet, request_id: int, conversation_id: int, plans: Sequence[ResumePlan]) -> None:
        """Restart the streams a SYNC resumes, send the first window of each, then SYNC_DONE (section 4.5)."""
        if not outlet.ready:
            return
        window = outlet.delivery_window()
        stream: Stream | None = None
        for conv, after, last, first in plans:
            for message in first:
                self.recent.add(message)
            if conversation_id == 0 and conv in window.streams:
                continue  # resume-all: the stream this connection has goes on where the client put it (or it began)
            stream = window.rewind(conv, after)
            stream.last = max(stream.last, last)
            self._began(outlet, stream, last)
            if first and outlet.can_send_more():
                self._send_run(outlet, window, stream, first[-1].seq, first)
            self.pump(outlet, stream)
        if conversation_id == 0:
            outlet.send(SyncDone(0, len(plans), 0, request_id=request_id))
        else:
            last_seq = plans[0][2] if plans else 0
            more = int(stream is not None and stream.next_seq <= last_seq)
            outlet.send(SyncDone(conversation_id, last_seq, more, request_id=request_id))

    def forget(self, outlet: Outlet) -> None:
        """The connection is gone: drop its reads (their answers are ignored)."""
        for ticket in [t for t, read in self._reads.items() if read.outlet is outlet]:
            del self._reads[ticket]
        self._before.pop(outlet, None)

    @property
    def reads_waiting(self) -> int:
        """Reads asked of the core and not answered yet."""
        return len(self._reads)
