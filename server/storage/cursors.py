"""Cursor advances on their way into the log: each user's acknowledged position in a conversation is logged with the
next group commit, one entry per (user, conversation) however many acknowledgements moved it meanwhile.

Theory of operation
-------------------
Every DELIVER_ACK that advances a stream, and every own message a device's stream absorbs, advances the user's
stored cursor of the conversation (spec/PROTOCOL.md section 4.10, item 6). `advance` records the highest seq per
(user, conversation) in `_unsaved` and notes when the entry first became unsaved. `save_due` (`Conversations` calls
it on the next loop iteration, or `delay_s` later when `[delivery] cursor_save_delay_ms` is set) hands the committer
every entry unsaved for `delay_s` or more, oldest first; the committer logs them with its next group commit (one
``Cursors`` record, coalesced again per (user, conversation)). A handed-over entry waits in `_saving` until its
commit is durable (`committed`); a failed commit puts it back.

Once the cursors were written behind every 5 s, to spare LMDB one randomly placed page per cursor per commit; in
the log a cursor costs about 30 sequential bytes, so the default delay is 0 and a crash loses at most the advances
of the commit in flight: their messages are delivered again to a device that resumes from the stored cursor (one
that names its own position in its SYNC of the conversation gets nothing twice: a SYNC 0 never rewinds it,
`kefu.server.engine.streams`), which clients deduplicate by conversation and seq. Measured over kill -9 loops
(bench/bench_crashloop.py, 3 x 50 SIGKILLs under load): a receiver resuming from its stored cursors alone was sent
again a median of 0 and at most 4 messages it had acknowledged before a kill (with the 5 s delay of old: a median of
about 790).

Every read of a cursor goes through `read` and `pending`, which take the larger of the durable value (`View`) and
the entries here, so nothing the server does depends on whether a cursor is durable yet. A drain saves everything
first (`save_due(everything=True)`). Runs on the event loop only; the committer calls `committed` there too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from ..engine.messages import CursorUpdate, SendRequest, SendResult
from .view import View

__all__ = ["PendingCursors"]

Key = tuple[str, int]


class PendingCursors:
    """The cursor advances not yet durable, and the schedule that writes them."""

    def __init__(self, view: View, committer: Any, delay_s: float, clock: Callable[[], float]) -> None:
        self._view, self._committer = view, committer
        self.clock = clock
        """When an entry became unsaved (the loop's time; settable)."""
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
            self._since.append((self.clock(), key))
        elif seq > unsaved:
            self._unsaved[key] = seq

    def read(self, user: str, conversation_id: int) -> int:
        """The user's cursor: the store's, or a later advance not yet saved."""
        key = (user, conversation_id)
        stored = self._view.cursor(user, conversation_id)
        return max(stored, self._unsaved.get(key, 0), self._saving.get(key, 0))

    def pending(self, user: str) -> list[tuple[int, int, int]]:
        """(conversation_id, cursor, last_seq) of each conversation of `user` with unacknowledged messages, with
        the advances not yet durable applied."""
        out = []
        for conversation_id, stored, last_seq in self._view.positions(user):
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
        cutoff = self.clock() - self.delay_s
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
