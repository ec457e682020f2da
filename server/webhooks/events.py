"""What a webhook delivers: the events a stored message stands for, their JSON, and the signature (spec section 18).

Every event a bank can subscribe to is already a message of the durable log (spec section 13.2): the desk writes
each change of a service conversation as a system EVENT message in the conversation (opened, assigned, transferred,
closed) or in its staff channel (a draft decided; a transfer to a group, which the conversation itself only sees as
``queued``), in the same transaction as the record it changes. So one stored message is at most one webhook event,
and the event's id is the message's server_msg_id: unique in the store, the same at every redelivery, which is what
a receiver deduplicates by. Conversations outside the service range (spec section 4) have no tenant and produce no
events.

Pure functions: no I/O, no clock (a timestamp is an argument).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from kefu.protocol.crypto import hmac_digest
from kefu.protocol.frames import SERVICE_BASE, STAFF_BIT, SYSTEM_SENDER, ContentType

from ..engine.messages import StoredMessage

__all__ = [
    "ALGORITHMS",
    "ALGORITHM_HEADER",
    "EVENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "SUBSCRIPTION_HEADER",
    "TIMESTAMP_HEADER",
    "EventType",
    "WebhookEvent",
    "base_conversation",
    "classify",
    "event_from",
    "event_of",
    "headers",
    "sign",
    "signed_payload",
]


class EventType(StrEnum):
    """The event types a subscription names (its ``events``)."""

    MESSAGE_COMMITTED = "message.committed"
    CONVERSATION_OPENED = "conversation.opened"
    CONVERSATION_ASSIGNED = "conversation.assigned"
    CONVERSATION_TRANSFERRED = "conversation.transferred"
    CONVERSATION_ENDED = "conversation.ended"
    DRAFT_DECIDED = "draft.decided"


_CONVERSATION_EVENTS: Final = {
    "opened": EventType.CONVERSATION_OPENED,
    "assigned": EventType.CONVERSATION_ASSIGNED,
    "transferred": EventType.CONVERSATION_TRANSFERRED,
    "closed": EventType.CONVERSATION_ENDED,
}
"""The desk's EVENT kinds in a service conversation (spec 13.2) that are webhook events."""
_DRAFT_EVENTS: Final = {"draft_approve": "approve", "draft_edit": "edit", "draft_reject": "reject"}
"""The desk's EVENT kinds in a staff channel that say how a draft was decided."""

ALGORITHMS: Final = {"hmac-sm3": "sm3", "hmac-sha256": "sha256"}
"""Signature algorithms (the names in the signature header) and their hashes."""
EVENT_ID_HEADER: Final = "Kefu-Webhook-Id"
SUBSCRIPTION_HEADER: Final = "Kefu-Webhook-Subscription"
TIMESTAMP_HEADER: Final = "Kefu-Webhook-Timestamp"
SIGNATURE_HEADER: Final = "Kefu-Webhook-Signature"
ALGORITHM_HEADER: Final = "Kefu-Webhook-Signature-Algorithms"


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    """One event, ready to send: its id (the message's server_msg_id), type, and JSON body."""

    id: int
    type: EventType
    body: bytes


def base_conversation(conversation_id: int) -> int:
    """The service conversation a log conversation belongs to (a staff channel's is its conversation)."""
    return conversation_id & ~STAFF_BIT


def classify(message: StoredMessage) -> tuple[EventType, dict[str, Any]] | None:
    """The event a stored message stands for, with its ``data``; None if it is none."""
    conversation_id = message.conversation_id
    if conversation_id < SERVICE_BASE:
        return None
    staff = bool(conversation_id & STAFF_BIT)
    if message.content_type != ContentType.EVENT:
        # drafts and whispers in a staff channel are for the staff only
        return None if staff else (EventType.MESSAGE_COMMITTED, _message_data(message))
    if message.sender != SYSTEM_SENDER:
        return None
    try:
        fields = json.loads(message.body)
    except ValueError:
        return None
    return _system_event(fields, staff=staff) if isinstance(fields, dict) else None


def _system_event(fields: dict[str, Any], *, staff: bool) -> tuple[EventType, dict[str, Any]] | None:
    """The event of a desk's EVENT message (its JSON), in a conversation or (`staff`) its staff channel."""
    kind = fields.pop("event", None)
    if not isinstance(kind, str):
        return None
    if not staff:
        event_type = _CONVERSATION_EVENTS.get(kind)
        return None if event_type is None else (event_type, fields)
    if kind in _DRAFT_EVENTS:
        return EventType.DRAFT_DECIDED, {"decision": _DRAFT_EVENTS[kind], **fields}
    if kind == "transferred" and "agent" not in fields:  # a transfer to a group: the conversation says "queued"
        return EventType.CONVERSATION_TRANSFERRED, fields
    return None


def _message_data(message: StoredMessage) -> dict[str, Any]:
    data: dict[str, Any] = {"sender": message.sender, "content_type": message.content_type}
    if message.content_type == ContentType.TEXT:
        data["text"] = message.body.decode("utf-8", "replace")
    else:
        data["body_base64"] = base64.b64encode(message.body).decode()
    if message.metadata:
        data["metadata"] = {key: value.decode("utf-8", "replace") for key, value in message.metadata}
    return data


def event_of(message: StoredMessage, tenant: str) -> WebhookEvent | None:
    """The webhook event of a stored message of `tenant`'s, or None."""
    found = classify(message)
    return None if found is None else event_from(message, tenant, *found)


def event_from(message: StoredMessage, tenant: str, event_type: EventType, data: dict[str, Any]) -> WebhookEvent:
    """The webhook event of a stored message that `classify` found to be `event_type` with `data` (its JSON made)."""
    body = {
        "id": str(message.server_msg_id),
        "type": event_type.value,
        "tenant": tenant,
        "conversation_id": base_conversation(message.conversation_id),
        "staff_channel": bool(message.conversation_id & STAFF_BIT),
        "seq": message.seq,
        "timestamp_ms": message.timestamp_ms,
        "data": data,
    }
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    return WebhookEvent(message.server_msg_id, event_type, raw)


def signed_payload(timestamp: int, body: bytes) -> bytes:
    """What is signed: the timestamp's decimal digits, a dot, and the body exactly as sent."""
    return str(timestamp).encode() + b"." + body


def sign(algorithm: str, secret: bytes, timestamp: int, body: bytes) -> str:
    """The lowercase hex HMAC of `signed_payload` with `algorithm` (a key of ALGORITHMS)."""
    return hmac_digest(ALGORITHMS[algorithm], secret, signed_payload(timestamp, body)).hex()


def headers(
    event: WebhookEvent, *, subscription: str, secret: bytes, algorithms: tuple[str, ...], timestamp: int
) -> dict[str, str]:
    """The headers of one delivery attempt: ``Kefu-Webhook-Signature: hmac-sm3=<hex>, hmac-sha256=<hex>`` (one entry
    per algorithm of the subscription, each naming its algorithm), the timestamp it covers, the event's id."""
    signatures = ", ".join(f"{name}={sign(name, secret, timestamp, event.body)}" for name in algorithms)
    return {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: str(event.id),
        SUBSCRIPTION_HEADER: subscription,
        TIMESTAMP_HEADER: str(timestamp),
        ALGORITHM_HEADER: ",".join(algorithms),
        SIGNATURE_HEADER: signatures,
    }
