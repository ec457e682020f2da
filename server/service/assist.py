"""What happens after a visitor's message is durable: sentiment and AI plugins (sections 13.8, 13.10); and the
agent's decision on a draft.

Nothing here is on the delivery path. The core delivers a message, then tells the desk; the score comes back from
the scorer's worker process and is pushed to the staff as SENTIMENT; the plugins run as a task whose results are
written like any other system message: tags and drafts into the staff channel, auto-replies into the conversation
while it waits for an agent. A plugin that fails or hangs loses only its own result (the host's timeouts).
Only DRAFT_DECISION moves a draft's text to the visitor, as the owner's message.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from typing import Any, Protocol

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import ContentType, ConversationState, DraftAction, DraftDecision, Frame, Sentiment

from ..engine.messages import SendRequest, SendResult, StoredMessage
from ..engine.ports import Device, ServiceHost
from .journal import Journal, event, key
from .model import MAX_TAGS, SYSTEM_SENDER, Refusal, ServiceConversation
from .plugins import Context, Draft, Mode, Reply, Tags, Turn

__all__ = ["DRAFT_KIND", "AssistDesk", "Assistant"]


class AssistDesk(Protocol):
    """What the assistant uses of its desk (`kefu.server.service.desk.Desk`)."""

    host: ServiceHost
    journal: Journal
    open: dict[int, ServiceConversation]

    def metric(self, name: str) -> None: ...
    def posted(self, conv: ServiceConversation, sender: str) -> None: ...
    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...
    def open_conversation(self, user: str, conversation_id: int) -> ServiceConversation: ...
    def reply_when_written(
        self, session: Device, frame: Frame, conv: ServiceConversation, written: asyncio.Future[SendResult],
        *, with_seq: bool = False,
    ) -> None: ...  # fmt: skip


DRAFT_KIND = b"draft"
"""Metadata kefu.kind of a draft in the staff channel."""


class Assistant:
    """Sentiment scoring and AI plugins of one desk."""

    def __init__(self, desk: AssistDesk) -> None:
        self.desk = desk
        self.scorer: Any = None
        """A SentimentScorer, once started (None: no scoring)."""
        self.plugins: Any = None
        """A loaded PluginHost (None: no plugins)."""

    def committed(self, result: SendResult) -> None:
        """A client's message in the service range is durable and delivered."""
        message = result.message
        if message is None or result.duplicate or message.content_type != ContentType.TEXT:
            return
        conv = self.desk.open.get(message.conversation_id)
        if conv is None or message.sender != conv.visitor:
            return
        text = message.body.decode("utf-8", "replace")
        if self.scorer is not None:
            future = self.scorer.score(text)
            if future is None:
                self.desk.metric("sentiment_dropped")
            else:
                future.add_done_callback(lambda f: self._scored(conv, message, f))
        if self.plugins is not None:
            self.desk.spawn(self._assist(conv, message, text))

    def _scored(self, conv: ServiceConversation, message: StoredMessage, future: asyncio.Future[float]) -> None:
        if future.cancelled() or future.exception() is not None:
            self.desk.metric("sentiment_failed")
            return
        conv.sentiment = score = future.result()
        frame = Sentiment(conv.id, message.seq, round(score * 1000))
        for user in conv.staff_members():
            for session in self.desk.host.devices(user):
                session.send(frame)

    def _context(self, conv: ServiceConversation, message: StoredMessage, text: str) -> Context:
        depth = self.desk.host.config.service.plugin_history
        history = self.desk.host.log.read_range(conv.id, max(0, message.seq - depth), message.seq, depth)
        turns = tuple(_turn(conv, m) for m in history if m.content_type == ContentType.TEXT)
        latest = Turn("visitor", message.sender, text, message.seq)
        return Context(conv.tenant, conv.id, conv.group, dict(conv.attributes), turns, latest, conv.sentiment)

    async def _assist(self, conv: ServiceConversation, message: StoredMessage, text: str) -> None:
        host, journal, open_ = self.plugins, self.desk.journal, self.desk.open
        modes = host.modes()
        context = self._context(conv, message, text)
        if Mode.CLASSIFY in modes:
            tags = [t for _, r in await host.run(Mode.CLASSIFY, context) if isinstance(r, Tags) for t in r.tags]
            new = [t for t in dict.fromkeys(tags) if t not in conv.tags][: MAX_TAGS - len(conv.tags)]
            if new and conv.id in open_:
                conv.tags.extend(new)
                journal.write_staff(conv, event("tagged", tags=new, seq=message.seq))
        if Mode.AUTO_REPLY in modes and conv.state is ConversationState.WAITING:
            for name, result in await host.run(Mode.AUTO_REPLY, context):
                if isinstance(result, Reply) and conv.id in open_:
                    meta: tuple[tuple[str, bytes], ...] = (
                        ("kefu.plugin", name.encode()), ("kefu.reply_to", str(message.seq).encode())
                    )  # fmt: skip
                    msg_id = hashlib.sha256(f"auto\0{conv.id}\0{message.seq}\0{name}".encode()).digest()[:16]
                    body = result.text.encode()
                    journal.submit(
                        SendRequest(SYSTEM_SENDER, msg_id, conv.id, ContentType.TEXT, body, meta, system=True)
                    )
        if Mode.SUGGEST in modes and conv.owner:
            for name, result in await host.run(Mode.SUGGEST, context):
                if isinstance(result, Draft) and conv.id in open_ and conv.owner:
                    draft = (("kefu.kind", DRAFT_KIND), ("kefu.plugin", name.encode()),
                             ("kefu.reply_to", str(message.seq).encode()))  # fmt: skip
                    journal.write_staff(conv, result.text.encode(), content_type=ContentType.TEXT, metadata=draft)

    def decide_draft(self, session: Device, frame: DraftDecision) -> None:
        """DRAFT_DECISION: only the owner; approve or edit posts one visitor message per draft."""
        desk = self.desk
        conv = desk.open_conversation(session.user, frame.conversation_id)
        if conv.owner != session.user:
            raise Refusal(ErrorCode.FORBIDDEN, "only the owning agent decides on drafts")
        found = desk.host.log.read_range(conv.staff, frame.draft_seq - 1, frame.draft_seq, 1)
        draft = found[0] if found and found[0].seq == frame.draft_seq else None
        if draft is None or draft.sender != SYSTEM_SENDER or dict(draft.metadata).get("kefu.kind") != DRAFT_KIND:
            raise Refusal(ErrorCode.NOT_FOUND, f"no draft at seq {frame.draft_seq}")
        if frame.action not in DraftAction._value2member_map_:
            raise Refusal(ErrorCode.BAD_REQUEST, f"unknown action {frame.action}")
        action = DraftAction(frame.action)
        text = b"" if action is DraftAction.REJECT else draft.body if action is DraftAction.APPROVE else frame.text
        if action is not DraftAction.REJECT and not 0 < len(text) <= desk.host.config.server.max_message_bytes:
            raise Refusal(ErrorCode.BAD_REQUEST, "an edited draft needs a text of allowed size")
        decided = desk.journal.write_staff(conv, event("draft_" + action.name.lower(), draft_seq=frame.draft_seq))
        if action is DraftAction.REJECT:
            desk.reply_when_written(session, frame, conv, decided)
            return
        # One visitor message per draft however often it is approved: its id is derived from the draft.
        msg_id = hashlib.sha256(b"draft\0" + key(conv.id) + key(frame.draft_seq)).digest()[:16]
        edited = b"1" if action is DraftAction.EDIT else b"0"
        meta = (("kefu.draft", str(frame.draft_seq).encode()), ("kefu.edited", edited))
        posted = desk.journal.submit(SendRequest(session.user, msg_id, conv.id, ContentType.TEXT, text, meta))

        def answered(done: asyncio.Future[SendResult]) -> None:
            """The posted draft is the agent's message to the visitor: it may be the first answer."""
            if not done.cancelled() and done.exception() is None:
                result = done.result()
                if result.status == ErrorCode.OK and not result.duplicate:
                    desk.posted(conv, session.user)

        posted.add_done_callback(answered)
        desk.reply_when_written(session, frame, conv, posted, with_seq=True)

    async def aclose(self) -> None:
        """Stop the scorer's worker and close the plugins."""
        if self.scorer is not None:
            await self.scorer.close()
        if self.plugins is not None:
            await self.plugins.aclose()


def _turn(conv: ServiceConversation, m: StoredMessage) -> Turn:
    role = "visitor" if m.sender == conv.visitor else "system" if m.sender == SYSTEM_SENDER else "agent"
    return Turn(role, m.sender, m.body.decode("utf-8", "replace"), m.seq)
