"""The engine's `MessageLog`, over the store and its group committer.

Theory of operation: SENDs go to the group committer (`committer.GroupCommitter`), whose writer thread stores each
batch in one durable transaction; a result reaches the engine only once its batch is durable. Cursor advances are
written behind (`cursors.CursorWriteBehind`): reads see them at once, the store about `cursor_save_delay_s` later.
Every read comes from the store, which holds only what is durable.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ..engine.messages import SendRequest, StoredMessage
from ..engine.ports import Done, LogClosed
from .committer import GroupCommitter
from .cursors import CursorWriteBehind
from .store import Store

__all__ = ["Conversations"]


class Conversations:
    """Sequenced, durable conversations (the engine's `MessageLog`). Runs on the event loop."""

    def __init__(
        self, store: Store, committer: GroupCommitter, loop: asyncio.AbstractEventLoop, *, cursor_delay_s: float
    ):
        self.store = store
        self.committer = committer
        self._loop = loop
        self.cursors = CursorWriteBehind(store, committer, cursor_delay_s, loop.time)
        committer.on_committed = self.cursors.committed
        self._saver: asyncio.TimerHandle | None = None

    def start(self) -> None:
        """Start the writer thread."""
        self.committer.start()

    async def close(self) -> None:
        """Save every cursor, then finish every write submitted (no more are taken)."""
        if self._saver is not None:
            self._saver.cancel()
            self._saver = None
        self.cursors.save_due(everything=True)
        await self.committer.stop()

    # --- writes --------------------------------------------------------------------------------------------

    def submit(self, request: SendRequest, done: Done) -> None:
        """Sequence and store `request`; `done(result)` runs on the loop once its batch is durable."""
        try:
            self.committer.submit(request, done)
        except RuntimeError:  # stopped: the server is draining
            raise LogClosed from None

    def advance_cursor(self, user: str, conversation_id: int, seq: int) -> None:
        """`user` has everything up to `seq`: readable now, stored within the write-behind delay."""
        self.cursors.advance(user, conversation_id, seq)
        if self._saver is None and not self.committer.stopping:
            self._saver = self._loop.call_later(self.cursors.delay_s, self._save_due)

    def _save_due(self) -> None:
        self._saver = None
        if self.committer.stopping:
            return
        self.cursors.save_due()
        if self.cursors.unsaved:
            self._saver = self._loop.call_later(self.cursors.delay_s, self._save_due)

    def reconfigure(self, config: Any) -> None:
        """SIGHUP: a new write-behind delay."""
        self.cursors.delay_s = config.delivery.cursor_save_delay_ms / 1000

    # --- reads ---------------------------------------------------------------------------------------------

    def cursor(self, user: str, conversation_id: int) -> int:
        """The user's cursor: the store's, or a later advance not yet saved."""
        return self.cursors.read(user, conversation_id)

    def pending(self, user: str) -> list[tuple[int, int, int]]:
        """(conversation_id, cursor, last_seq) of each conversation of `user` with unacknowledged messages."""
        return self.cursors.pending(user)

    def read_range(self, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> list[StoredMessage]:
        """Messages with after_seq < seq <= until_seq (0: the latest), at most `limit`, in seq order."""
        return self.store.read_range(conversation_id, after_seq, until_seq, limit)

    def last_seq(self, conversation_id: int) -> int:
        """The conversation's last seq."""
        return self.store.last_seq(conversation_id)

    def members(self, conversation_id: int) -> tuple[str, ...] | None:
        """The conversation's members; None if it does not exist."""
        return self.store.members(conversation_id)

    def get_record(self, table: str, key: bytes) -> bytes | None:
        """One record of a registered table."""
        return self.store.get_record(table, key)

    def scan(self, table: str, prefix: bytes = b"", *, limit: int = 1 << 62) -> list[tuple[bytes, bytes]]:
        """Records of a registered table by key prefix, in key order."""
        return self.store.scan(table, prefix, limit=limit)

    def last_key(self, table: str) -> bytes | None:
        """The greatest key of a registered table, or None if it is empty."""
        return self.store.last_key(table)

    @property
    def queue_depth(self) -> int:
        """Writes submitted and not yet durable."""
        return self.committer.queue_depth
