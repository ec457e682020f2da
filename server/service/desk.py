"""The service desk: customer-service requests, routing, queues, transfer and AI assistance (section 13).

Theory of operation
-------------------
Everything the desk decides, it decides on the event loop, synchronously, against its in-memory state (the open
conversations, the router's agents and queues). So two racing transfers are two calls in some order, capacity is
checked and taken in one step, and a queue position is never computed from stale data. Slow work happens
elsewhere and comes back to the loop: Lua rules in the rule engine's thread, sentiment in the scorer's process,
AI plugins as tasks with timeouts, searches in a worker thread.

Every change is written through the group committer as a *system message* (sender SYSTEM_SENDER, content type
EVENT, a JSON body) in the conversation it concerns, with the conversation's record, membership and indexes
written in the same transaction (`SendRequest.puts`, `set_members`). Visitor-visible events (opened, queued,
assigned, transferred, overflowed, closed) go to the conversation itself; staff-only ones (watching, drafts,
tags) go to its staff channel, whose members are the owner and the watching supervisors. A watcher joins the
visitor conversation silently (a membership write without a message), so the visitor is not told.

A request is answered (RESULT, OPENED) only after the writes it caused are durable. If a commit fails, the
requester gets STORAGE_UNAVAILABLE and the in-memory state is left as decided: the next successful write of that
conversation stores it again. The exception is the write that creates a conversation: without it the log has no
such conversation and no later write of it can succeed, so the desk forgets it, and gives back the agent's slot or
the queue place it took.

OPEN_CONVERSATION decides first (the tenant's rule, then the default policy) and then writes `opened`, the first
message and the decision together. Deciding and taking the agent's slot or the queue place is one synchronous step,
so a full queue is refused before anything is written and two OPENs cannot both take its last place. Until its
writes are durable an OPEN is *pending*: a repeat of it (the same client_ref) waits for the same answer, and its
visitor is sent no QUEUE_POSITION (the first follows OPENED), so no client learns of a conversation that may yet
not be stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import struct
import time
from collections.abc import Callable
from typing import Any

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import (
    AgentState,
    AgentStatus,
    ContentType,
    ConversationInfo,
    ConversationState,
    DraftDecision,
    EndConversation,
    Frame,
    OpenConversation,
    Opened,
    QueuePosition,
    Result,
    Search,
    Transfer,
    Watch,
)

from ..engine.audit import NO_AUDIT, Action, AuditTrail
from ..engine.identity import Profile, Role
from ..engine.messages import SendRequest, SendResult
from ..engine.ports import Device, Profiles, ServiceHost
from . import access
from .assist import Assistant
from .directory import Directory, GroupEntry, GroupKey
from .figures import DeskFigures, FigureKeeper
from .journal import Journal, event, key
from .model import (
    MAX_ATTRIBUTE_BYTES,
    MAX_ATTRIBUTES,
    SERVICE_BASE,
    STAFF_BIT,
    IllegalTransition,
    Refusal,
    ServiceConversation,
    is_service,
)
from .router import AgentRuntime, Router

__all__ = ["TABLES", "Desk", "Refusal"]

_U64 = struct.Struct("!Q")
CLOSED_CACHE = 1024
"""Closed conversations kept in memory for authorization checks (older ones are read from the store again)."""
TABLES = ("service", "service_open", "visitors", "agent_convs", "tenant_convs")
"""The desk's own tables in the store (spec section 12.1), registered by the wiring: conversation records by id, the
ids of those not closed, visitors' histories and open-request references, which agent owned which, and which tenant
each conversation is of (`access.tenant_conv_key`: newest first, what an integration's SEARCH looks through)."""


class Desk:
    """The customer-service layer of one server process."""

    def __init__(
        self, host: ServiceHost, profiles: Profiles, directory: Directory, *, now: Callable[[], float] = time.time
    ) -> None:
        self.host = host
        self.profiles = profiles
        self.directory = directory
        self.router = Router(directory)
        self.figures = FigureKeeper()
        """Abandonment and first answers, for the metrics (`publish_figures`)."""
        self.now = now
        self.open: dict[int, ServiceConversation] = {}
        self.closed: dict[int, ServiceConversation] = {}
        self.refs: dict[bytes, int] = {}
        """The pending OPENs' client references (opener, customer, client_ref) and conversation ids."""
        self._openers: dict[int, list[tuple[Device, OpenConversation]]] = {}
        """A pending OPEN's requests by conversation id: the first and every repeat, answered together."""
        self.rules: dict[str, Any] = {}
        self.journal = Journal(host)
        self.assist = Assistant(self)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._positions: dict[int, tuple[str, int]] = {}
        """The place (group, position) each waiting conversation's visitor was last told."""
        self._dirty_groups: set[GroupKey] = set()
        self.audit: AuditTrail = NO_AUDIT
        """Where transfers, watching, whispers and searches are recorded with their actor (set by the runtime)."""
        last = host.log.last_key("service")
        self._next_id = max(SERVICE_BASE, _U64.unpack(last)[0] if last else 0) + 1
        """Ids are taken in order, at OPEN; the records are keyed by id, so after a restart the next is one past the
        last stored (an id whose OPEN was refused or whose first write failed was never stored, and is free again)."""
        self._configured_agents: list[AgentRuntime] = []
        """Offline stand-ins for the directory's agents, counted by the figures until they connect."""
        self._load()
        self.know_agents()

    # --- start-up ---------------------------------------------------------------------------------------

    def know_agents(self) -> None:
        """The agents the directory names, with their tenants (at start and after a reload): the figures count one
        who has not connected since the process started as offline rather than not at all. (Routing still knows an
        agent only from its first connection: a transfer to one never seen is NOT_FOUND, section 13.6.) Agents not
        in the directory are counted from their first connection."""
        self._configured_agents = [
            AgentRuntime(name, profile.tenant)
            for name in self.directory.agents
            if (profile := self.profile(name)).role is Role.AGENT
        ]

    def _load(self) -> None:
        """Rebuild loads and queues from the open conversations (never from all data)."""
        for open_key, _ in self.host.log.scan("service_open"):
            raw = self.host.log.get_record("service", open_key)
            if raw is None:
                continue
            conv = ServiceConversation.decode(raw)
            self.open[conv.id] = conv
            if conv.owner:
                self.router.assign(self.router.agent(conv.owner, conv.tenant), conv.id, 0.0)
            elif conv.state is ConversationState.WAITING:
                self.router.enqueue((conv.tenant, conv.group), conv.id, conv.priority, conv.waiting_since)

    def profile(self, user: str) -> Profile:
        """The user's role and tenant; apps without a record are plain "app"s of tenant ""."""
        return self.profiles.profile(user)

    # --- sessions ---------------------------------------------------------------------------------------

    def connected(self, session: Device) -> None:
        """A device finished its handshake."""
        profile = self.profile(session.user)
        if profile.role is Role.AGENT:
            self.router.agent(session.user, profile.tenant).devices += 1

    def disconnected(self, session: Device) -> None:
        """A ready device went away; an agent with no device left is offline for routing."""
        runtime = self.router.agents.get(session.user)
        if runtime is not None and runtime.devices > 0:
            runtime.devices -= 1
            if runtime.devices == 0:
                runtime.status = AgentState.OFFLINE

    # --- requests ---------------------------------------------------------------------------------------

    def on_request(self, session: Device, frame: Frame) -> None:
        """Dispatch a service request; a Refusal becomes a RESULT with its code."""
        handler = self._handlers[type(frame)]
        audited, result = self._audited(frame), "ok"
        try:
            handler(self, session, frame)
        except Refusal as refusal:
            result = ErrorCode(refusal.code).name
            self.refuse(session, frame, refusal)
        except IllegalTransition as exc:
            result = ErrorCode.CONFLICT.name
            self.answer(session, frame, ErrorCode.CONFLICT, detail={"reason": str(exc)})
        if audited is not None:
            self.audit.record(session.user, audited[0], audited[1], result, audited[2])

    def _audited(self, frame: Frame) -> tuple[Action, str, dict[str, Any]] | None:
        """What the audit trail records of a request (its action, target, details), taken before it runs."""
        match frame:
            case Transfer():
                conv = self.open.get(frame.conversation_id)
                details = {"from": conv.owner if conv else None, "to_agent": frame.to_agent, "to_group": frame.to_group}
                return Action.TRANSFER, str(frame.conversation_id), {**details, "note": frame.note}
            case Watch():
                return (Action.WATCH if frame.on else Action.UNWATCH), str(frame.conversation_id), {}
            case Search():
                return Action.SEARCH, "", {"query": frame.query, "limit": frame.limit}
        return None

    def refuse(self, session: Device, frame: Frame, refusal: Refusal) -> None:
        """RESULT for a refused `frame`."""
        detail = {"reason": refusal.reason}
        self.answer(session, frame, refusal.code, conversation_id=refusal.conversation_id, detail=detail)

    def answer(
        self, session: Device, frame: Frame, code: int, *, conversation_id: int = 0, seq: int = 0,
        detail: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """RESULT for `frame`."""
        body = json.dumps(detail or {}, ensure_ascii=False, separators=(",", ":")).encode()
        session.send(Result(int(code), conversation_id, seq, body, request_id=frame.request_id))
        if code != ErrorCode.OK:
            self.host.refused(session.user, frame, ErrorCode(code))

    def _agent_status(self, session: Device, frame: AgentStatus) -> None:
        profile = self.profile(session.user)
        if profile.role is not Role.AGENT:
            raise Refusal(ErrorCode.FORBIDDEN, "only agents have a status")
        if frame.status not in AgentState._value2member_map_:
            raise Refusal(ErrorCode.BAD_REQUEST, f"unknown status {frame.status}")
        runtime = self.router.agent(session.user, profile.tenant)
        runtime.status = AgentState(frame.status)
        self.host.event("service.agent_status", agent=session.user, status=runtime.status.name.lower())
        if runtime.available:
            self._fill(runtime)
        self.answer(session, frame, ErrorCode.OK, detail={"status": runtime.status.name.lower()})

    # --- OPEN_CONVERSATION ------------------------------------------------------------------------------

    def _open(self, session: Device, frame: OpenConversation) -> None:
        profile = self.profile(session.user)
        if profile.role is Role.INTEGRATION:
            if not frame.customer:
                raise Refusal(ErrorCode.BAD_REQUEST, "an integration names the customer it acts for")
        elif profile.role not in (Role.VISITOR, Role.APP):
            raise Refusal(ErrorCode.FORBIDDEN, f"a {profile.role.value} cannot open a service conversation")
        elif frame.customer:
            raise Refusal(ErrorCode.FORBIDDEN, "only an integration acts for a customer")
        ref = b"ref\0" + session.user.encode() + b"\0" + frame.customer.encode() + b"\0" + frame.client_ref
        pending = self.refs.get(ref)
        if pending is not None:  # a repeat of an OPEN whose writes are not durable yet: it gets the same answer
            self._openers[pending].append((session, frame))
            return
        existing = self._stored_ref(ref)
        if existing is not None:
            self._answer_opened(session, frame, self.find(existing))
            return
        tenant = self.directory.tenant(profile.tenant)
        group_name = frame.group or tenant.default_group
        group = self.directory.group(profile.tenant, group_name)
        if group is None:
            raise Refusal(ErrorCode.NOT_FOUND, f"no group {group_name!r}")
        if len(frame.attributes) > MAX_ATTRIBUTES or any(len(m.value) > MAX_ATTRIBUTE_BYTES for m in frame.attributes):
            raise Refusal(ErrorCode.BAD_REQUEST, f"at most {MAX_ATTRIBUTES} attributes of {MAX_ATTRIBUTE_BYTES} bytes")
        if frame.customer and not frame.customer.isprintable():
            raise Refusal(ErrorCode.BAD_REQUEST, "a customer id is printable text")
        try:
            attributes = {m.key: m.value.decode() for m in frame.attributes}
            first = frame.first_message.decode()
        except UnicodeDecodeError:
            raise Refusal(ErrorCode.BAD_REQUEST, "attributes and first_message are UTF-8") from None
        if len(frame.first_message) > self.host.config.server.max_message_bytes:
            raise Refusal(ErrorCode.MESSAGE_TOO_LARGE, "first_message is too large")
        conv_id = self._next_id
        self._next_id += 1
        conv = ServiceConversation(
            conv_id, profile.tenant, session.user, frame.customer, group.name, int(self.now() * 1000), attributes
        )
        self.refs[ref] = conv_id
        self._openers[conv_id] = [(session, frame)]
        self.spawn(self._route_new(ref, conv, group, first))

    def _stored_ref(self, ref: bytes) -> int | None:
        raw = self.host.log.get_record("visitors", ref)
        return _U64.unpack(raw)[0] if raw else None

    async def _route_new(self, ref: bytes, conv: ServiceConversation, group: GroupEntry, first: str) -> None:
        """Route and store a new conversation; then answer its OPEN, and every repeat that came meanwhile, alike."""
        refusal: Refusal | None = None
        try:
            await self._route_and_store(ref, conv, group, first)
        except Refusal as exc:
            refusal = exc
        finally:
            del self.refs[ref]
            requests = self._openers.pop(conv.id)
        for session, frame in requests:
            if refusal is None:
                self._answer_opened(session, frame, conv)
            else:
                self.refuse(session, frame, refusal)

    async def _route_and_store(self, ref: bytes, conv: ServiceConversation, requested: GroupEntry, first: str) -> None:
        """Decide, then write `opened`, the first message and the decision; a Refusal if the conversation would wait
        in a full queue (nothing written) or if a write failed."""
        if first and self.assist.scorer is not None:
            score = self.assist.scorer.score(first)
            if score is not None:
                # Routing may stop waiting before the score comes (the worker starts on first use): a score that then
                # fails (the scorer closed at a stop) is not an error of anyone's, so its exception is consumed here.
                score.add_done_callback(lambda f: f.cancelled() or f.exception())
                wait = self.host.config.service.sentiment_wait_ms / 1000
                with contextlib.suppress(Exception):
                    conv.sentiment = await asyncio.wait_for(asyncio.shield(score), wait)
        decision = await self._evaluate_rule(conv)
        group, runtime = self._choose(conv, requested, decision)
        if runtime is None:
            self._check_queue_room(conv, group)
        self.open[conv.id] = conv
        self.figures.opened(conv)
        created = self.journal.write(
            conv, event("opened", group=requested.name, channel=conv.attributes.get("channel", "")),
            create=(conv.visitor,),
            extra=(("visitors", ref, _U64.pack(conv.id)),
                   ("tenant_convs", access.tenant_conv_key(conv.tenant, conv.id), b"")),
        )  # fmt: skip
        first_seq: asyncio.Future[SendResult] | None = None
        if first:
            msg_id = hashlib.sha256(b"first\0" + ref).digest()[:16]
            first_seq = self.journal.submit(
                SendRequest(conv.visitor, msg_id, conv.id, ContentType.TEXT, first.encode(), ())
            )
        self.host.event("service.opened", conversation=conv.id, visitor=conv.visitor_key, group=requested.name)
        if runtime is None:
            written = self._enqueue(conv, group, "queued")
        else:
            written = self._assign(conv, group, runtime, "assign")
        results = [await created, *([await first_seq] if first_seq is not None else []), await written]
        if results[0].status != ErrorCode.OK:
            self._forget(conv)
            raise Refusal(results[0].status, "the conversation could not be stored", conversation_id=conv.id)
        if first_seq is not None:
            self.assist.committed(results[1])
        failed = next((r for r in results if r.status != ErrorCode.OK), None)
        if failed is not None:
            raise Refusal(
                failed.status, "the first message or the routing decision was not stored", conversation_id=conv.id
            )

    def _forget(self, conv: ServiceConversation) -> None:
        """Undo a conversation whose creating write failed: the log has no such conversation, so it must hold no
        agent's slot and no queue place (the slot goes at once to the next waiting conversation, as on a close)."""
        self.open.pop(conv.id, None)
        self.closed.pop(conv.id, None)  # ended meanwhile, by someone who guessed its id
        left = self.router.dequeue(conv.id)
        if left is not None:
            self._queue_changed(left)
        runtime = self.router.release(conv.owner, conv.id)
        if runtime is not None:
            self._fill(runtime)

    def _answer_opened(self, session: Device, frame: Frame, conv: ServiceConversation | None) -> None:
        if conv is None:
            raise Refusal(ErrorCode.NOT_FOUND, "conversation expired")
        position = self.router.position(conv.id)
        session.send(Opened(conv.id, conv.state, conv.group, conv.owner or "", position, request_id=frame.request_id))
        if position:
            self._tell_position(conv, position)

    async def _evaluate_rule(self, conv: ServiceConversation) -> Any:
        engine = self.rules.get(conv.tenant)
        if engine is None:
            return None
        try:
            decision = await engine.evaluate_async(self.visitor_view(conv))
        except Exception as exc:  # RuleError or a timeout: route by default, and say so in the trace
            reason = getattr(exc, "reason", type(exc).__name__)
            conv.note({"step": "rule", "rule": getattr(engine, "name", ""), "error": reason})
            self.metric(f"rule_{reason}")
            self.host.event("service.rule_failed", conversation=conv.id, reason=reason)
            return None
        conv.note({"step": "rule", "rule": getattr(engine, "name", ""), "result": _decision_dict(decision)})
        return decision

    def visitor_view(self, conv: ServiceConversation) -> dict[str, Any]:
        """What a routing rule sees of the visitor."""
        history = self._history(conv.visitor_key)
        n = history.get("sentiment_n", 0)
        view: dict[str, Any] = {**conv.attributes}
        view.update(
            tenant=conv.tenant,
            channel=conv.attributes.get("channel", ""),
            language=conv.attributes.get("language", ""),
            vip=_int(conv.attributes.get("vip", "0")),
            sentiment=conv.sentiment,
            history={
                "conversations": history.get("conversations", 0),
                "last_agent": history.get("last_agent"),
                "avg_sentiment": history["sentiment_sum"] / n if n else None,
            },
        )
        return view

    def _history(self, visitor_key: str) -> dict[str, Any]:
        raw = self.host.log.get_record("visitors", visitor_key.encode())
        return dict(json.loads(raw)) if raw else {}

    # --- routing ----------------------------------------------------------------------------------------

    def _choose(
        self, conv: ServiceConversation, group: GroupEntry, decision: Any
    ) -> tuple[GroupEntry, AgentRuntime | None]:
        """Apply a rule decision (if any) and the default policy: the group, and the agent to assign now (None: the
        conversation waits in the group's queue). Changes nothing but the conversation's priority, skills and trace."""
        if decision is not None:
            if decision.group:
                chosen = self.directory.group(conv.tenant, decision.group)
                if chosen is not None:
                    group = chosen
                else:
                    conv.note({"step": "rule", "ignored": f"group {decision.group!r} is not this tenant's"})
            conv.priority = max(-1000, min(1000, int(decision.priority)))
            conv.skills = sorted(set(decision.skills))
            if decision.agent:
                runtime = self.router.agents.get(decision.agent)
                why = "unknown or offline" if runtime is None else self.router.eligible(runtime, group, conv.skills)
                if runtime is not None and why is None and runtime.tenant == conv.tenant:
                    conv.note({"step": "choose", "group": group.name, "result": runtime.name, "why": "rule"})
                    return group, runtime
                conv.note({"step": "rule", "ignored": f"agent {decision.agent!r}: {why}"})
        sticky = self._history(conv.visitor_key).get("last_agent")
        runtime, trace = self.router.choose(group, conv.skills, sticky)
        conv.note(trace)
        return group, runtime

    def _queue_full(self, conv: ServiceConversation, group: GroupEntry) -> bool:
        """Whether waiting in `group` would take a place its queue does not have (`GroupEntry.max_queue`)."""
        full = self.router.queue_length(group.key) >= group.max_queue
        return full and self.router.queued_group(conv.id) != group.key

    def _check_queue_room(self, conv: ServiceConversation, group: GroupEntry) -> None:
        """Refuse a request that would make the conversation wait in a full queue (section 13.5): CONFLICT, like an
        agent at capacity, because the refusal concerns one group's state, not the requester or its connection."""
        if self._queue_full(conv, group):
            raise Refusal(ErrorCode.CONFLICT, f"the queue of group {group.name!r} is full ({group.max_queue} waiting)")

    def _assign(
        self, conv: ServiceConversation, group: GroupEntry, runtime: AgentRuntime, transition: str
    ) -> asyncio.Future[SendResult]:
        if conv.state is ConversationState.WAITING and transition == "assign" and conv.owners:
            transition = "transfer_agent"  # waiting after a transfer to a group: the new owner is a transfer's
        conv.apply(transition)
        left = self.router.dequeue(conv.id)
        self._positions.pop(conv.id, None)
        conv.group = group.name
        if group.name not in conv.groups:
            conv.groups.append(group.name)
        conv.owner = runtime.name
        conv.passed_by = ""
        if runtime.name not in conv.owners:
            conv.owners.append(runtime.name)
        self.router.assign(runtime, conv.id, self.now())
        self.host.event("service.assigned", conversation=conv.id, agent=runtime.name, group=group.name)
        kind = "assigned" if transition == "assign" else "transferred"
        self.metric(kind)
        self.journal.write_staff(conv, event(kind, agent=runtime.name, group=group.name))
        written = self.journal.write(
            conv, event(kind, agent=runtime.name, group=group.name), members=conv.members(),
            extra=(("agent_convs", runtime.name.encode() + b"\0" + key(conv.id), b""),
                   ("visitors", conv.visitor_key.encode(), self.visitor_record(conv, last_agent=runtime.name))),
        )  # fmt: skip
        if left is not None:
            self._queue_changed(left)
        return written

    def _enqueue(self, conv: ServiceConversation, group: GroupEntry, kind: str) -> asyncio.Future[SendResult]:
        """Put the conversation in the group's queue (the caller has checked that it has room)."""
        conv.group = group.name
        if group.name not in conv.groups:
            conv.groups.append(group.name)
        conv.waiting_since = self.now()
        left = self.router.dequeue(conv.id)
        self.router.enqueue(group.key, conv.id, conv.priority, conv.waiting_since)
        written = self.journal.write(conv, event(kind, group=group.name), members=conv.members())
        self.metric("queued")
        if left is not None and left != group.key:
            self._queue_changed(left)
        self._queue_changed(group.key)
        return written

    def _fill(self, runtime: AgentRuntime) -> None:
        """Give an agent with room the waiting conversations it may take."""
        while runtime.available and self.router.has_room(runtime):
            found = self.router.waiting_for(
                runtime,
                lambda cid: self.open[cid].skills if cid in self.open else (),
                lambda cid: self.open[cid].passed_by if cid in self.open else "",
            )
            if found is None:
                return
            group, conv_id = found
            conv = self.open[conv_id]
            conv.note({"step": "choose", "group": group.name, "result": runtime.name, "why": "agent became free"})
            self._assign(conv, group, runtime, "assign")

    def refill(self) -> None:
        """Offer waiting conversations to every available agent (after the directory changed)."""
        for runtime in list(self.router.agents.values()):
            if runtime.available:
                self._fill(runtime)

    def _queue_changed(self, group: GroupKey) -> None:
        """The group's queue changed: positions go out once at the end of this loop iteration, however many
        changes it made (a tick or a burst of assignments moves a long queue once, not once per change)."""
        if not self._dirty_groups:
            self.host.loop.call_soon(self._send_positions)
        self._dirty_groups.add(group)

    def _send_positions(self) -> None:
        """Tell every waiting visitor of the changed groups whose place changed; a pending OPEN's visitor is told
        after its OPENED instead (`_answer_opened`)."""
        groups, self._dirty_groups = self._dirty_groups, set()
        self.publish_figures()
        for group in groups:
            waiting = self.router.queue_length(group)
            for conv_id, position in self.router.positions(group):
                conv = self.open.get(conv_id)
                if conv is not None and conv_id not in self._openers:
                    self._tell_position(conv, position, waiting)

    def _tell_position(self, conv: ServiceConversation, position: int, waiting: int | None = None) -> None:
        """QUEUE_POSITION to the visitor's devices, unless the place (group and position) is the one it was last
        told: a move to the same position of another group's queue is a change."""
        place = (conv.group, position)
        if self._positions.get(conv.id) == place:
            return
        self._positions[conv.id] = place
        frame = QueuePosition(
            conv.id,
            conv.group,
            position,
            waiting if waiting is not None else self.router.queue_length((conv.tenant, conv.group)),
        )
        for session in self.host.devices(conv.visitor):
            session.send(frame)

    def tick(self) -> None:
        """Overflow: move conversations that waited too long to their group's overflow group, unless its queue is
        full (they keep their place, and try again at the next tick)."""
        self.publish_figures()
        for group, conv_id in self.router.overdue(self.now()):
            conv = self.open.get(conv_id)
            target = self.directory.group(group.tenant, group.overflow_to) if group.overflow_to else None
            if conv is None or target is None or self._queue_full(conv, target):
                continue
            conv.apply("overflow")
            conv.note({"step": "overflow", "from": group.name, "to": target.name})
            self.host.event("service.overflow", conversation=conv_id, group=group.name, to=target.name)
            self.metric("overflowed")
            sticky = self._history(conv.visitor_key).get("last_agent")
            runtime, trace = self.router.choose(target, conv.skills, sticky, exclude=conv.passed_by or None)
            conv.note(trace)
            self.journal.write(conv, event("overflowed", group=target.name), members=conv.members())
            if runtime is not None:
                self.router.dequeue(conv_id)
                self._queue_changed(group.key)
                self._assign(conv, target, runtime, "assign")
            else:
                self._enqueue(conv, target, "queued")
                self._queue_changed(group.key)

    # --- TRANSFER ---------------------------------------------------------------------------------------

    def _transfer(self, session: Device, frame: Transfer) -> None:
        conv = self.open_conversation(session.user, frame.conversation_id)
        # open_conversation refused a conversation the user may not know of (an integration's of another tenant
        # included) as not found; of those it may know of, these may move it:
        if conv.owner != session.user and not access.may_transfer(self, session.user, conv):
            raise Refusal(ErrorCode.FORBIDDEN, "only the owner, a supervisor of its group or its tenant's integration")
        if frame.expect_owner and frame.expect_owner != (conv.owner or ""):
            raise Refusal(ErrorCode.CONFLICT, f"the owner is now {conv.owner or 'nobody'}")
        if bool(frame.to_agent) == bool(frame.to_group):
            raise Refusal(ErrorCode.BAD_REQUEST, "name exactly one of to_agent and to_group")
        previous = conv.owner
        note = {"step": "transfer", "by": session.user, "from": previous, "note": frame.note[:200]}
        if frame.to_agent:
            written = self._transfer_to_agent(conv, frame.to_agent, note)
        else:
            written = self._transfer_to_group(conv, frame.to_group, note)
        if previous and previous != conv.owner:
            runtime = self.router.agents.get(previous)
            if runtime is not None:
                self._fill(runtime)
        self.reply_when_written(session, frame, conv, written)

    def _transfer_to_agent(self, conv: ServiceConversation, name: str, note: dict[str, Any]) -> Any:
        if name == conv.owner:
            raise Refusal(ErrorCode.CONFLICT, f"{name} already owns the conversation")
        runtime = self.router.agents.get(name)
        group = self.directory.group(conv.tenant, conv.group)
        if runtime is None or runtime.tenant != conv.tenant or group is None:
            raise Refusal(ErrorCode.NOT_FOUND, f"no agent {name!r} connected")
        if not runtime.available:
            raise Refusal(ErrorCode.CONFLICT, f"{name} is {runtime.status.name.lower()}")
        if not self.router.has_room(runtime):
            raise Refusal(ErrorCode.CONFLICT, f"{name} is at capacity")
        self.router.release(conv.owner, conv.id)
        conv.note({**note, "to": name})
        return self._assign(conv, group, runtime, "transfer_agent")

    def _transfer_to_group(self, conv: ServiceConversation, name: str, note: dict[str, Any]) -> Any:
        group = self.directory.group(conv.tenant, name)
        if group is None:
            raise Refusal(ErrorCode.NOT_FOUND, f"no group {name!r}")
        previous = conv.owner
        runtime, trace = self.router.choose(group, conv.skills, None, exclude=previous)
        if runtime is None:
            self._check_queue_room(conv, group)
        conv.apply("transfer_group")
        conv.passed_by = previous or ""
        self.router.release(previous, conv.id)
        conv.owner = None
        conv.note({**note, "to_group": name})
        self.journal.write_staff(conv, event("transferred", group=name))  # the old owner's staff channel is told
        conv.note(trace)
        if runtime is not None:
            return self._assign(conv, group, runtime, "transfer_agent")
        return self._enqueue(conv, group, "queued")

    # --- END, WATCH -------------------------------------------------------------------------------------

    def _end(self, session: Device, frame: EndConversation) -> None:
        conv = self.open_conversation(session.user, frame.conversation_id)
        if not access.may_end(self, session.user, conv):
            raise Refusal(ErrorCode.FORBIDDEN, "not a participant")
        self.figures.closing(conv)
        conv.apply("close")
        owner = conv.owner
        self.router.release(owner, conv.id)
        left = self.router.dequeue(conv.id)
        self._positions.pop(conv.id, None)
        conv.closed_ms = int(self.now() * 1000)
        conv.note({"step": "close", "by": session.user, "reason": frame.reason[:200]})
        del self.open[conv.id]
        self._remember_closed(conv)
        visitor = ("visitors", conv.visitor_key.encode(), self._closed_history(conv, owner))
        written = self.journal.write(conv, event("closed", by=session.user), members=conv.members(), extra=(visitor,))
        self.host.event("service.closed", conversation=conv.id, by=session.user)
        self.metric("closed")
        if left is not None:
            self._queue_changed(left)
        if owner and (runtime := self.router.agents.get(owner)) is not None:
            self._fill(runtime)
        self.reply_when_written(session, frame, conv, written)

    def _closed_history(self, conv: ServiceConversation, owner: str | None) -> bytes:
        """The visitor's history with this conversation added (sticky routing, the rules' `history`)."""
        history = self._history(conv.visitor_key)
        history["conversations"] = history.get("conversations", 0) + 1
        if conv.sentiment is not None:
            history["sentiment_sum"] = history.get("sentiment_sum", 0.0) + conv.sentiment
            history["sentiment_n"] = history.get("sentiment_n", 0) + 1
        if owner:
            history["last_agent"] = owner
        return json.dumps(history).encode()

    def _watch(self, session: Device, frame: Watch) -> None:
        conv = self.open_conversation(session.user, frame.conversation_id)
        if not access.supervises(self, session.user, conv):
            raise Refusal(ErrorCode.FORBIDDEN, "only a supervisor of the conversation's group watches it")
        if frame.on and session.user not in conv.watchers:
            conv.watchers.append(session.user)
        elif not frame.on and session.user in conv.watchers:
            conv.watchers.remove(session.user)
        self.journal.write(conv, None, members=conv.members())
        written = self.journal.write_staff(
            conv, event("watching" if frame.on else "unwatched", supervisor=session.user)
        )
        self.reply_when_written(session, frame, conv, written)

    _handlers: dict[type, Callable[[Desk, Device, Any], None]] = {
        AgentStatus: _agent_status,
        OpenConversation: _open,
        Transfer: _transfer,
        EndConversation: _end,
        Watch: _watch,
        DraftDecision: lambda desk, session, frame: desk.assist.decide_draft(session, frame),
        Search: access.on_search,
        ConversationInfo: access.on_info,
    }

    # --- helpers -------------------------------------------------------------------------------------------

    def find(self, conversation_id: int) -> ServiceConversation | None:
        """An open or closed service conversation by id (closed ones may be read from the store)."""
        conv = self.open.get(conversation_id) or self.closed.get(conversation_id)
        if conv is None and is_service(conversation_id):
            raw = self.host.log.get_record("service", key(conversation_id))
            if raw is not None:
                conv = self._remember_closed(ServiceConversation.decode(raw))
        return conv

    def _remember_closed(self, conv: ServiceConversation) -> ServiceConversation:
        self.closed[conv.id] = conv
        if len(self.closed) > CLOSED_CACHE:
            del self.closed[next(iter(self.closed))]
        return conv

    def open_conversation(self, user: str, conversation_id: int) -> ServiceConversation:
        """The open conversation a request of `user` names, or a Refusal: NOT_FOUND if it never was or if `user` may
        not know of it (`access.known`: the same refusal for both), CONFLICT if it is closed."""
        conv = access.known(self, user, conversation_id)
        if conv.id not in self.open:
            raise Refusal(ErrorCode.CONFLICT, "closed")
        return conv

    def can_read(self, user: str, conversation_id: int) -> bool:
        """The core's SYNC check for non-members (section 13.12)."""
        return access.can_read(self, user, conversation_id)

    def check_send(self, user: str, conversation_id: int, content_type: int) -> ErrorCode | None:
        """The core's SEND check in the service range."""
        return access.check_send(self, user, conversation_id, content_type)

    def committed(self, result: SendResult) -> None:
        """A client's message in the service range is durable and delivered."""
        message = result.message
        if message is not None and message.conversation_id & STAFF_BIT and not result.duplicate:
            self._whispered(message.sender, message.conversation_id, message.seq)
        elif message is not None and not result.duplicate and (conv := self.open.get(message.conversation_id)):
            self.posted(conv, message.sender)
        self.assist.committed(result)

    def posted(self, conv: ServiceConversation, sender: str) -> None:
        """A new message of `sender` in `conv` is durable (a client's, or an agent's approved draft): the figures."""
        self.figures.message(conv, sender, self.now())

    def _whispered(self, sender: str, channel: int, seq: int) -> None:
        """A message in a staff channel: a supervisor's is a whisper to the agent, recorded (not its text)."""
        if self.profile(sender).role is Role.SUPERVISOR:
            details = {"channel": channel, "seq": seq}
            self.audit.record(sender, Action.WHISPER, str(channel & ~STAFF_BIT), details=details)

    def visitor_record(self, conv: ServiceConversation, *, last_agent: str) -> bytes:
        """The visitor's history record with a new last agent."""
        history = self._history(conv.visitor_key)
        history["last_agent"] = last_agent
        return json.dumps(history).encode()

    def reply_when_written(
        self, session: Device, frame: Frame, conv: ServiceConversation, written: asyncio.Future[SendResult],
        *, with_seq: bool = False,
    ) -> None:  # fmt: skip
        """RESULT once `written` is durable: the state, owner and group; the message's seq if `with_seq`."""

        def reply(future: asyncio.Future[SendResult]) -> None:
            result = future.result()
            seq = result.message.seq if with_seq and result.message is not None else 0
            detail = {"state": conv.state.name.lower(), "owner": conv.owner, "group": conv.group}
            self.answer(session, frame, ErrorCode(result.status), conversation_id=conv.id, seq=seq, detail=detail)

        written.add_done_callback(reply)

    def publish_figures(self) -> None:
        """Hand the metrics a snapshot of the queues, agents and counts (`kefu.server.service.figures`)."""
        self.host.publish_figures(self.current_figures())

    def current_figures(self) -> DeskFigures:
        """A snapshot of the queues, agents and counts now: what the metrics and the HTTP API's wall show."""
        groups = [(g.tenant, g.name) for g in self.directory.groups.values()]
        return self.figures.snapshot(self.router.waiting(), self.agents_known(), groups, self.open)

    def agents_known(self) -> list[AgentRuntime]:
        """Every agent the router knows, and the directory's agents not connected since the start (offline)."""
        known = self.router.agents
        return [*known.values(), *(a for a in self._configured_agents if a.name not in known)]

    def metric(self, name: str) -> None:
        """Count a service event (kefu_service_events)."""
        self.host.count(name)

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.host.background_error(task.exception())

    async def aclose(self) -> None:
        """Cancel background work and stop the workers."""
        for task in list(self._tasks):
            task.cancel()
        await self.assist.aclose()
        for engine in self.rules.values():
            engine.close()


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _decision_dict(decision: Any) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "group": decision.group,
        "agent": decision.agent,
        "priority": decision.priority,
        "skills": list(decision.skills),
        "note": decision.note,
    }
