"""Reads of the durable state: the store's LMDB tables merged with the overlay of logged, not yet indexed records.

Every read notes the overlay's `generation` before it opens an LMDB transaction and reads again if a trim happened
by the time it has read the overlay too (`consistent`): then whatever it did not find in the overlay was indexed
before its transaction began (kefu.server.storage.overlay explains why). Both hold only durable data, so no read
returns a message a crash could take back. Any thread may read.

A read the store cannot do (`store.StorageDamaged`: a damaged page, reported) propagates to the engine, which refuses
that request alone; a range read's exception carries what stands for the range (`messages`: what was read, then the
overlay's messages and a damage EVENT for each seq that could not be read), which a gateway's catch-up delivers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ..engine.messages import StoredMessage
from .index import TxnSource
from .overlay import Overlay
from .schema import U64_LIMIT, IdempotencyRecord
from .sequencer import Conversation
from .store import StorageDamaged, Store
from .values import placeholder

__all__ = ["SequencingSource", "View"]

T = TypeVar("T")


class View:
    """The store as the log's readers see it (`MessageLog`'s reads)."""

    def __init__(self, store: Store, overlay: Overlay) -> None:
        self.store, self.overlay = store, overlay

    def consistent(self, read: Callable[[], T]) -> T:
        """`read()` (LMDB, then the overlay), again until no trim of the overlay happened meanwhile."""
        while True:
            generation = self.overlay.generation
            result = read()
            if self.overlay.generation == generation:
                return result

    def read_range(self, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> list[StoredMessage]:
        """Messages with after_seq < seq <= until_seq (0: the latest), at most `limit`, in seq order."""
        if limit <= 0 or after_seq >= U64_LIMIT - 1:
            return []

        def read() -> list[StoredMessage]:
            try:
                indexed = self.store.read_range(conversation_id, after_seq, until_seq, limit)
            except StorageDamaged as exc:
                exc.messages = self._stand_ins(exc, conversation_id, until_seq, limit)
                raise
            held = self.overlay.messages(conversation_id, after_seq, until_seq)
            if not held:
                return indexed
            top = indexed[-1].seq if indexed else after_seq
            return (indexed + [m for m in held if m.seq > top])[:limit]

        return self.consistent(read)

    def _stand_ins(self, exc: StorageDamaged, conversation_id: int, until_seq: int, limit: int) -> list[StoredMessage]:
        """What stands for a range whose reading stopped at a damaged page: the messages read, then for each seq
        from the first not read up to `until_seq` (0: only what was read) the overlay's message or a damage EVENT."""
        out = list(exc.read)
        if not until_seq:
            return out
        held = {m.seq: m for m in self.overlay.messages(conversation_id, exc.failed_seq - 1, until_seq)}
        for seq in range(exc.failed_seq, min(until_seq, exc.failed_seq + limit - len(out) - 1) + 1):
            out.append(held.get(seq) or placeholder(conversation_id, seq))
        return out

    def last_seq(self, conversation_id: int) -> int:
        """The conversation's last durable seq; 0 if it has none or does not exist."""

        def read() -> int:
            held = self.overlay.conversation(conversation_id)
            return max(self.store.last_seq(conversation_id), held[0] if held else 0)

        return self.consistent(read)

    def members(self, conversation_id: int) -> tuple[str, ...] | None:
        """The conversation's members; None if it does not exist."""

        def read() -> tuple[str, ...] | None:
            stored = self.store.members(conversation_id)
            held = self.overlay.conversation(conversation_id)
            return held[1] if held is not None and held[1] is not None else stored

        return self.consistent(read)

    def cursor(self, user: str, conversation_id: int) -> int:
        """The highest seq `user` acknowledged in the conversation (durably); 0 if none."""
        return self.consistent(
            lambda: max(self.store.cursor(user, conversation_id), self.overlay.cursor(user, conversation_id))
        )

    def positions(self, user: str) -> list[tuple[int, int, int]]:
        """(conversation_id, cursor, last_seq) of every conversation `user` is a member of."""

        def read() -> list[tuple[int, int, int]]:
            changed = self.overlay.memberships(user)
            stored = self.store.positions(user, also=[c for c, member in changed.items() if member])
            out = []
            for conversation_id, cursor, last_seq in stored:
                if changed.get(conversation_id, True):
                    held = self.overlay.conversation(conversation_id)
                    out.append((
                        conversation_id,
                        max(cursor, self.overlay.cursor(user, conversation_id)),
                        max(last_seq, held[0] if held else 0),
                    ))  # fmt: skip
            return out

        return self.consistent(read)

    def get_record(self, table: str, key: bytes) -> bytes | None:
        """One record of a registered table, or None."""

        def read() -> bytes | None:
            stored = self.store.get_record(table, key)
            held, value = self.overlay.record(table, key)
            return value if held else stored

        return self.consistent(read)

    def scan(self, table: str, prefix: bytes = b"", *, limit: int = 1 << 62) -> list[tuple[bytes, bytes]]:
        """The (key, value) pairs of a registered table whose key starts with `prefix`, in key order."""

        def read() -> list[tuple[bytes, bytes]]:
            held = self.overlay.records(table, prefix)
            stored = self.store.scan(table, prefix, limit=limit + len(held))
            if not held:
                return stored[:limit]
            merged: dict[bytes, bytes | None] = dict(stored)
            merged.update(held)
            return sorted((k, v) for k, v in merged.items() if v is not None)[:limit]

        return self.consistent(read)

    def last_key(self, table: str) -> bytes | None:
        """The greatest key of a registered table, or None if it is empty."""

        def read() -> bytes | None:
            held = self.overlay.records(table, b"")
            deleted = frozenset(k for k, v in held if v is None)
            stored = self.store.last_key(table, skip=deleted)
            present = [k for k, v in held if v is not None]
            return max([k for k in (stored, *present) if k is not None], default=None)

        return self.consistent(read)


class SequencingSource:
    """The state the writer's sequencer starts a batch from: the overlay, then one LMDB transaction (opened by the
    caller after it noted the overlay's generation; see `View.consistent`)."""

    def __init__(self, overlay: Overlay, indexed: TxnSource) -> None:
        self.overlay, self.indexed = overlay, indexed

    def conversation(self, conversation_id: int) -> Conversation | None:
        held = self.overlay.conversation(conversation_id)
        stored = self.indexed.conversation(conversation_id) if held is None or held[1] is None else None
        if held is None:
            return stored
        last_seq, members, created_ms = held
        if members is None:
            if stored is None:  # the overlay changes members of every conversation it creates
                return None
            members, created_ms = stored.members, stored.created_ms
        return Conversation(last_seq, members, created_ms)

    def idempotency(self, key: bytes) -> IdempotencyRecord | None:
        held = self.overlay.idempotency(key)
        return held if held is not None else self.indexed.idempotency(key)

    def message(self, conversation_id: int, seq: int) -> StoredMessage | None:
        held = self.overlay.message(conversation_id, seq)
        return held if held is not None else self.indexed.message(conversation_id, seq)

    def next_server_msg_id(self) -> int:
        return self.indexed.next_server_msg_id()
