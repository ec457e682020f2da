"""Service conversations: their record, their lifecycle table, and their ids (spec/PROTOCOL.md section 13.2).

A service conversation rides on a delivery-layer conversation (section 4): its messages, sequence numbers and
acknowledgements are the delivery layer's; this record adds who it belongs to and where it is in its life::

    waiting ──assign──▶ assigned ──transfer_agent──▶ transferred ──transfer_agent──▶ transferred
       ▲  │                 │                            │
       │  └─overflow─┐      └──transfer_group──▶ waiting ◀┘ (no agent free in the new group)
       └─────────────┘
    any state but closed ──close──▶ closed

The table below is the only place these rules live; an illegal (state, event) raises IllegalTransition naming
both. The record is stored as JSON in the ``service`` db (section 12.1), written in the same transaction as the
system message that announces each change.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from kefu.protocol.frames import SERVICE_BASE, STAFF_BIT, SYSTEM_SENDER, ConversationState, staff_channel

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_ATTRIBUTE_BYTES",
    "MAX_TAGS",
    "MAX_TRACE",
    "SERVICE_BASE",
    "STAFF_BIT",
    "SYSTEM_SENDER",
    "IllegalTransition",
    "Refusal",
    "ServiceConversation",
    "is_service",
    "staff_channel",
]

MAX_TRACE = 64
"""Routing-trace entries kept per conversation (oldest dropped first): enough for every decision of a long
conversation with several transfers, small enough to send in one RESULT."""
MAX_ATTRIBUTES = 32
"""Visitor attributes per OPEN_CONVERSATION: what a routing rule and the agent need, not a data store."""
MAX_ATTRIBUTE_BYTES = 256
"""Bytes per attribute value (a channel, a VIP level, a language, a customer segment): kept with the record."""
MAX_TAGS = 32
"""Tags kept per conversation (classify results beyond this are dropped)."""

S = ConversationState

TRANSITIONS: dict[tuple[ConversationState, str], ConversationState] = {
    (S.WAITING, "assign"): S.ASSIGNED,
    (S.WAITING, "overflow"): S.WAITING,
    (S.WAITING, "transfer_group"): S.WAITING,
    (S.WAITING, "transfer_agent"): S.TRANSFERRED,
    (S.ASSIGNED, "transfer_agent"): S.TRANSFERRED,
    (S.TRANSFERRED, "transfer_agent"): S.TRANSFERRED,
    (S.ASSIGNED, "transfer_group"): S.WAITING,
    (S.TRANSFERRED, "transfer_group"): S.WAITING,
    (S.WAITING, "close"): S.CLOSED,
    (S.ASSIGNED, "close"): S.CLOSED,
    (S.TRANSFERRED, "close"): S.CLOSED,
}
"""(state, event) -> next state: the whole lifecycle."""


class Refusal(Exception):
    """A service request refused with a wire code and a reason (answered with RESULT; the connection stays open).
    `conversation_id` is the RESULT's: the conversation the refused request concerned, or 0."""

    def __init__(self, code: int, reason: str, *, conversation_id: int = 0) -> None:
        super().__init__(reason)
        self.code, self.reason, self.conversation_id = code, reason, conversation_id


class IllegalTransition(Exception):
    """An event that the conversation's state does not allow."""

    def __init__(self, state: ConversationState, event: str) -> None:
        super().__init__(f"{event} is not allowed in state {state.name.lower()}")
        self.state, self.event = state, event


def is_service(conversation_id: int) -> bool:
    """Whether the id is in the service range (a conversation or its staff channel)."""
    return conversation_id >= SERVICE_BASE


@dataclass(slots=True)
class ServiceConversation:
    """One service conversation's record (the JSON of the ``service`` db)."""

    id: int
    tenant: str
    visitor: str
    """The member on the visitor side: the visitor's app, or the integration acting for `customer`."""
    customer: str
    group: str
    created_ms: int
    attributes: dict[str, str] = field(default_factory=dict)
    state: ConversationState = ConversationState.WAITING
    owner: str | None = None
    priority: int = 0
    skills: list[str] = field(default_factory=list)
    waiting_since: float = 0.0
    """Wall-clock seconds when it entered its current group's queue (for overflow and queue order)."""
    watchers: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    sentiment: float | None = None
    trace: list[dict[str, Any]] = field(default_factory=list)
    closed_ms: int = 0
    passed_by: str = ""
    """The agent who last transferred it to a group: while it waits it is not routed back to them (a transfer to
    them by name still is); cleared when an agent takes it."""

    @property
    def visitor_key(self) -> str:
        """Whose history this conversation adds to (sticky routing, history attributes)."""
        return f"{self.visitor}/{self.customer}" if self.customer else self.visitor

    @property
    def staff(self) -> int:
        """The staff channel's conversation id."""
        return staff_channel(self.id)

    def apply(self, event: str) -> ConversationState:
        """Move along the lifecycle table (IllegalTransition if `event` is not allowed now)."""
        state = TRANSITIONS.get((self.state, event))
        if state is None:
            raise IllegalTransition(self.state, event)
        self.state = state
        return state

    def note(self, entry: dict[str, Any]) -> None:
        """Add a routing-trace entry, keeping the newest MAX_TRACE."""
        self.trace.append(entry)
        del self.trace[:-MAX_TRACE]

    def members(self) -> tuple[str, ...]:
        """Who receives the conversation's messages: the visitor side, the owner and watchers."""
        names = [self.visitor]
        if self.owner:
            names.append(self.owner)
        names.extend(self.watchers)
        return tuple(dict.fromkeys(names))

    def staff_members(self) -> tuple[str, ...]:
        """Who receives the staff channel: the owner and the watchers."""
        return tuple(dict.fromkeys([*([self.owner] if self.owner else []), *self.watchers]))

    def encode(self) -> bytes:
        """The stored JSON."""
        data = asdict(self)
        data["state"] = self.state.name.lower()
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()

    def public(self) -> dict[str, Any]:
        """The CONVERSATION_INFO detail (section 13.11)."""
        data = asdict(self)
        data["state"] = self.state.name.lower()
        data["staff_channel"] = self.staff
        return data

    @classmethod
    def decode(cls, raw: bytes) -> ServiceConversation:
        """From the stored JSON."""
        data = json.loads(raw)
        data["state"] = ConversationState[data["state"].upper()]
        return cls(**data)
