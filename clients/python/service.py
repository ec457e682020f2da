"""Customer-service requests and events of a client (spec/PROTOCOL.md section 13): `client.service`.

::

    opened = await visitor.service.open(attributes={"channel": "app", "vip": "2"}, first_message="我的卡丢了")
    await agent.service.set_status(AgentState.ONLINE)
    async for event in agent.service.events():       # QueueUpdate and SentimentScore values
        ...
    await agent.service.decide_draft(conv, draft_seq, DraftAction.APPROVE)

Conversation messages (including the server's EVENT messages: opened, assigned, transferred, closed, drafts in the
staff channel) arrive through `client.deliveries()` like any other; `Message.is_system_event` tells the server's
events (content type EVENT from the system sender) from everything else. A request is sent once: if the connection is
lost before the answer, it fails with ConnectionLost (OPEN can be repeated safely with the same `client_ref`).

Answers are typed values of results.py (`OpenedConversation`, `SearchMatch`, `QueueUpdate`, `SentimentScore`,
`Outcome`), never the wire frames.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import (
    AgentState,
    AgentStatus,
    ConversationInfo,
    DraftAction,
    DraftDecision,
    EndConversation,
    Frame,
    MetaEntry,
    OpenConversation,
    Opened,
    QueuePosition,
    Result,
    Search,
    SearchResult,
    Sentiment,
    Transfer,
    Watch,
    is_staff_channel,
    staff_channel,
)

from .errors import ClientError, ConnectionLost, RequestRefused, Timeout
from .results import OpenedConversation, QueueUpdate, SearchMatch, SentimentScore, ServiceEvent

if TYPE_CHECKING:
    from .client import Client
    from .connection import Link

__all__ = ["Outcome", "ServiceApi", "ServiceRequest", "is_staff_channel", "staff_channel"]

MAX_EVENTS = 1000
"""Queue and sentiment events kept for `events()`; older ones are dropped (each supersedes the last)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A successful RESULT: the conversation, a message's seq where the request made one, and the detail."""

    conversation_id: int
    seq: int
    detail: Mapping[str, Any]


class ServiceRequest:
    """A request waiting for its answer on one connection."""

    __slots__ = ("future", "link")

    def __init__(self, future: asyncio.Future[Frame]) -> None:
        self.future = future
        self.link: Link | None = None


