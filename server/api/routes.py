"""The routes an integration, an agent or a supervisor calls (spec section 17; the contract is spec/openapi.json).

Each route that the protocol also offers builds the frame a client would send and hands it to the core
(`bridge.ask`): SEND, a SYNC range fetch, OPEN_CONVERSATION, TRANSFER, END_CONVERSATION, AGENT_STATUS, SEARCH,
CONVERSATION_INFO. The answer frame becomes the JSON reply, and a refusal the same code as over the protocol (its HTTP
status is the code's: 403 FORBIDDEN, 404 NOT_FOUND, ...). Conversation ids are JSON strings (they exceed 2^53).
The read-only figures (agent status, queues, the wall) are read from the desk on the event loop, filtered to the
caller's tenant.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from aiohttp import web

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import (
    AgentState,
    AgentStatus,
    ContentType,
    ConversationInfo,
    ConversationState,
    Deliver,
    EndConversation,
    Error,
    Frame,
    MetaEntry,
    OpenConversation,
    Opened,
    Result,
    Search,
    SearchResult,
    Send,
    Sync,
    SyncDone,
    Transfer,
)

from ..engine.core import MEMBERS_KEY
from ..engine.identity import Role
from ..service.figures import DeskFigures
from .bridge import Answer, ApiEndpoint, ask
from .context import ApiContext, ApiError, Caller, caller_of

__all__ = ["ENDPOINT_KEY", "add_routes", "json_body", "reply"]

ENDPOINT_KEY = web.AppKey("kefu.api.endpoint", ApiEndpoint)
CONTEXT_KEY = web.AppKey("kefu.api.context", ApiContext)
HISTORY_MAX = 500
"""Messages one history request returns at most (the core also caps a fetch at [delivery] sync_max_limit)."""
NEGATIVE_SENTIMENT = 0.35
"""A conversation whose sentiment (0 negative .. 1 positive) is below this is listed on the wall."""
CONTENT_TYPES = {"text": ContentType.TEXT, "json": ContentType.JSON, "binary": ContentType.BINARY}
_CONTENT_NAMES = {int(v): k for k, v in CONTENT_TYPES.items()} | {int(ContentType.EVENT): "event"}
_STATES = {s.name.lower(): s for s in AgentState}


def reply(data: Any, status: int = 200) -> web.Response:
    """A JSON response."""
    return web.json_response(data, status=status, dumps=lambda d: json.dumps(d, ensure_ascii=False))


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; ApiError 400 MALFORMED_JSON if it is not one."""
    raw = await request.read()
    try:
        data = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "MALFORMED_JSON", "the body is not JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "MALFORMED_JSON", "the body is not a JSON object")
    return data


def _field(data: dict[str, Any], name: str, kind: type, default: Any = None, *, required: bool = False) -> Any:
    value = data.get(name, default)
    if value is None and required:
        raise ApiError(400, "BAD_REQUEST", f"{name} is required")
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        raise ApiError(400, "BAD_REQUEST", f"{name} must be of type {kind.__name__}")
    return value


def conversation_id(value: Any) -> int:
    """A conversation id from a path or JSON (a decimal string or an integer)."""
    try:
        number = int(value) if isinstance(value, str | int) and not isinstance(value, bool) else -1
    except ValueError:
        number = -1
    if not 0 < number < 1 << 64:
        raise ApiError(400, "BAD_REQUEST", "a conversation id is a decimal u64 above 0")
    return number


def client_id(value: Any, name: str) -> bytes:
    """A client_msg_id or client_ref: 32 hex digits are the protocol's 16 bytes as they are (so that an id is the
    same over both paths); any other text of 1-64 characters is hashed to 16 bytes (SHA-256)."""
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or not value.isprintable():
        raise ApiError(400, "BAD_REQUEST", f"{name}: 1-64 printable characters")
    try:
        if len(value) == 32:
            return bytes.fromhex(value)
    except ValueError:
        pass
    return hashlib.sha256(value.encode()).digest()[:16]


def _ctx(request: web.Request) -> ApiContext:
    return request.app[CONTEXT_KEY]


async def _ask(request: web.Request, frame: Frame) -> Answer:
    ctx = _ctx(request)
    try:
        answer = await ask(ctx.core, request.app[ENDPOINT_KEY], caller_of(request).app_id, frame)
    except TimeoutError:
        raise ApiError(504, "TIMEOUT", "the server did not answer in time") from None
    final = answer.final
    if isinstance(final, Error):
        raise refusal(final.code, final.reason)
    if isinstance(final, Result) and final.status != ErrorCode.OK:
        raise refusal(final.status, _detail(final).get("reason", ""))
    return answer


