"""What is durable in the log and not yet indexed in the store: the overlay that reads merge with LMDB.

Theory of operation
-------------------
The group commit's writer thread adds each batch here once its fdatasync has returned (`add`), never before: so
nothing in the overlay can be taken back by a crash, and a read that merges it with LMDB sees only durable data.
The indexer takes batches from here in log order (`unindexed`), writes them into LMDB in one durable
transaction, and only then removes them (`trim`), in chunks, so that a read never waits long.

Every entry remembers the lsn of the record that last set it; a trimmed record removes only the entries it set
(a later record's value stays until that record is indexed). `generation` counts trims: a reader notes it before
opening its LMDB transaction and reads again if it changed by the time it has read the overlay (`View.consistent`).
A trim increments it once, before it removes anything and after the batch's LMDB commit. So a reader whose
transaction began after that commit finds every trimmed entry in LMDB, and one whose transaction began before it
noted the generation before the trim's increment and sees the change: the merge misses nothing. Counting a trim
once (not per chunk) matters: the group commit re-sequences a batch whose reads a trim overlapped, and a trim of
seconds of records in many chunks would have it retry for as long. All methods are thread-safe (one lock, held
for well under a millisecond).

The overlay holds the writer's own records, so it serves messages and records in clear (`Write.message`,
`Write.clear_puts`) from memory: what the log and LMDB hold sealed is never opened again while it is held here.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from ..engine.messages import StoredMessage
from .records import Cursors, Write
from .schema import IdempotencyRecord, LogPosition, id_key

__all__ = ["TRIM_CHUNK", "Logged", "Overlay"]

TRIM_CHUNK: Final = 256
"""Records removed per hold of the lock: a loop-thread read waits for at most one chunk (well under 1 ms)."""
PAUSE_S: Final = 50e-6


@dataclass(slots=True)
class Logged:
    """One group commit's records, durable in the log: (lsn, record) in order, the position after the last one,
    and the bytes of their payloads (what the overlay's bound counts)."""

    records: tuple[tuple[int, Write | Cursors], ...]
    end: LogPosition
    size: int
    messages: int


class _Conv:
    __slots__ = ("created_ms", "last_seq", "lsn", "members")

    def __init__(self, lsn: int, last_seq: int, members: tuple[str, ...] | None, created_ms: int) -> None:
        self.lsn, self.last_seq, self.members, self.created_ms = lsn, last_seq, members, created_ms


class Overlay:
    """The durable, not yet indexed state, by what reads look up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.generation = 0
        """Incremented by every trim (see the module docstring)."""
        self.size = 0
        """Payload bytes of the records held (the bound of `[storage] max_unindexed_mb` counts these)."""
        self._batches: deque[Logged] = deque()
        self._messages: dict[int, list[StoredMessage]] = {}
        self._convs: dict[int, _Conv] = {}
        self._member_of: dict[str, dict[int, tuple[int, bool]]] = {}
        self._cursors: dict[tuple[str, int], tuple[int, int]] = {}
        self._idempotency: dict[bytes, tuple[int, IdempotencyRecord]] = {}
        self._tables: dict[str, dict[bytes, tuple[int, bytes | None]]] = {}

    def __len__(self) -> int:
        """Group commits held."""
        return len(self._batches)

    # --- the writer ----------------------------------------------------------------------------------------------

    def add(self, batch: Logged) -> None:
        """A group commit is durable: make its records readable."""
        with self._lock:
            for lsn, record in batch.records:
                if type(record) is Write:
                    self._add_write(lsn, record)
                else:
                    assert type(record) is Cursors
                    for user, conv, seq in record.updates:
                        earlier = self._cursors.get((user, conv))
                        self._cursors[(user, conv)] = (lsn, max(seq, earlier[1] if earlier else 0))
            self._batches.append(batch)
            self.size += batch.size

    def _add_write(self, lsn: int, w: Write) -> None:
        conv = self._convs.get(w.conversation_id)
        if w.membership:
            self._convs[w.conversation_id] = _Conv(lsn, w.last_seq, w.members, w.created_ms)
            for user in set(w.previous) - set(w.members):
                self._member_of.setdefault(user, {})[w.conversation_id] = (lsn, False)
            for user in w.members:
                self._member_of.setdefault(user, {})[w.conversation_id] = (lsn, True)
        elif conv is None:
            self._convs[w.conversation_id] = _Conv(lsn, w.last_seq, None, 0)
        else:
            conv.lsn, conv.last_seq = lsn, w.last_seq
        m = w.message
        if m is not None:
            self._messages.setdefault(m.conversation_id, []).append(m)
            key = id_key(m.sender)
            assert key is not None
            record = IdempotencyRecord(m.conversation_id, m.seq, m.server_msg_id, m.timestamp_ms)
            self._idempotency[key + b"\0" + m.client_msg_id] = (lsn, record)
        for table, k, value in w.clear_puts:
            self._tables.setdefault(table, {})[k] = (lsn, value)

    # --- the indexer ---------------------------------------------------------------------------------------------

    def newest_end(self) -> LogPosition | None:
        """The log position after the newest batch held (None when none is)."""
        with self._lock:
            return self._batches[-1].end if self._batches else None

    def indexed_by(self, position: LogPosition) -> list[Logged]:
        """The oldest batches that end at or before `position` (what an indexer that got there made redundant)."""
        out: list[Logged] = []
        with self._lock:
            for batch in self._batches:
                if batch.end.lsn > position.lsn:
                    break
                out.append(batch)
        return out

    def unindexed(self, max_bytes: int) -> list[Logged]:
        """The oldest batches, in order, up to about `max_bytes` of payload (at least one, if any)."""
        out: list[Logged] = []
        size = 0
        with self._lock:
            for batch in self._batches:
                if out and size + batch.size > max_bytes:
                    break
                out.append(batch)
                size += batch.size
        return out

    def trim(self, batches: Sequence[Logged]) -> None:
        """`batches` (the oldest held, in order) are indexed: forget what they set, a chunk at a time."""
        records = [item for batch in batches for item in batch.records]
        with self._lock:
            self.generation += 1  # once, before anything goes: see the module docstring
        for start in range(0, len(records), TRIM_CHUNK):
            if start:
                time.sleep(PAUSE_S)  # as the indexer's writes do (kefu.server.storage.index.pause)
            with self._lock:
                for lsn, record in records[start : start + TRIM_CHUNK]:
                    if type(record) is Write:
                        self._trim_write(lsn, record)
                    else:
                        assert type(record) is Cursors
                        for user, conv, _ in record.updates:
                            if self._cursors.get((user, conv), (0, 0))[0] == lsn:
                                del self._cursors[(user, conv)]
        with self._lock:
            for batch in batches:
                assert self._batches[0] is batch
                self._batches.popleft()
                self.size -= batch.size

    def _trim_write(self, lsn: int, w: Write) -> None:
        conv = self._convs.get(w.conversation_id)
        if conv is not None and conv.lsn == lsn:
            del self._convs[w.conversation_id]
        for user in (*w.members, *w.previous) if w.membership else ():
            entries = self._member_of.get(user)
            if entries is not None and entries.get(w.conversation_id, (0, True))[0] == lsn:
                del entries[w.conversation_id]
                if not entries:
                    del self._member_of[user]
        m = w.message
        if m is not None:
            messages = self._messages[m.conversation_id]
            del messages[: bisect.bisect_right(messages, m.seq, key=lambda x: x.seq)]
            if not messages:
                del self._messages[m.conversation_id]
            key = id_key(m.sender)
            assert key is not None
            idem = key + b"\0" + m.client_msg_id
            if self._idempotency.get(idem, (0, None))[0] == lsn:
                del self._idempotency[idem]
        for table, k, _ in w.clear_puts:
            entries2 = self._tables[table]
            if entries2.get(k, (0, None))[0] == lsn:
                del entries2[k]

    # --- reads (any thread) --------------------------------------------------------------------------------------

    def messages(self, conversation_id: int, after_seq: int, until_seq: int) -> list[StoredMessage]:
        """The held messages with after_seq < seq <= until_seq (0: no upper bound), in seq order."""
        with self._lock:
            held = self._messages.get(conversation_id)
            if not held:
                return []
            lo = bisect.bisect_right(held, after_seq, key=lambda m: m.seq)
            hi = bisect.bisect_right(held, until_seq, key=lambda m: m.seq) if until_seq else len(held)
            return held[lo:hi]

    def message(self, conversation_id: int, seq: int) -> StoredMessage | None:
        """One held message."""
        with self._lock:
            held = self._messages.get(conversation_id) or []
            i = bisect.bisect_left(held, seq, key=lambda m: m.seq)
            return held[i] if i < len(held) and held[i].seq == seq else None

    def conversation(self, conversation_id: int) -> tuple[int, tuple[str, ...] | None, int] | None:
        """(last_seq, members or None if unchanged here, created_ms) of a conversation held, else None."""
        with self._lock:
            conv = self._convs.get(conversation_id)
            return None if conv is None else (conv.last_seq, conv.members, conv.created_ms)

    def memberships(self, user: str) -> dict[int, bool]:
        """The user's conversations joined (True) or left (False) in the held records."""
        with self._lock:
            return {conv: member for conv, (_, member) in self._member_of.get(user, {}).items()}

    def cursor(self, user: str, conversation_id: int) -> int:
        """The user's cursor in the held records; 0 if none."""
        entry = self._cursors.get((user, conversation_id))
        return entry[1] if entry else 0

    def idempotency(self, key: bytes) -> IdempotencyRecord | None:
        """A held idempotency entry."""
        entry = self._idempotency.get(key)
        return entry[1] if entry else None

    def record(self, table: str, key: bytes) -> tuple[bool, bytes | None]:
        """(held, value: None if deleted) of a registered table's key."""
        entry = self._tables.get(table, {}).get(key)
        return (False, None) if entry is None else (True, entry[1])

    def records(self, table: str, prefix: bytes) -> list[tuple[bytes, bytes | None]]:
        """The held (key, value or None if deleted) of a registered table under `prefix`, in key order."""
        with self._lock:
            held = self._tables.get(table)
            if not held:
                return []
            return sorted((k, v) for k, (_, v) in held.items() if k.startswith(prefix))
