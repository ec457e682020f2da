"""Who may read and write which service conversation (section 13.12), and the read requests: SEARCH and
CONVERSATION_INFO (sections 13.9, 13.11).

Membership (section 4) already decides who receives a conversation; these rules decide who may *read* one it is
not a member of (SYNC ranges, CONVERSATION_INFO) and who may SEND into one. A request naming a conversation its
sender may not know of (neither a member nor a reader) is refused exactly as one naming a conversation that does
not exist: NOT_FOUND with the reason NO_SUCH_CONVERSATION, so that no request probes which ids exist. The rules:

- a visitor: its own conversations, never a staff channel;
- an integration: its tenant's conversations, never a staff channel;
- an agent: those it owns or owned, and those of the groups it serves, of its tenant;
- a supervisor: those of the groups it oversees, of its tenant.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Coroutine
from typing import Any, Protocol

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import ContentType, ConversationInfo, Frame, Search, SearchHit, SearchResult

from ..engine.identity import Profile, Role
from ..engine.ports import Device, MessageLog, ServiceHost
from .directory import Directory
from .model import STAFF_BIT, Refusal, ServiceConversation
from .router import Router

__all__ = [
    "NO_SUCH_CONVERSATION",
    "DeskView",
    "can_read",
    "check_send",
    "integrates",
    "known",
    "may_end",
    "may_transfer",
    "on_info",
    "on_search",
    "search",
    "search_tenant",
    "supervises",
    "tenant_conv_key",
]


class DeskView(Protocol):
    """What these rules and requests read of the desk (`kefu.server.service.desk.Desk`)."""

    host: ServiceHost
    directory: Directory
    router: Router
    open: dict[int, ServiceConversation]

    def profile(self, user: str) -> Profile: ...
    def find(self, conversation_id: int) -> ServiceConversation | None: ...
    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...
    def answer(
        self, device: Device, frame: Frame, code: int, *, conversation_id: int = 0, seq: int = 0,
        detail: dict[str, Any] | None = None,
    ) -> None: ...  # fmt: skip


SEARCH_MAX_HITS = 50
"""Hits one SEARCH returns at most (a page of results on an agent's screen)."""
SEARCH_MAX_CONVERSATIONS = 200
"""An agent's most recent conversations a SEARCH looks through."""
SEARCH_MAX_MESSAGES = 20_000
"""Messages one SEARCH reads at most, so that a search costs a bounded slice of a worker thread."""
SNIPPET_CHARS = 80
"""Characters of context returned around a hit."""
VISITOR_FIELDS = ("id", "state", "group", "owner", "created_ms", "closed_ms")
"""What CONVERSATION_INFO shows the visitor side (no tags, sentiment or routing trace)."""

NO_SUCH_CONVERSATION = "no such conversation"
"""The reason of every refusal of a conversation that does not exist or that the requester may not know of: one
text for both, so that the RESULTs are the same bytes."""

_U64 = struct.Struct("!Q")
_ALL_ONES = (1 << 64) - 1


def can_read(desk: DeskView, user: str, conversation_id: int) -> bool:  # noqa: PLR0911 - one answer per role
    """Whether `user` may read a service conversation (or its staff channel) it is not a member of."""
    conv = desk.find(conversation_id & ~STAFF_BIT)
    if conv is None:
        return False
    staff = bool(conversation_id & STAFF_BIT)
    profile = desk.profile(user)
    directory = desk.directory
    match profile.role:
        case Role.VISITOR | Role.APP:
            return not staff and conv.visitor == user and not conv.customer
        case Role.INTEGRATION:
            return not staff and conv.tenant == profile.tenant
        case Role.AGENT:
            if user == conv.owner or user in conv.owners:
                return True
            entry = directory.agent(user)
            groups = (directory.group(conv.tenant, name) for name in conv.groups)
            return profile.tenant == conv.tenant and any(
                g is not None and directory.serves(entry, g, profile.tenant) for g in groups
            )
        case Role.SUPERVISOR:
            return profile.tenant == conv.tenant and bool(set(conv.groups) & directory.supervised_groups(user))
        case _:
            return False


def known(desk: DeskView, user: str, conversation_id: int) -> ServiceConversation:
    """The service conversation `conversation_id` names, if `user` may know of it (a member of it or a reader of
    it); else a Refusal, NOT_FOUND, the same whether it exists or not."""
    conv = desk.find(conversation_id)
    if conv is None or (user not in conv.members() and not can_read(desk, user, conversation_id)):
        raise Refusal(ErrorCode.NOT_FOUND, NO_SUCH_CONVERSATION)
    return conv


def check_send(desk: DeskView, user: str, conversation_id: int, content_type: int) -> ErrorCode | None:
    """A SEND into the service range: None if allowed, else the refusal code."""
    if content_type == ContentType.EVENT:
        # System messages (section 13.2) are the server's, from SYSTEM_SENDER: no client's SEND may look like one.
        # BAD_REQUEST, not FORBIDDEN: no identity may send it, so it is the request that is wrong, not the sender.
        return ErrorCode.BAD_REQUEST
    if conversation_id & STAFF_BIT:
        return None  # the staff channel's members (owner, watchers) are checked by the store
    conv = desk.open.get(conversation_id)
    if conv is not None and user in (conv.visitor, conv.owner):
        return None
    try:
        conv = known(desk, user, conversation_id)
    except Refusal as refusal:
        return ErrorCode(refusal.code)
    if conv.id not in desk.open:
        return ErrorCode.CONFLICT  # closed
    return ErrorCode.FORBIDDEN  # watchers read; they speak to the agent in the staff channel


def supervises(desk: DeskView, user: str, conv: ServiceConversation) -> bool:
    """Whether `user` is a supervisor of the conversation's group and of its tenant: who may watch, transfer and end
    it besides its participants (sections 13.2, 13.6, 13.7). The tenant is checked as well as the directory because
    the directory names supervisors by app id only, and an app of another tenant may bear a name it lists."""
    profile = desk.profile(user)
    return (
        profile.role is Role.SUPERVISOR
        and profile.tenant == conv.tenant
        and conv.group in desk.directory.supervised_groups(user)
    )


def integrates(desk: DeskView, user: str, conv: ServiceConversation) -> bool:
    """Whether `user` is an integration of the conversation's tenant (section 13.12)."""
    profile = desk.profile(user)
    return profile.role is Role.INTEGRATION and profile.tenant == conv.tenant


def may_transfer(desk: DeskView, user: str, conv: ServiceConversation) -> bool:
    """Who besides the owner may TRANSFER (section 13.6): a supervisor of its group, an integration of its tenant."""
    return supervises(desk, user, conv) or integrates(desk, user, conv)


def may_end(desk: DeskView, user: str, conv: ServiceConversation) -> bool:
    """The visitor side, the owner, or a supervisor of the conversation's group."""
    return user in (conv.visitor, conv.owner) or supervises(desk, user, conv)


def on_info(desk: DeskView, session: Device, frame: ConversationInfo) -> None:
    """CONVERSATION_INFO: the record as this user may see it."""
    conv = desk.find(frame.conversation_id & ~STAFF_BIT)
    if conv is None or not can_read(desk, session.user, frame.conversation_id):
        raise Refusal(ErrorCode.NOT_FOUND, NO_SUCH_CONVERSATION)
    detail: dict[str, Any] = conv.public()
    if desk.profile(session.user).role in (Role.VISITOR, Role.APP, Role.INTEGRATION):
        detail = {k: detail[k] for k in VISITOR_FIELDS}
    detail["position"] = desk.router.position(conv.id)
    desk.answer(session, frame, ErrorCode.OK, conversation_id=conv.id, detail=detail)


def on_search(desk: DeskView, session: Device, frame: Search) -> None:
    """SEARCH: an agent's conversations or an integration's tenant's; run in a worker thread; SEARCH_RESULT when
    done."""
    profile = desk.profile(session.user)
    if profile.role not in (Role.AGENT, Role.INTEGRATION):
        raise Refusal(ErrorCode.FORBIDDEN, "agents and integrations search")
    query = frame.query.strip().casefold()
    if not query:
        raise Refusal(ErrorCode.BAD_REQUEST, "empty query")
    limit = min(frame.limit or SEARCH_MAX_HITS, SEARCH_MAX_HITS)
    log, loop = desk.host.log, desk.host.loop
    if profile.role is Role.AGENT:
        found = loop.run_in_executor(None, search, log, session.user, query, limit)
    else:
        agents = tenant_agents(desk, profile.tenant)
        found = loop.run_in_executor(None, search_tenant, log, profile.tenant, agents, query, limit)
    desk.spawn(_send_hits(session, frame, found))


async def _send_hits(session: Device, frame: Search, found: asyncio.Future[tuple[list[SearchHit], bool]]) -> None:
    hits, more = await found
    session.send(SearchResult(tuple(hits), int(more), request_id=frame.request_id))


def tenant_conv_key(tenant: str, conversation_id: int) -> bytes:
    """The `tenant_convs` key of a conversation: tenant, 0x00, then the id's complement, so that a scan in key order
    meets a tenant's newest conversations first (ids are taken in order) and a bounded scan reads only those."""
    return tenant.encode() + b"\0" + _U64.pack(~conversation_id & _ALL_ONES)


def tenant_agents(desk: DeskView, tenant: str) -> tuple[str, ...]:
    """The agents of `tenant` the directory names or routing has seen: whose `agent_convs` an integration's SEARCH
    also looks through, for the conversations stored before `tenant_convs` existed."""
    names = set(desk.directory.agents) | set(desk.router.agents)
    return tuple(sorted(n for n in names if (p := desk.profile(n)).role is Role.AGENT and p.tenant == tenant))


def search(store: MessageLog, agent: str, query: str, limit: int) -> tuple[list[SearchHit], bool]:
    """Messages of the agent's conversations containing `query` (case-folded): newest conversations first, newest
    messages first; bounded by SEARCH_MAX_*. Runs in a worker thread (LMDB reads are thread-safe)."""
    prefix = agent.encode() + b"\0"
    conv_ids = sorted((_U64.unpack_from(k, len(prefix))[0] for k, _ in store.scan("agent_convs", prefix)), reverse=True)
    return _search_in(store, conv_ids, query, limit)


def search_tenant(
    store: MessageLog, tenant: str, agents: tuple[str, ...], query: str, limit: int
) -> tuple[list[SearchHit], bool]:
    """Messages of the tenant's service conversations containing `query`, as `search` (an integration's SEARCH).

    The newest SEARCH_MAX_CONVERSATIONS + 1 of `tenant_convs` (a bounded scan: newest first by its keys). A store
    written before that table existed has no entries there for its older conversations: those that an agent of the
    tenant owned are found through the agents' `agent_convs` (read only while the tenant has fewer indexed than that
    bound, so a store that has it costs one bounded scan), each checked against its stored record's tenant (an
    agent's tenant may have changed since); those that never had an owner are not searched. Runs in a worker thread.
    """
    prefix = tenant.encode() + b"\0"
    wanted = SEARCH_MAX_CONVERSATIONS + 1
    ids = {
        ~_U64.unpack_from(k, len(prefix))[0] & _ALL_ONES
        for k, _ in store.scan("tenant_convs", prefix, limit=wanted)
        if len(k) == len(prefix) + _U64.size  # not a longer tenant name that starts with this one and a 0x00
    }
    if len(ids) >= wanted:
        return _search_in(store, sorted(ids, reverse=True), query, limit)  # the index alone covers the bound
    for agent in agents:
        agent_prefix = agent.encode() + b"\0"
        for k, _ in store.scan("agent_convs", agent_prefix):
            conv_id = _U64.unpack_from(k, len(agent_prefix))[0]
            if conv_id not in ids and _of_tenant(store, conv_id, tenant):
                ids.add(conv_id)
    return _search_in(store, sorted(ids, reverse=True), query, limit)


def _of_tenant(store: MessageLog, conversation_id: int, tenant: str) -> bool:
    raw = store.get_record("service", _U64.pack(conversation_id))
    return raw is not None and ServiceConversation.decode(raw).tenant == tenant


def _search_in(store: MessageLog, conv_ids: list[int], query: str, limit: int) -> tuple[list[SearchHit], bool]:
    """The hits in `conv_ids` (newest first), bounded by SEARCH_MAX_*."""
    hits: list[SearchHit] = []
    budget = SEARCH_MAX_MESSAGES
    for conv_id in conv_ids[:SEARCH_MAX_CONVERSATIONS]:
        messages = store.read_range(conv_id, 0, 0, budget)
        budget -= len(messages)
        for message in reversed(messages):
            if message.content_type != ContentType.TEXT:
                continue
            text = message.body.decode("utf-8", "replace")
            at = text.casefold().find(query)
            if at >= 0:
                start = max(0, at - SNIPPET_CHARS // 2)
                hits.append(SearchHit(conv_id, message.seq, message.timestamp_ms, text[start : start + SNIPPET_CHARS]))
                if len(hits) >= limit:
                    return hits, True
        if budget <= 0:
            return hits, True
    return hits, len(conv_ids) > SEARCH_MAX_CONVERSATIONS
