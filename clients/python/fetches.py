"""SYNC requests in flight (spec/PROTOCOL.md section 4.5): what a request id on a connection stands for.

A `Fetch` is a sync() call: a history range (until_seq > 0), answered by REDELIVERY DELIVERs and then
SYNC_DONE, or a live resume (until_seq == 0), answered by SYNC_DONE alone. It outlives connections: after
a reconnect it is issued again. A `Resume` is one of the SYNCs a (re)connect sends on its own.

Which DELIVERs answer a history fetch: those carrying the SYNC's request id. A server that leaves DELIVER
request ids at 0 is also understood: a REDELIVERY DELIVER of the fetch's conversation and range, on the
connection the fetch went out on, is taken as its answer (`Fetch.covers`).
"""

from __future__ import annotations

import asyncio

from kefu.protocol.frames import Deliver

from .connection import Link
from .messages import Message


class Fetch:
    """A sync() call in progress."""

    __slots__ = ("after", "conversation_id", "future", "limit", "link", "messages", "until")

    def __init__(self, conversation_id: int, after: int, until: int, limit: int, future: asyncio.Future[None]) -> None:
        self.conversation_id = conversation_id
        self.after = after
        self.until = until
        self.limit = limit
        self.future = future
        """Resolved by SYNC_DONE."""
        self.link: Link | None = None
        """The connection the SYNC went out on (None while waiting for one)."""
        self.messages: dict[int, Message] = {}

    @property
    def history(self) -> bool:
        """A range fetch (as opposed to a live resume)."""
        return self.until > 0

    def covers(self, link: Link, frame: Deliver) -> bool:
        """Whether an unlabelled REDELIVERY DELIVER may answer this fetch."""
        return (
            self.link is link
            and self.history
            and frame.conversation_id == self.conversation_id
            and self.after < frame.seq <= self.until
        )

    def add(self, frame: Deliver) -> None:
        """Collect one DELIVER of the range (at most `limit` of them)."""
        if len(self.messages) < self.limit or frame.seq in self.messages:
            self.messages[frame.seq] = Message.from_deliver(frame)

    def result(self) -> list[Message]:
        """The collected messages in seq order."""
        return [self.messages[seq] for seq in sorted(self.messages)]


class Resume:
    """A SYNC(conversation, handled, 0, 0) that a (re)connect sent on its own."""

    __slots__ = ("conversation_id",)

    def __init__(self, conversation_id: int) -> None:
        self.conversation_id = conversation_id
