"""The sending side: messages waiting for their SEND_ACK (spec/PROTOCOL.md sections 4.1, 4.2).

Theory of operation: every send() is a `PendingSend` keyed by its client_msg_id, kept in submission order
until a SEND_ACK settles it. `unsent` lists the ones to put on the wire next: all of them after a
reconnect (same client_msg_id, so the server stores each once and answers a repeat with the original
receipt), or one whose RATE_LIMITED refusal has waited out its backoff. The outbox is bounded in count and
bytes; send() waits for room, which is how a fast producer is slowed to the server's pace.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator, Mapping, Sequence

from kefu.protocol.frames import MAX_BODY, ContentType, MetaEntry, Send

from .backoff import Backoff
from .messages import MEMBERS_KEY, SendReceipt, new_client_msg_id

MAX_PENDING_SENDS = 10_000
"""Messages submitted and not yet acknowledged: a few seconds of a busy agent desk at worst; past it
send() waits, so a producer cannot outrun a slow or unreachable server without bound."""

MAX_PENDING_BYTES = 64 << 20
"""Body bytes submitted and not yet acknowledged (64 MiB)."""

MAX_FLUSH_BYTES = 1 << 20
"""Bytes of SENDs put on the wire per loop iteration: one flush never builds an unbounded batch."""

RATE_LIMITED_BACKOFF = Backoff(initial=0.2, maximum=10.0, jitter=0.2)
"""Retry policy for a SEND refused with RATE_LIMITED (429)."""

SEND_OVERHEAD = 64
"""Bytes of a SEND frame besides its body and metadata: ids, type and length fields, with room to spare."""


def build_send(
    conversation_id: int,
    body: bytes | str,
    *,
    content_type: ContentType | int,
    metadata: Mapping[str, bytes] | None,
    to: Sequence[str],
    client_msg_id: bytes | None,
) -> Send:
    """The SEND frame of one send() call, checked locally (ValueError) before it can be refused remotely."""
    if not 0 < conversation_id < 1 << 64:
        raise ValueError(f"conversation id must be a nonzero u64, got {conversation_id}")
    raw = body.encode() if isinstance(body, str) else bytes(body)
    meta = dict(metadata or {})
    if to:
        meta[MEMBERS_KEY] = ",".join(to).encode()
    cmid = new_client_msg_id() if client_msg_id is None else bytes(client_msg_id)
    if len(cmid) != 16:
        raise ValueError("client_msg_id must be 16 bytes")
    size = len(raw) + sum(len(k.encode()) + len(v) + 3 for k, v in meta.items()) + SEND_OVERHEAD
    if size > MAX_BODY:
        raise ValueError(f"message of {size} bytes exceeds the frame limit of {MAX_BODY}")
    return Send(cmid, conversation_id, int(content_type), raw, tuple(MetaEntry(k, bytes(v)) for k, v in meta.items()))


class PendingSend:
    """One message waiting for its SEND_ACK."""

    __slots__ = ("delays", "frame", "future", "retry", "size")

    def __init__(self, frame: Send, future: asyncio.Future[SendReceipt]) -> None:
        self.frame = frame
        self.future = future
        self.size = len(frame.body) + sum(len(m.value) for m in frame.metadata)
        self.retry: asyncio.TimerHandle | None = None
        """Set while a RATE_LIMITED refusal waits out its backoff."""
        self.delays: Iterator[float] | None = None

    @property
    def client_msg_id(self) -> bytes:
        """The idempotency key."""
        return self.frame.client_msg_id

    def next_retry_delay(self) -> float:
        """The next backoff delay after a RATE_LIMITED refusal."""
        if self.delays is None:
            self.delays = RATE_LIMITED_BACKOFF.delays()
        return next(self.delays)


class Outbox:
    """Pending sends in submission order, bounded by count and bytes."""

    def __init__(self, max_count: int = MAX_PENDING_SENDS, max_bytes: int = MAX_PENDING_BYTES) -> None:
        self._max_count = max_count
        self._max_bytes = max_bytes
        self._entries: dict[bytes, PendingSend] = {}
        self._unsent: deque[bytes] = deque()
        self._bytes = 0
        self._room_waiters: deque[asyncio.Future[None]] = deque()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, client_msg_id: bytes) -> PendingSend | None:
        """The pending send with this id."""
        return self._entries.get(client_msg_id)

    def has_room(self, size: int) -> bool:
        """True when a send of `size` bytes fits now (an empty outbox takes any single message)."""
        if not self._entries:
            return True
        return len(self._entries) < self._max_count and self._bytes + size <= self._max_bytes

    async def wait_room(self, size: int) -> None:
        """Wait until a send of `size` bytes fits (every waiter is woken when room is made)."""
        while not self.has_room(size):
            waiter = asyncio.get_running_loop().create_future()
            self._room_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._room_waiters:
                    self._room_waiters.remove(waiter)

    def add(self, entry: PendingSend) -> None:
        """Track a new send and queue it for the wire."""
        self._entries[entry.client_msg_id] = entry
        self._bytes += entry.size
        self._unsent.append(entry.client_msg_id)

    def remove(self, client_msg_id: bytes) -> PendingSend | None:
        """Stop tracking a send (settled or abandoned) and make room."""
        entry = self._entries.pop(client_msg_id, None)
        if entry is None:
            return None
        self._bytes -= entry.size
        if entry.retry is not None:
            entry.retry.cancel()
            entry.retry = None
        self._wake_waiters()
        return entry

    def requeue(self, client_msg_id: bytes) -> None:
        """Put one send back in line (its rate-limit backoff is over)."""
        entry = self._entries.get(client_msg_id)
        if entry is not None:
            entry.retry = None
            self._unsent.append(client_msg_id)

    def requeue_all(self) -> None:
        """A new connection: every send not waiting out a backoff goes again, in submission order."""
        self._unsent = deque(cmid for cmid, entry in self._entries.items() if entry.retry is None)

    def take_unsent(self, max_bytes: int = MAX_FLUSH_BYTES) -> list[PendingSend]:
        """The next sends for the wire, at most `max_bytes` of them (at least one)."""
        taken: list[PendingSend] = []
        budget = max_bytes
        while self._unsent and (budget > 0 or not taken):
            entry = self._entries.get(self._unsent.popleft())
            if entry is None or entry.retry is not None:
                continue
            taken.append(entry)
            budget -= entry.size
        return taken

    @property
    def has_unsent(self) -> bool:
        """Something waits for the wire."""
        return bool(self._unsent)

    def drain(self) -> list[PendingSend]:
        """Remove and return every pending send (the client is closing or has failed)."""
        entries = list(self._entries.values())
        for entry in entries:
            self.remove(entry.client_msg_id)
        self._unsent.clear()
        self._wake_waiters()
        return entries

    def _wake_waiters(self) -> None:
        waiters, self._room_waiters = self._room_waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
