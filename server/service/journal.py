"""The desk's writes: system messages with the records they change, through the group committer (section 13.2).

Every change the desk makes is one `SendRequest` from SYSTEM_SENDER: a message (an EVENT in the conversation or
its staff channel) together with the conversation's record, its members and any index it changes, so they become
durable in one transaction or not at all. A watcher joining is the one write without a message (`silent`).
Results come back as futures on the loop, after the message (if any) has been handed to its online members.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
from collections.abc import Iterable
from typing import Any

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import ContentType, ConversationState

from ..engine.messages import SendRequest, SendResult
from ..engine.ports import LogClosed, ServiceHost
from .model import SYSTEM_SENDER, ServiceConversation

__all__ = ["Journal", "event", "key"]

_U64 = struct.Struct("!Q")
Put = tuple[str, bytes, bytes | None]


def key(conversation_id: int) -> bytes:
    """The key of a conversation in the service databases."""
    return _U64.pack(conversation_id)


def event(kind: str, **fields: Any) -> bytes:
    """The body of a system EVENT message."""
    return json.dumps({"event": kind, **fields}, ensure_ascii=False, separators=(",", ":")).encode()


class Journal:
    """Writes of one desk."""

    def __init__(self, host: ServiceHost) -> None:
        self.host = host

    @staticmethod
    def record_puts(conv: ServiceConversation) -> tuple[Put, ...]:
        """The conversation's record and its open-index entry (deleted once closed)."""
        k = key(conv.id)
        return (("service", k, conv.encode()), ("service_open", k, b"" if conv.state is not ConversationState.CLOSED
                                                                         else None))  # fmt: skip

    def write(
        self, conv: ServiceConversation, body: bytes | None, *, members: tuple[str, ...] | None = None,
        create: tuple[str, ...] = (), extra: Iterable[Put] = (),
    ) -> asyncio.Future[SendResult]:  # fmt: skip
        """A system message (or, with body None, a silent write) in the conversation, with its record."""
        return self.submit(
            SendRequest(
                SYSTEM_SENDER, os.urandom(16), conv.id, ContentType.EVENT, body or b"", (), create_members=create,
                system=True, set_members=members, puts=(*self.record_puts(conv), *extra), silent=body is None,
            )
        )  # fmt: skip

    def write_staff(
        self, conv: ServiceConversation, body: bytes, *, content_type: int = ContentType.EVENT,
        metadata: tuple[tuple[str, bytes], ...] = (),
    ) -> asyncio.Future[SendResult]:  # fmt: skip
        """A system message in the staff channel, whose members become the owner and the watchers."""
        members = conv.staff_members()
        return self.submit(
            SendRequest(
                SYSTEM_SENDER, os.urandom(16), conv.staff, content_type, body, metadata,
                create_members=members or (SYSTEM_SENDER,), system=True, set_members=members,
            )
        )  # fmt: skip

    def submit(self, request: SendRequest) -> asyncio.Future[SendResult]:
        """Store through the core; the message is delivered once durable; the future gets the result."""
        future: asyncio.Future[SendResult] = self.host.loop.create_future()

        def done(result: SendResult) -> None:
            if not future.done():
                future.set_result(result)

        try:
            self.host.write(request, done)
        except LogClosed:  # the server is draining
            future.set_result(SendResult(int(ErrorCode.SHUTTING_DOWN), False, None, ()))
        return future
