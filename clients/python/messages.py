"""What the application sees: received messages and send receipts (spec/PROTOCOL.md sections 4.2, 4.3)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kefu.protocol.frames import SERVICE_BASE, SYSTEM_SENDER, ContentType, Deliver, Flag, SendAck

MEMBERS_KEY = "kefu.to"
"""SEND metadata key naming the other members (comma-separated user ids) of the conversation it creates."""

CONVERSATION_ID_BITS = SERVICE_BASE.bit_length() - 1
"""New conversation ids are random 62-bit numbers: collisions are negligible, they stay positive in every
language's signed 64-bit integer, and they stay below 2^62, where the server's service conversations begin
(spec section 13.2)."""


def new_conversation_id() -> int:
    """A random, nonzero 62-bit conversation id for a conversation this client opens."""
    return int.from_bytes(os.urandom(8), "big") >> (64 - CONVERSATION_ID_BITS) or 1


def new_client_msg_id() -> bytes:
    """A random 16-byte client message id (the idempotency key of a SEND)."""
    return os.urandom(16)


_CONTENT_TYPES: dict[int, ContentType] = {int(member): member for member in ContentType}

Acknowledge = Callable[["Message"], None]
"""What `Message.ack` calls: the receiving client's acknowledgement of one message."""


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a conversation, as delivered by the server.

    With ``explicit_ack=True`` the client acknowledges a message only when ``await message.ack()`` is called (from any
    task, in any order); otherwise it acknowledges each message once the application asks for the next one (see
    `Client.deliveries`), and `ack()` merely does so earlier.
    """

    conversation_id: int
    seq: int
    """Position in the conversation: gapless, starting at 1."""
    sender: str
    """User id (app id) of the sender; may be this client's own user (sent from this or another device)."""
    body: bytes
    content_type: ContentType | int
    """TEXT, JSON, BINARY or EVENT; an int only for a type this client does not know (passed through untouched)."""
    client_msg_id: bytes
    """The sender's idempotency key: compare it with your own sends to recognise them."""
    server_msg_id: int
    timestamp_ms: int
    """Server time of storage, milliseconds since the Unix epoch."""
    metadata: Mapping[str, bytes] = field(default_factory=dict, hash=False)
    redelivery: bool = False
    """This message may have been seen before: the server flagged it (a retry, a SYNC fetch), or the client hands it
    to the application again after a reconnect because it was not acknowledged (explicit acknowledgement)."""
    acknowledge: Acknowledge | None = field(default=None, repr=False, compare=False, hash=False)
    """Set by the client on live deliveries; None on messages of `Client.sync` (history needs no acknowledgement)."""

    async def ack(self) -> None:
        """Acknowledge this message: the server will not deliver it to this user again.

        Acknowledgements are cumulative on the wire, so the client sends one only once every earlier message of the
        conversation it handed out is acknowledged too; acking out of order is safe. Idempotent. A no-op for
        messages of `Client.sync` and after the client closed. The acknowledgement is written with the client's next
        flush (within this event-loop iteration); it does not wait for the server.
        """
        if self.acknowledge is not None:
            self.acknowledge(self)

    @property
    def is_system_event(self) -> bool:
        """Whether this is one of the server's own events (spec section 13.2: opened, queued, assigned, transferred,
        closed, ...): content type EVENT *and* the system sender, `SYSTEM_SENDER` ("#kefu", which no app id can be).
        Check this, never the content type alone, before showing a message as the system's: the server refuses a
        client's EVENT (section 4.1), but a message stored before it did, or one from a server that does not, is
        still no system event unless its sender is the system's."""
        return self.content_type == ContentType.EVENT and self.sender == SYSTEM_SENDER

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", "replace")

    @classmethod
    def from_deliver(cls, frame: Deliver, acknowledge: Acknowledge | None = None, *, seen: bool = False) -> Message:
        """The message a DELIVER frame carries; `seen`: the client handed it out before (so it is a redelivery)."""
        return cls(
            frame.conversation_id,
            frame.seq,
            frame.sender,
            frame.body,
            _CONTENT_TYPES.get(frame.content_type, frame.content_type),
            frame.client_msg_id,
            frame.server_msg_id,
            frame.timestamp_ms,
            {entry.key: entry.value for entry in frame.metadata},
            seen or bool(frame.flags & Flag.REDELIVERY),
            acknowledge,
        )


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """The server's acknowledgement that a message is durable."""

    client_msg_id: bytes
    conversation_id: int
    seq: int
    server_msg_id: int
    timestamp_ms: int
    duplicate: bool
    """The server had already stored this client_msg_id: this is the original receipt, stored once."""

    @classmethod
    def from_ack(cls, ack: SendAck) -> SendReceipt:
        """The receipt a successful SEND_ACK carries."""
        return cls(
            ack.client_msg_id,
            ack.conversation_id,
            ack.seq,
            ack.server_msg_id,
            ack.timestamp_ms,
            bool(ack.flags & Flag.DUPLICATE),
        )
