"""Stored cursors, written behind: each user's acknowledged position in a conversation reaches the store in the
background, about once per `[delivery] cursor_save_delay_ms` per (user, conversation), instead of once per message.

Theory of operation
-------------------
Every DELIVER_ACK that advances a stream, and every own message a device's stream absorbs, advances the user's
stored cursor of the conversation (spec/PROTOCOL.md section 4.10, item 6). Writing each advance into the next group
commit cost about two cursor updates per message, each on its own randomly placed LMDB page, and a commit's
fdatasync time grows with the pages it writes (bench/RESULTS.md, "third attempt").

So `advance` only records the highest seq per (user, conversation), in `_unsaved`, and notes when the entry first
became unsaved. `save_due` (`Conversations` calls it once per delay) hands the committer every entry unsaved for
`delay_s` or more, oldest first; more advances of the same entry meanwhile are folded into that one write, so an
active conversation's cursors are written about once per delay. A handed-over entry waits in `_saving` until its
commit is durable (`committed`); a failed commit puts it back.

Every read of a cursor goes through `read` and `pending`, which take the larger of the store's value and the entries
here, so nothing the server does depends on whether a cursor has reached the disk yet. What a crash can cost is the
advances of the last `delay_s` (plus the commit in flight): their messages are delivered again on the next resume,
which clients already handle (they deduplicate by conversation and seq). A drain saves everything first
(`save_due(everything=True)`).

Runs on the event loop only; the committer calls `committed` there too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..engine.messages import CursorUpdate, SendRequest, SendResult
from .store import Store

__all__ = ["CursorWriteBehind"]

Key = tuple[str, int]


class CursorWriteBehind:
    """The cursor advances not yet durable, and the schedule that writes them."""

    def __init__(self, store: Store, committer: Any, delay_s: float, clock: Callable[[], float]) -> None:
        self._store, self._committer, self._clock = store, committer, clock
        self.delay_s = delay_s
        self._unsaved: dict[Key, int] = {}
        self._since: deque[tuple[float, Key]] = deque()
        """When each `_unsaved` entry was created, oldest first (one item per entry)."""
        self._saving: dict[Key, int] = {}
        """Handed to the committer and not yet durable."""

    def __len__(self) -> int:
        """Cursor advances not yet durable."""
        return len(self._unsaved) + len(self._saving)

    @property
    def unsaved(self) -> int:
        """Advances not yet handed to the committer."""
        return len(self._unsaved)

    def advance(self, user: str, conversation_id: int, seq: int) -> None:
        """The user has every seq <= `seq` of the conversation: store that, `delay_s` from the first unsaved one."""
        key = (user, conversation_id)
        unsaved = self._unsaved.get(key)
        if unsaved is None:
            self._unsaved[key] = seq
            self._since.append((self._clock(), key))
        elif seq > unsaved:
            self._unsaved[key] = seq

    def read(self, user: str, conversation_id: int) -> int:
        """The user's cursor: the store's, or a later advance not yet saved."""
        key = (user, conversation_id)
        stored = self._store.cursor(user, conversation_id)
        return max(stored, self._unsaved.get(key, 0), self._saving.get(key, 0))

    def pending(self, user: str) -> list[tuple[int, int, int]]:
        """`Store.pending` (conversation_id, cursor, last_seq) with the advances not yet saved applied."""
        out = []
        for conversation_id, stored, last_seq in self._store.pending(user):
            key = (user, conversation_id)
            cursor = max(stored, self._unsaved.get(key, 0), self._saving.get(key, 0))
            if cursor < last_seq:
                out.append((conversation_id, cursor, last_seq))
        return out

    def save_due(self, *, everything: bool = False) -> None:
        """Hand the committer every entry unsaved for `delay_s` (all of them with `everything`)."""
        since = self._since
        if not since:
            return
        cutoff = self._clock() - self.delay_s
        while since and (everything or since[0][0] <= cutoff):
            key = since.popleft()[1]
            seq = self._unsaved.pop(key)
            if seq > self._saving.get(key, -1):
                self._saving[key] = seq
            self._committer.submit_cursor(CursorUpdate(key[0], key[1], seq))

    def committed(self, done: Sequence[tuple[SendRequest | CursorUpdate, SendResult | None]]) -> None:
        """The committer's report of a batch: forget the saved entries, take the failed ones back."""
        for item, result in done:
            if type(item) is not CursorUpdate:
                continue
            key = (item.user, item.conversation_id)
            if self._saving.get(key) == item.seq:
                del self._saving[key]
            if result is not None:  # the commit failed: save it again later
                self.advance(item.user, item.conversation_id, item.seq)