def refusal(code: int, reason: str) -> ApiError:
    """A protocol refusal as an ApiError: the code's name, and its number as the HTTP status where it is one."""
    try:
        name = ErrorCode(code).name
    except ValueError:
        name = "INTERNAL_ERROR"
    status = code if 400 <= code < 500 or code in (500, 503) else 503 if code in (505, 507) else 500
    return ApiError(status, name, reason or name.lower())


def _detail(result: Result) -> dict[str, Any]:
    try:
        detail = json.loads(result.detail or b"{}")
    except ValueError:
        return {}
    return detail if isinstance(detail, dict) else {}


# --- messages -----------------------------------------------------------------------------------------------


async def send_message(request: web.Request) -> web.Response:
    """POST /v1/messages: SEND as the calling app (idempotent by client_msg_id)."""
    data = await json_body(request)
    body, content_type = _message_body(data)
    metadata = []
    to = _field(data, "to", list, [])
    if to:
        if not all(isinstance(m, str) and m and "," not in m for m in to):
            raise ApiError(400, "BAD_REQUEST", "to: a list of app ids")
        metadata.append(MetaEntry(MEMBERS_KEY, ",".join(to).encode()))
    send = Send(
        client_id(data.get("client_msg_id"), "client_msg_id"),
        conversation_id(data.get("conversation_id")),
        content_type,
        body,
        tuple(metadata),
    )
    answer = await _ask(request, send)
    result = answer.send_result
    if result is None or result.status != ErrorCode.OK or result.message is None:
        code = result.status if result is not None else int(ErrorCode.INTERNAL_ERROR)
        raise refusal(code, "")
    message = result.message
    out = {
        "conversation_id": str(message.conversation_id),
        "seq": message.seq,
        "server_msg_id": str(message.server_msg_id),
        "timestamp_ms": message.timestamp_ms,
        "duplicate": result.duplicate,
    }
    return reply(out, 200 if result.duplicate else 201)


def _message_body(data: dict[str, Any]) -> tuple[bytes, ContentType]:
    text, b64 = _field(data, "text", str), _field(data, "body_base64", str)
    if (text is None) == (b64 is None):
        raise ApiError(400, "BAD_REQUEST", "give exactly one of text and body_base64")
    name = _field(data, "content_type", str, "text" if text is not None else "binary")
    if name not in CONTENT_TYPES:
        raise ApiError(400, "BAD_REQUEST", f"content_type: one of {', '.join(CONTENT_TYPES)}")
    if text is not None:
        return text.encode(), CONTENT_TYPES[name]
    try:
        return base64.b64decode(b64, validate=True), CONTENT_TYPES[name]
    except ValueError:
        raise ApiError(400, "BAD_REQUEST", "body_base64 is not base64") from None


async def history(request: web.Request) -> web.Response:
    """GET /v1/conversations/{id}/messages: a range of the conversation (a SYNC fetch), for readers of it."""
    conv = conversation_id(request.match_info["id"])
    after, limit = _int_query(request, "after", 0), _int_query(request, "limit", 100)
    limit = max(1, min(limit, HISTORY_MAX))
    answer = await _ask(request, Sync(conv, after, (1 << 64) - 1, limit))
    done = answer.final
    assert isinstance(done, SyncDone)
    messages = [_message_json(d) for d in answer.delivered]
    out = {"conversation_id": str(conv), "messages": messages, "last_seq": done.last_seq}
    return reply({**out, "more": bool(done.more)})


def _message_json(d: Deliver) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seq": d.seq,
        "server_msg_id": str(d.server_msg_id),
        "timestamp_ms": d.timestamp_ms,
        "sender": d.sender,
        "content_type": _CONTENT_NAMES.get(d.content_type, str(d.content_type)),
        "client_msg_id": d.client_msg_id.hex(),
    }
    if d.content_type in (ContentType.TEXT, ContentType.JSON, ContentType.EVENT):
        out["text"] = d.body.decode("utf-8", "replace")
    else:
        out["body_base64"] = base64.b64encode(d.body).decode()
    return out