class ServiceApi:
    """The service requests of one client, and the events pushed to it."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._events: deque[ServiceEvent] = deque(maxlen=MAX_EVENTS)
        self._event_ready = asyncio.Event()
        self._pending: set[ServiceRequest] = set()

    # --- requests ---------------------------------------------------------------------------------------

    async def set_status(self, status: AgentState, *, timeout: float | None = 10) -> Outcome:
        """An agent's status: ONLINE agents get conversations."""
        return _outcome(await self._request(AgentStatus(int(status)), timeout))

    async def open(
        self, *, attributes: Mapping[str, str] | None = None, first_message: str = "", group: str = "",
        customer: str = "", client_ref: bytes | None = None, timeout: float | None = 10,
    ) -> OpenedConversation:  # fmt: skip
        """Ask for service (a visitor, or an integration for `customer`); the answer says where it went."""
        meta = tuple(MetaEntry(k, v.encode()) for k, v in (attributes or {}).items())
        frame = OpenConversation(client_ref or os.urandom(16), customer, group, meta, first_message.encode())
        answer = await self._request(frame, timeout)
        if isinstance(answer, Opened):
            return OpenedConversation.from_frame(answer)
        _outcome(answer)  # a RESULT: raises its refusal
        raise _unexpected(answer)

    async def transfer(
        self, conversation_id: int, *, to_agent: str = "", to_group: str = "", expect_owner: str = "",
        note: str = "", timeout: float | None = 10,
    ) -> Outcome:  # fmt: skip
        """Hand the conversation to an agent or a group; with `expect_owner`, only if that agent still owns it."""
        return _outcome(await self._request(Transfer(conversation_id, expect_owner, to_agent, to_group, note), timeout))

    async def end(self, conversation_id: int, reason: str = "", *, timeout: float | None = 10) -> Outcome:
        """Close the conversation."""
        return _outcome(await self._request(EndConversation(conversation_id, reason), timeout))

    async def watch(self, conversation_id: int, on: bool = True, *, timeout: float | None = 10) -> Outcome:
        """A supervisor starts or stops watching (then whispers by sending to `staff_channel(id)`)."""
        return _outcome(await self._request(Watch(conversation_id, int(on)), timeout))

    async def decide_draft(
        self, conversation_id: int, draft_seq: int, action: DraftAction, text: str = "", *,
        timeout: float | None = 10,
    ) -> Outcome:  # fmt: skip
        """Approve, edit (with `text`) or reject an AI draft; the outcome's seq is the visitor message's."""
        frame = DraftDecision(conversation_id, draft_seq, int(action), text.encode())
        return _outcome(await self._request(frame, timeout))

    async def search(self, query: str, *, limit: int = 20, timeout: float | None = 10) -> list[SearchMatch]:
        """Messages containing `query`, newest first: an agent's in the conversations it owned, an integration's in its
        tenant's (spec 13.9); others are refused FORBIDDEN."""
        answer = await self._request(Search(query, limit), timeout)
        if isinstance(answer, SearchResult):
            return [SearchMatch.from_hit(hit) for hit in answer.hits]
        _outcome(answer)  # a RESULT: raises its refusal
        raise _unexpected(answer)

    async def info(self, conversation_id: int, *, timeout: float | None = 10) -> dict[str, Any]:
        """The conversation's record as this user may see it (staff: with tags and the routing trace)."""
        return dict(_outcome(await self._request(ConversationInfo(conversation_id), timeout)).detail)

    async def _request(self, frame: Frame, timeout: float | None) -> Frame:
        client = self._client
        client._check_open()
        link = client._link
        if link is None or not link.usable:
            raise ConnectionLost("not connected")
        request = ServiceRequest(asyncio.get_running_loop().create_future())
        request.link = link
        frame.request_id = link.next_request_id()
        link.requests[frame.request_id] = request
        self._pending.add(request)
        link.send(frame)
        try:
            async with asyncio.timeout(timeout):
                return await request.future
        except TimeoutError:
            link.requests.pop(frame.request_id, None)
            raise Timeout(f"{type(frame).__name__} not answered in time") from None
        finally:
            self._pending.discard(request)

    # --- events -----------------------------------------------------------------------------------------

    async def next_event(self, timeout: float | None = None) -> ServiceEvent | None:
        """The next queue update (a waiting conversation's place) or sentiment score; None after `timeout`."""
        try:
            async with asyncio.timeout(timeout):
                while not self._events:
                    self._event_ready.clear()
                    await self._event_ready.wait()
        except TimeoutError:
            return None
        return self._events.popleft()

    async def events(self) -> AsyncIterator[ServiceEvent]:
        """Every queue update and sentiment score, as they come."""
        while True:
            event = await self.next_event()
            if event is not None:
                yield event

    # --- from the client's link -------------------------------------------------------------------------

    def on_frame(self, link: Link, frame: Frame) -> None:
        """A service frame arrived."""
        if isinstance(frame, QueuePosition):
            self._push(QueueUpdate.from_frame(frame))
            return
        if isinstance(frame, Sentiment):
            self._push(SentimentScore.from_frame(frame))
            return
        found = link.requests.pop(frame.request_id, None)
        if isinstance(found, ServiceRequest) and not found.future.done():
            found.future.set_result(frame)

    def _push(self, event: ServiceEvent) -> None:
        self._events.append(event)
        self._event_ready.set()

    def on_error(self, found: object, code: int, reason: str) -> bool:
        """An ERROR answered a service request: fail it. False if `found` is not one."""
        if not isinstance(found, ServiceRequest):
            return False
        if not found.future.done():
            found.future.set_exception(RequestRefused(code, reason))
        return True

    def on_link_lost(self, link: Link) -> None:
        """Requests sent on `link` will never be answered."""
        for request in list(self._pending):
            if request.link is link and not request.future.done():
                request.future.set_exception(ConnectionLost("connection lost before the answer"))

    def fail(self, error: ClientError) -> None:
        """The client is closed or failed."""
        for request in list(self._pending):
            if not request.future.done():
                request.future.set_exception(error)


def _unexpected(answer: Frame) -> RequestRefused:
    return RequestRefused(ErrorCode.INTERNAL_ERROR, f"unexpected answer {type(answer).__name__}")


def _outcome(answer: Frame) -> Outcome:
    if not isinstance(answer, Result):
        raise _unexpected(answer)
    try:
        detail = json.loads(answer.detail) if answer.detail else {}
    except ValueError:
        detail = {}
    if answer.status != ErrorCode.OK:
        raise RequestRefused(answer.status, str(detail.get("reason", "")) if isinstance(detail, dict) else "")
    return Outcome(answer.conversation_id, answer.seq, detail if isinstance(detail, dict) else {})
