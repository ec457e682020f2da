"""The receiving side: duplicate filter, acknowledgement coalescing, and the bounded delivery queue.

Theory of operation (spec/PROTOCOL.md section 4.3, 4.4):

- Per conversation the client keeps two watermarks: `received`, the highest seq queued for the app, and
  `handled`, the highest seq the app finished with. A DELIVER at or below `received` is a duplicate (a
  server retry, a re-SYNC after reconnecting) and never reaches the app; if it is also at or below
  `handled`, the acknowledgement was evidently lost, so `handled` is acknowledged again.
- An acknowledgement is cumulative and is produced only when the app is done with a message: implicitly, when it asks
  for the next one; or, with explicit acknowledgement, when it acks it. Explicit acks may come in any order (the app
  hands messages to tasks), so each cursor then also keeps `handed` (the highest seq given to the app) and `unacked`
  (the seqs given out and not acked): `handled` advances to just below the lowest unacked seq, or to `handed` when
  none is left. Seqs the app never saw (its own messages, which the server does not send back) count as handled.
- After a reconnect with explicit acknowledgement, `rewind` lowers `received` to `handled`: the server resends
  everything after `handled`, and the messages given out but not acked reach the app again (flagged as
  redeliveries), while those it did ack are dropped.
  `AckCoalescer` keeps the highest handled seq per conversation until the next flush, which sends them all
  in one DELIVER_ACK (several frames only past `MAX_ACK_ENTRIES`).
- `Inbox` is the queue between the reader and the app. It is bounded by high/low water marks on messages
  and bytes: above the high mark the client stops reading from the socket (TCP pushes back on the server,
  which stops sending), below the low mark it reads again. One socket read can still overshoot the mark by
  what that read held; that overshoot is bounded by the transport's read size.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import OrderedDict, deque
from enum import Enum

from kefu.protocol.frames import AckEntry

from .messages import Message

MAX_TRACKED_CONVERSATIONS = 100_000
"""Watermarks kept for this many conversations (a few MB), least recently active forgotten first. A
forgotten conversation is resumed from the server's stored cursor (SYNC 0) instead of our own."""

MAX_ACK_ENTRIES = 4096
"""Entries per DELIVER_ACK frame: 64 KiB of entries, far below the frame limit and the u16 count."""

INBOX_HIGH_MESSAGES = 1000
"""Messages queued for the app before the client stops reading from the socket."""
INBOX_LOW_MESSAGES = 500
"""Messages queued at or below which reading resumes (hysteresis: no pause/resume flapping)."""
INBOX_HIGH_BYTES = 16 << 20
"""Message bytes queued before the client stops reading: 16 MiB, about 250 maximal 64 KiB messages."""
INBOX_LOW_BYTES = 8 << 20


class Verdict(Enum):
    """What to do with a DELIVER."""

    NEW = "new"
    """Next in line: queue it for the app."""
    QUEUED = "queued"
    """Already queued or in the app's hands: drop; its ack comes when the app is done with it."""
    HANDLED = "handled"
    """Already handled: drop, and acknowledge again (the earlier ack was lost)."""


class _Cursor:
    __slots__ = ("handed", "handled", "lowest", "received", "unacked")

    def __init__(self) -> None:
        self.received = 0
        self.handled = 0
        self.handed = 0
        self.unacked: set[int] | None = None
        self.lowest: list[int] = []
        """A min-heap over the seqs of `unacked`, and seqs acked since that are dropped when they reach the top."""