def _int_query(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or len(text) > 20:
        raise ApiError(400, "BAD_REQUEST", f"{name} is a non-negative integer")
    return min(int(text), (1 << 64) - 1)


# --- customer service ---------------------------------------------------------------------------------------


async def open_conversation(request: web.Request) -> web.Response:
    """POST /v1/conversations: OPEN_CONVERSATION (an integration names the customer it acts for)."""
    data = await json_body(request)
    attributes = _field(data, "attributes", dict, {})
    if not all(isinstance(v, str) for v in attributes.values()):
        raise ApiError(400, "BAD_REQUEST", "attributes: string values")
    frame = OpenConversation(
        client_id(data.get("client_ref"), "client_ref"),
        _field(data, "customer", str, ""),
        _field(data, "group", str, ""),
        tuple(MetaEntry(k, v.encode()) for k, v in attributes.items()),
        _field(data, "first_message", str, "").encode(),
    )
    final = (await _ask(request, frame)).final
    assert isinstance(final, Opened)
    state = _conversation_state(final.state)
    out = {"conversation_id": str(final.conversation_id), "state": state, "group": final.group}
    return reply({**out, "agent": final.agent or None, "position": final.position}, 201)


def _conversation_state(value: int) -> str:
    try:
        return ConversationState(value).name.lower()
    except ValueError:
        return str(value)


async def conversation_info(request: web.Request) -> web.Response:
    """GET /v1/conversations/{id}: CONVERSATION_INFO."""
    conv = conversation_id(request.match_info["id"])
    final = (await _ask(request, ConversationInfo(conv))).final
    assert isinstance(final, Result)
    detail = _detail(final)
    for key in ("id", "staff_channel"):
        if key in detail:
            detail[key] = str(detail[key])
    return reply(detail)


async def transfer(request: web.Request) -> web.Response:
    """POST /v1/conversations/{id}/transfer: TRANSFER to an agent or a group."""
    conv = conversation_id(request.match_info["id"])
    data = await json_body(request)
    frame = Transfer(
        conv,
        _field(data, "expect_owner", str, ""),
        _field(data, "to_agent", str, ""),
        _field(data, "to_group", str, ""),
        _field(data, "note", str, ""),
    )
    return reply(_result_json(await _ask(request, frame)))


async def end(request: web.Request) -> web.Response:
    """POST /v1/conversations/{id}/end: END_CONVERSATION."""
    conv = conversation_id(request.match_info["id"])
    data = await json_body(request)
    frame = EndConversation(conv, _field(data, "reason", str, ""))
    return reply(_result_json(await _ask(request, frame)))


def _result_json(answer: Answer) -> dict[str, Any]:
    final = answer.final
    assert isinstance(final, Result)
    return {"conversation_id": str(final.conversation_id), **_detail(final)}


async def search(request: web.Request) -> web.Response:
    """GET /v1/search?q=...: SEARCH (agents in the conversations they served, integrations in their tenant's)."""
    query = request.query.get("q", "")
    limit = max(0, min(_int_query(request, "limit", 20), 50))
    final = (await _ask(request, Search(query, limit))).final
    assert isinstance(final, SearchResult)
    hits = [
        {"conversation_id": str(h.conversation_id), "seq": h.seq, "timestamp_ms": h.timestamp_ms, "snippet": h.snippet}
        for h in final.hits
    ]
    return reply({"hits": hits, "more": bool(final.more)})


async def put_agent_status(request: web.Request) -> web.Response:
    """PUT /v1/agents/{name}/status: AGENT_STATUS; an agent sets its own."""
    caller, name = caller_of(request), request.match_info["name"]
    if name != caller.app_id:
        raise ApiError(403, "FORBIDDEN", "an agent sets its own status")
    data = await json_body(request)
    status = _field(data, "status", str, required=True)
    if status not in _STATES:
        raise ApiError(400, "BAD_REQUEST", f"status: one of {', '.join(_STATES)}")
    final = (await _ask(request, AgentStatus(_STATES[status]))).final
    assert isinstance(final, Result)
    return reply(_agent_json(_ctx(request), name))


async def get_agent_status(request: web.Request) -> web.Response:
    """GET /v1/agents/{name}/status: the agent itself, or a supervisor or integration of its tenant."""
    caller, name = caller_of(request), request.match_info["name"]
    ctx = _ctx(request)
    if name != caller.app_id:
        profile = ctx.desk.profile(name)
        staff = caller.role in (Role.SUPERVISOR, Role.INTEGRATION) and profile.role is Role.AGENT
        if not (staff and profile.tenant == caller.tenant) and not caller.admin:
            raise ApiError(404, "NOT_FOUND", "no such agent")
    return reply(_agent_json(ctx, name))


def _agent_json(ctx: ApiContext, name: str) -> dict[str, Any]:
    runtime = ctx.desk.router.agents.get(name)
    if runtime is None:
        return {"agent": name, "status": "offline", "set_status": "offline", "connected": False, "load": 0}
    shown = runtime.status.name.lower() if runtime.devices else "offline"
    capacity = ctx.desk.router.capacity(name)
    return {
        "agent": name,
        "status": shown,
        "set_status": runtime.status.name.lower(),
        "connected": runtime.devices > 0,
        "load": len(runtime.conversations),
        "capacity": capacity,
    }


# --- figures -------------------------------------------------------------------------------------------------


def _tenants_seen(caller: Caller) -> str | None:
    """The tenant whose figures the caller sees (None: every tenant, for an admin)."""
    if caller.admin:
        return None
    if caller.role not in (Role.SUPERVISOR, Role.INTEGRATION, Role.AGENT):
        raise ApiError(403, "FORBIDDEN", "staff and integrations see queue figures")
    return caller.tenant


async def queues(request: web.Request) -> web.Response:
    """GET /v1/queues: each group's waiting count, longest wait and abandoned count."""
    tenant = _tenants_seen(caller_of(request))
    return reply({"groups": _groups(_ctx(request), tenant)})


def _groups(ctx: ApiContext, tenant: str | None, figures: DeskFigures | None = None) -> list[dict[str, Any]]:
    figures = figures or ctx.desk.current_figures()
    now = ctx.clock()
    rows = []
    for (group_tenant, group), f in sorted(figures.groups.items()):
        if tenant is not None and group_tenant != tenant:
            continue
        wait = round(max(0.0, now - f.oldest_since), 3) if f.oldest_since is not None else 0.0
        answered = sum(f.answer_counts)
        rows.append(
            {
                "tenant": group_tenant,
                "group": group,
                "waiting": f.waiting,
                "longest_wait_s": wait,
                "abandoned": f.abandoned,
                "first_answers": answered,
                "first_answer_avg_s": round(f.answer_sum / answered, 3) if answered else None,
            }
        )
    return rows


async def wall(request: web.Request) -> web.Response:
    """GET /v1/wall: the supervisor wall (per tenant and group: waiting and longest wait; agents by state and load;
    open conversations with negative sentiment), from the same `DeskFigures` as the kefu_service_* metrics."""
    caller = caller_of(request)
    if not caller.admin and caller.role is not Role.SUPERVISOR:
        raise ApiError(403, "FORBIDDEN", "supervisors see the wall")
    tenant = None if caller.admin else caller.tenant
    ctx = _ctx(request)
    figures = ctx.desk.current_figures()
    states = [
        {"tenant": t, "state": s, "count": n} for (t, s), n in sorted(figures.agents.items()) if tenant in (None, t)
    ]
    agents = [
        {"tenant": a.tenant, "name": a.name, **_load(ctx, a.name)}
        for a in sorted(ctx.desk.agents_known(), key=lambda a: (a.tenant, a.name))
        if tenant in (None, a.tenant)
    ]
    negative = [
        {
            "conversation_id": str(c.id), "tenant": c.tenant, "group": c.group, "owner": c.owner,
            "sentiment": c.sentiment, "state": c.state.name.lower(),
        }
        for c in ctx.desk.open.values()
        if c.sentiment is not None and c.sentiment < NEGATIVE_SENTIMENT and tenant in (None, c.tenant)
    ]  # fmt: skip
    groups = _groups(ctx, tenant, figures)
    out = {"at": round(ctx.clock(), 3), "groups": groups, "agents_by_state": states, "agents": agents}
    return reply({**out, "negative": negative, "negative_below": NEGATIVE_SENTIMENT})


def _load(ctx: ApiContext, name: str) -> dict[str, Any]:
    status = _agent_json(ctx, name)
    return {"state": status["status"], "load": status["load"], "capacity": ctx.desk.router.capacity(name)}


def add_routes(app: web.Application, ctx: ApiContext) -> None:
    """The integration, agent and supervisor routes."""
    app[CONTEXT_KEY] = ctx
    app[ENDPOINT_KEY] = ApiEndpoint()
    app.router.add_post("/v1/messages", send_message)
    app.router.add_post("/v1/conversations", open_conversation)
    app.router.add_get("/v1/conversations/{id}", conversation_info)
    app.router.add_get("/v1/conversations/{id}/messages", history)
    app.router.add_post("/v1/conversations/{id}/transfer", transfer)
    app.router.add_post("/v1/conversations/{id}/end", end)
    app.router.add_get("/v1/search", search)
    app.router.add_get("/v1/agents/{name}/status", get_agent_status)
    app.router.add_put("/v1/agents/{name}/status", put_agent_status)
    app.router.add_get("/v1/queues", queues)
    app.router.add_get("/v1/wall", wall)
