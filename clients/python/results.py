"""What the customer-service requests and events return (spec/PROTOCOL.md section 13): typed values, not wire frames.

Each is a frozen dataclass whose fields keep the names of the frame it is read from, with enums where the wire has a
code: `OpenedConversation.state` is a `ConversationState`. The frames themselves (`kefu.protocol.frames.Opened`,
`SearchHit`, `QueuePosition`, `Sentiment`) stay inside the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias, TypeVar

from kefu.protocol.frames import ConversationState, Opened, QueuePosition, SearchHit, Sentiment

__all__ = ["OpenedConversation", "QueueUpdate", "SearchMatch", "SentimentScore", "ServiceEvent", "code_or_int"]


E = TypeVar("E", bound=IntEnum)


def code_or_int(enum: type[E], value: int) -> E | int:
    """`value` as a member of `enum` when it names one, else the plain int (a newer server's code passes through)."""
    return enum(value) if value in enum._value2member_map_ else value


@dataclass(frozen=True, slots=True)
class OpenedConversation:
    """The answer to `ServiceApi.open`: the conversation, where it went, and its queue position (0 when assigned)."""

    conversation_id: int
    state: ConversationState | int
    """WAITING (queued), ASSIGNED, ...; an int only for a state this client does not know."""
    group: str
    """The skill group it was routed to."""
    agent: str
    """The agent it was assigned to ("" while waiting)."""
    position: int
    """Place in the group's queue, 1 = next (0 when assigned)."""

    @classmethod
    def from_frame(cls, frame: Opened) -> OpenedConversation:
        """The value an OPENED frame carries."""
        state = code_or_int(ConversationState, frame.state)
        return cls(frame.conversation_id, state, frame.group, frame.agent, frame.position)


@dataclass(frozen=True, slots=True)
class SearchMatch:
    """One message that matched `ServiceApi.search`."""

    conversation_id: int
    seq: int
    timestamp_ms: int
    """Server time of storage, milliseconds since the Unix epoch."""
    snippet: str
    """The matching text around the query."""

    @classmethod
    def from_hit(cls, hit: SearchHit) -> SearchMatch:
        """The value a SEARCH_RESULT hit carries."""
        return cls(hit.conversation_id, hit.seq, hit.timestamp_ms, hit.snippet)


@dataclass(frozen=True, slots=True)
class QueueUpdate:
    """A waiting conversation's place in its group's queue (1 = next; 0 once it left the queue)."""

    conversation_id: int
    group: str
    position: int
    waiting: int
    """Conversations waiting in the group."""

    @classmethod
    def from_frame(cls, frame: QueuePosition) -> QueueUpdate:
        """The value a QUEUE_POSITION frame carries."""
        return cls(frame.conversation_id, frame.group, frame.position, frame.waiting)


@dataclass(frozen=True, slots=True)
class SentimentScore:
    """The sentiment of one visitor message, for the agents: 0 (negative) to 1000 (positive) per mille."""

    conversation_id: int
    seq: int
    score_permille: int

    @property
    def score(self) -> float:
        """The score as a fraction, 0.0 to 1.0."""
        return self.score_permille / 1000

    @classmethod
    def from_frame(cls, frame: Sentiment) -> SentimentScore:
        """The value a SENTIMENT frame carries."""
        return cls(frame.conversation_id, frame.seq, frame.score_permille)


ServiceEvent: TypeAlias = QueueUpdate | SentimentScore
"""What `ServiceApi.events()` yields."""