class Cursors:
    """Per-conversation watermarks: the duplicate filter and the resume points for SYNC."""

    def __init__(self, limit: int = MAX_TRACKED_CONVERSATIONS) -> None:
        self._limit = limit
        self._cursors: OrderedDict[int, _Cursor] = OrderedDict()

    def __len__(self) -> int:
        return len(self._cursors)

    def _get(self, conversation_id: int) -> _Cursor:
        cursor = self._cursors.get(conversation_id)
        if cursor is None:
            cursor = self._cursors[conversation_id] = _Cursor()
            if len(self._cursors) > self._limit:
                self._cursors.popitem(last=False)
        else:
            self._cursors.move_to_end(conversation_id)
        return cursor

    def admit(self, conversation_id: int, seq: int) -> Verdict:
        """Classify a DELIVER; a NEW one raises `received`."""
        cursor = self._get(conversation_id)
        if seq > cursor.received:
            cursor.received = seq
            if seq <= cursor.handed and not (cursor.unacked and seq in cursor.unacked):
                return Verdict.QUEUED  # resent after a rewind, but the app acked it already: not again
            return Verdict.NEW
        return Verdict.HANDLED if seq <= cursor.handled else Verdict.QUEUED

    def extends(self, conversation_id: int, seq: int) -> bool:
        """True when `seq` is a duplicate or the very next seq: taking it keeps the stream gapless."""
        cursor = self._cursors.get(conversation_id)
        return seq <= (cursor.received if cursor is not None else 0) + 1

    def mark_handled(self, conversation_id: int, seq: int) -> None:
        """The app is done with `seq`."""
        cursor = self._get(conversation_id)
        cursor.handled = max(cursor.handled, seq)

    def hand_out(self, conversation_id: int, seq: int) -> None:
        """Explicit acknowledgement: `seq` was given to the app and waits for its ack."""
        cursor = self._get(conversation_id)
        cursor.handed = max(cursor.handed, seq)
        if cursor.unacked is None:
            cursor.unacked = set()
        if seq not in cursor.unacked:
            cursor.unacked.add(seq)
            heapq.heappush(cursor.lowest, seq)

    def was_handed(self, conversation_id: int, seq: int) -> bool:
        """Whether `seq` was given to the app before (explicit acknowledgement)."""
        cursor = self._cursors.get(conversation_id)
        return cursor is not None and seq <= cursor.handed

    def acknowledge(self, conversation_id: int, seq: int) -> int:
        """Explicit acknowledgement of `seq`: the new `handled` when it advanced, else 0.

        Costs O(log unacked) amortized: the lowest seq still unacked is the top of a heap.
        """
        cursor = self._cursors.get(conversation_id)
        if cursor is None or not cursor.unacked or seq not in cursor.unacked:
            return 0  # acked before (or forgotten: the server delivers it again on a later connection)
        cursor.unacked.discard(seq)
        lowest = cursor.lowest
        while lowest and lowest[0] not in cursor.unacked:
            heapq.heappop(lowest)
        upto = lowest[0] - 1 if lowest else cursor.handed
        if upto <= cursor.handled:
            return 0
        cursor.handled = upto
        return upto

    def rewind(self) -> None:
        """Explicit acknowledgement, on a new connection: take again everything after `handled`."""
        for cursor in self._cursors.values():
            cursor.received = cursor.handled

    def handled(self, conversation_id: int) -> int:
        """The highest seq the app handled in this conversation (0 if none)."""
        cursor = self._cursors.get(conversation_id)
        return cursor.handled if cursor is not None else 0

    def forget(self, conversation_id: int) -> None:
        """Drop a conversation (the server says we are not, or no longer, a member)."""
        self._cursors.pop(conversation_id, None)

    def resume_points(self) -> list[tuple[int, int]]:
        """(conversation_id, handled) for every known conversation, most recently active first."""
        return [(conv, c.handled) for conv, c in reversed(self._cursors.items())]


class AckCoalescer:
    """Highest handled seq per conversation, waiting for the next flush."""

    def __init__(self) -> None:
        self._pending: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, conversation_id: int, seq: int) -> None:
        """Acknowledge everything of `conversation_id` up to `seq` at the next flush."""
        if seq > self._pending.get(conversation_id, 0):
            self._pending[conversation_id] = seq

    def take(self, limit: int = MAX_ACK_ENTRIES) -> tuple[AckEntry, ...]:
        """Up to `limit` entries, removed from the pending set (oldest conversations first)."""
        if len(self._pending) <= limit:
            taken, self._pending = self._pending, {}
        else:
            keys = list(self._pending)[:limit]
            taken = {key: self._pending.pop(key) for key in keys}
        return tuple(AckEntry(conv, seq) for conv, seq in taken.items())


class Inbox:
    """The bounded queue of messages waiting for the app (one consumer)."""

    def __init__(
        self,
        high_messages: int = INBOX_HIGH_MESSAGES,
        low_messages: int = INBOX_LOW_MESSAGES,
        high_bytes: int = INBOX_HIGH_BYTES,
        low_bytes: int = INBOX_LOW_BYTES,
    ) -> None:
        self._queue: deque[Message] = deque()
        self._bytes = 0
        self._high = (high_messages, high_bytes)
        self._low = (low_messages, low_bytes)
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._error: BaseException | None = None

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def above_high(self) -> bool:
        """The reader must pause."""
        return len(self._queue) >= self._high[0] or self._bytes >= self._high[1]

    @property
    def below_low(self) -> bool:
        """A paused reader may resume."""
        return len(self._queue) <= self._low[0] and self._bytes <= self._low[1]

    def put(self, message: Message) -> None:
        """Queue a message (never blocks: the reader pauses on `above_high` instead)."""
        self._queue.append(message)
        self._bytes += len(message.body)
        self._wake()

    async def get(self) -> Message | None:
        """The next message; None once closed. Raises the failure set by `fail` once the queue is empty.

        Cancelling a waiting get() loses nothing: a message is taken from the queue only on return.
        """
        while not self._queue:
            if self._closed:
                return None
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._closed:
            return None
        message = self._queue.popleft()
        self._bytes -= len(message.body)
        return message

    def close(self) -> None:
        """Discard what is queued (unacknowledged: the server delivers it again) and end get()."""
        self._closed = True
        self.discard()
        self._wake()

    def discard(self) -> None:
        """Drop what is queued (not yet given to the app, so not acknowledged: the server delivers it again)."""
        self._queue.clear()
        self._bytes = 0

    def fail(self, error: BaseException) -> None:
        """End get() with `error` once the queued messages are consumed."""
        self._error = error
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
