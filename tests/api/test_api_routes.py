"""The HTTP API's routes against a real `kefu serve` (one process, and a core with a gateway process): what an
integration, an agent, a supervisor and an admin do, tenant isolation, roles, idempotent SEND, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import socket
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kefu.client import Client, decode_secret
from kefu.server.webhooks.events import EventType

from .conftest import ADMIN, BANK_ORIGIN, Api, Reply
from .openapi_check import document

_refs = itertools.count()


def ref(prefix: str) -> str:
    """A client_ref / client_msg_id / customer not used before in this module."""
    return f"{prefix}-{next(_refs)}"


def open_for(api: Api, app: str = "bankapp", **extra: Any) -> str:
    """A conversation an integration opens for a new customer; its id."""
    body = {"customer": ref("cust"), "client_ref": ref("open"), "first_message": "我想咨询贷款", **extra}
    reply = api.call(app, "POST", "/v1/conversations", body)
    assert reply.status == 201, reply.body
    conversation_id: str = reply.body["conversation_id"]
    return conversation_id


def test_an_integration_opens_sends_reads_and_ends(api: Api) -> None:
    conv = open_for(api)
    info = api.call("bankapp", "GET", f"/v1/conversations/{conv}")
    assert info.status == 200 and info.body["id"] == conv and info.body["state"] == "waiting"
    assert "trace" not in info.body  # the visitor side's fields only, as over the protocol

    send = {"conversation_id": conv, "client_msg_id": ref("msg"), "text": "您的申请已受理"}
    first = api.call("bankapp", "POST", "/v1/messages", send)
    assert first.status == 201 and first.body["duplicate"] is False
    again = api.call("bankapp", "POST", "/v1/messages", send)
    assert again.status == 200 and again.body["duplicate"] is True
    assert again.body["seq"] == first.body["seq"] and again.body["server_msg_id"] == first.body["server_msg_id"]

    history = api.call("bankapp", "GET", f"/v1/conversations/{conv}/messages?after=0&limit=100")
    assert history.status == 200
    texts = [m["text"] for m in history.body["messages"] if m["sender"] == "bankapp"]
    assert texts == ["我想咨询贷款", "您的申请已受理"]  # the repeat was stored once
    assert history.body["last_seq"] == history.body["messages"][-1]["seq"] and history.body["more"] is False
    after = api.call("bankapp", "GET", f"/v1/conversations/{conv}/messages?after={first.body['seq']}")
    assert all(m["seq"] > first.body["seq"] for m in after.body["messages"])

    ended = api.call("bankapp", "POST", f"/v1/conversations/{conv}/end", {"reason": "resolved"})
    assert ended.status == 200 and ended.body["state"] == "closed"
    late = api.call("bankapp", "POST", "/v1/messages", {**send, "client_msg_id": ref("msg")})
    assert (late.status, late.code) == (409, "CONFLICT")


def test_the_open_is_idempotent_by_client_ref(api: Api) -> None:
    body = {"customer": ref("cust"), "client_ref": ref("open"), "first_message": "hello"}
    first = api.call("bankapp", "POST", "/v1/conversations", body)
    second = api.call("bankapp", "POST", "/v1/conversations", body)
    assert first.status == second.status == 201
    assert first.body["conversation_id"] == second.body["conversation_id"]


def test_a_conversation_between_apps_is_created_by_its_first_message(api: Api) -> None:
    conv = str(int.from_bytes(ref("plain").encode()[:6], "big") + 1000)
    send = {"conversation_id": conv, "client_msg_id": ref("msg"), "text": "hi", "to": ["v2"]}
    created = api.call("v1", "POST", "/v1/messages", send)
    assert created.status == 201 and created.body["seq"] == 1
    read = api.call("v2", "GET", f"/v1/conversations/{conv}/messages")
    assert [m["text"] for m in read.body["messages"]] == ["hi"]
    outsider = api.call("v3", "GET", f"/v1/conversations/{conv}/messages")
    assert (outsider.status, outsider.code) == (404, "NOT_FOUND")


def test_an_integration_of_another_tenant_sees_nothing(api: Api) -> None:
    conv = open_for(api)
    for method, target, body in [
        ("GET", f"/v1/conversations/{conv}/messages", None),
        ("GET", f"/v1/conversations/{conv}", None),
        ("POST", "/v1/messages", {"conversation_id": conv, "client_msg_id": ref("m"), "text": "x"}),
        ("POST", f"/v1/conversations/{conv}/transfer", {"to_group": "other-general"}),
        ("POST", f"/v1/conversations/{conv}/end", {}),
    ]:
        reply = api.call("otherapp", method, target, body)
        assert (reply.status, reply.code) == (404, "NOT_FOUND"), (method, target, reply.body)
    # and the same answer as for a conversation that does not exist
    missing = api.call("otherapp", "GET", "/v1/conversations/4611686018427387000/messages")
    assert missing.body == api.call("otherapp", "GET", f"/v1/conversations/{conv}/messages").body
    groups = api.call("otherapp", "GET", "/v1/queues").body["groups"]
    assert groups and {g["tenant"] for g in groups} == {"other"}


def test_roles_decide_as_over_the_protocol(api: Api) -> None:
    for app in ("v1", "sup", "bankapp", "a1"):
        for method, target in [("GET", "/v1/admin/apps"), ("GET", "/v1/admin/keys"), ("GET", "/v1/admin/sessions")]:
            reply = api.call(app, method, target)
            assert (reply.status, reply.code) == (403, "ADMIN_REQUIRED"), (app, target)
    assert api.call("v1", "GET", "/v1/wall").code == "FORBIDDEN"
    assert api.call("bankapp", "GET", "/v1/wall").code == "FORBIDDEN"
    assert api.call("v1", "GET", "/v1/queues").code == "FORBIDDEN"
    no_customer = api.call("bankapp", "POST", "/v1/conversations", {"client_ref": ref("o")})
    assert (no_customer.status, no_customer.code) == (400, "BAD_REQUEST")
    not_for_others = api.call("v1", "POST", "/v1/conversations", {"client_ref": ref("o"), "customer": "c"})
    assert (not_for_others.status, not_for_others.code) == (403, "FORBIDDEN")
    agent_opens = api.call("a1", "POST", "/v1/conversations", {"client_ref": ref("o")})
    assert agent_opens.code == "FORBIDDEN"
    assert api.call("v1", "PUT", "/v1/agents/v1/status", {"status": "online"}).code == "FORBIDDEN"
    assert api.call("a1", "PUT", "/v1/agents/a2/status", {"status": "online"}).code == "FORBIDDEN"
    for app in ("v1", "sup"):  # agents and integrations search, as over the protocol
        assert api.call(app, "GET", "/v1/search?q=x").code == "FORBIDDEN"
    visitor_conv = api.call("v4", "POST", "/v1/conversations", {"client_ref": ref("o"), "first_message": "hi"})
    conv = visitor_conv.body["conversation_id"]
    assert api.call("v5", "POST", f"/v1/conversations/{conv}/end", {}).code == "NOT_FOUND"
    assert api.call("v4", "POST", f"/v1/conversations/{conv}/end", {}).status == 200


@contextlib.asynccontextmanager
async def online_agent(api: Api, name: str) -> AsyncIterator[Reply]:
    """The agent `name` connected over the protocol and set online over HTTP (its status reply); closed after."""
    server = api.server
    agent = Client("127.0.0.1", server.port, app_id=name, app_secret=api.secrets[name], server_pins=server.pins,
                   reconnect=False)  # fmt: skip
    await agent.connect()
    try:
        status = await asyncio.to_thread(api.call, name, "PUT", f"/v1/agents/{name}/status", {"status": "online"})
        assert status.status == 200 and status.body["connected"] is True
        yield status
    finally:
        await agent.close()


@pytest.mark.asyncio
async def test_an_agent_gets_a_routed_conversation_and_the_wall_shows_it(api: Api) -> None:
    async with online_agent(api, "s1") as status:
        assert status.body["status"] == "online"
        conv = await asyncio.to_thread(open_for, api, group="senior")  # s1 alone serves it
        info = await asyncio.to_thread(api.call, "sup", "GET", f"/v1/conversations/{conv}")
        assert info.body["owner"] == "s1" and info.body["state"] == "assigned"
        seen = await asyncio.to_thread(api.call, "sup", "GET", "/v1/agents/s1/status")
        assert seen.body["load"] == 1 and seen.body["capacity"] == 2
        wall = await asyncio.to_thread(api.call, "sup", "GET", "/v1/wall")
        assert wall.status == 200
        assert {g["tenant"] for g in wall.body["groups"]} == {"bank"}
        [mine] = [a for a in wall.body["agents"] if a["name"] == "s1"]
        assert (mine["state"], mine["load"], mine["capacity"]) == ("online", 1, 2)
        [online] = [s for s in wall.body["agents_by_state"] if s["state"] == "online"]
        assert online["count"] >= 1
        other = await asyncio.to_thread(api.call, "otherapp", "GET", "/v1/agents/s1/status")
        assert (other.status, other.code) == (404, "NOT_FOUND")
        # the agent replies over HTTP, then finds its message with a search
        word = ref("needle")
        said = {"conversation_id": conv, "client_msg_id": ref("m"), "text": f"look {word} here"}
        assert (await asyncio.to_thread(api.call, "s1", "POST", "/v1/messages", said)).status == 201
        hits = await asyncio.to_thread(api.call, "s1", "GET", f"/v1/search?q={word}")
        assert [h["conversation_id"] for h in hits.body["hits"]] == [conv]
        moved = await asyncio.to_thread(
            api.call, "sup", "POST", f"/v1/conversations/{conv}/transfer", {"to_group": "backup", "note": "api"}
        )
        assert moved.status == 200 and moved.body["group"] == "backup"
        ended = await asyncio.to_thread(api.call, "sup", "POST", f"/v1/conversations/{conv}/end", {"reason": "x"})
        assert ended.body["state"] == "closed"


@pytest.mark.asyncio
async def test_an_integration_transfers_and_searches_within_its_tenant(api: Api) -> None:
    async with online_agent(api, "b1"):
        word = ref("ledger")
        conv = await asyncio.to_thread(open_for, api, first_message=f"my {word} question")
        to_agent = {"to_agent": "b1", "note": "from the bank"}
        moved = await asyncio.to_thread(api.call, "bankapp", "POST", f"/v1/conversations/{conv}/transfer", to_agent)
        assert (moved.status, moved.body["owner"]) == (200, "b1"), moved.body
        info = await asyncio.to_thread(api.call, "sup", "GET", f"/v1/conversations/{conv}")
        [step] = [t for t in info.body["trace"] if t.get("step") == "transfer"]
        assert (step["by"], step["to"], step["note"]) == ("bankapp", "b1", "from the bank")
        to_group = {"to_group": "backup"}
        moved = await asyncio.to_thread(api.call, "bankapp", "POST", f"/v1/conversations/{conv}/transfer", to_group)
        assert moved.status == 200 and (moved.body["group"], moved.body["owner"]) == ("backup", None)  # not back to b1

        # another tenant's integration: refused exactly as a conversation that does not exist
        theirs = await asyncio.to_thread(api.call, "otherapp", "POST", f"/v1/conversations/{conv}/transfer", to_group)
        missing = await asyncio.to_thread(
            api.call, "otherapp", "POST", "/v1/conversations/4611686018427387000/transfer", to_group
        )
        assert (theirs.status, theirs.code) == (404, "NOT_FOUND") and theirs.body == missing.body

        # search: the tenant's conversations, whoever opened them; never another tenant's
        visitor = {"client_ref": ref("o"), "first_message": f"a visitor's {word}"}
        by_visitor = (await asyncio.to_thread(api.call, "v2", "POST", "/v1/conversations", visitor)).body
        other = await asyncio.to_thread(open_for, api, "otherapp", first_message=f"their {word}")
        hits = (await asyncio.to_thread(api.call, "bankapp", "GET", f"/v1/search?q={word}")).body
        assert [(h["conversation_id"], h["snippet"]) for h in hits["hits"]] == [
            (by_visitor["conversation_id"], f"a visitor's {word}"), (conv, f"my {word} question"),
        ]  # fmt: skip
        theirs_hits = (await asyncio.to_thread(api.call, "otherapp", "GET", f"/v1/search?q={word}")).body
        assert [h["conversation_id"] for h in theirs_hits["hits"]] == [other]


@pytest.mark.asyncio
async def test_admin_apps_keys_and_sessions(api: Api) -> None:
    listed = api.call(ADMIN, "GET", "/v1/admin/apps")
    assert listed.status == 200 and {"bankapp", "a1", ADMIN} <= {a["app_id"] for a in listed.body["apps"]}
    name = ref("newbank")
    added = api.call(ADMIN, "POST", "/v1/admin/apps", {"app_id": name, "role": "integration", "tenant": "bank"})
    assert added.status == 201 and added.body["role"] == "integration"
    api.secrets[name] = decode_secret(added.body["secret"])
    assert api.call(name, "GET", "/v1/queues").status == 200  # the new secret works at once
    again = api.call(ADMIN, "POST", "/v1/admin/apps", {"app_id": name})
    assert (again.status, again.code) == (409, "CONFLICT")
    assert api.call(ADMIN, "POST", "/v1/admin/apps", {"app_id": "x", "role": "root"}).code == "BAD_REQUEST"

    keys = api.call(ADMIN, "GET", "/v1/admin/keys")
    assert {k["type"] for k in keys.body["keys"]} == {"sm2", "ed25519"}
    new_key = api.call(ADMIN, "POST", "/v1/admin/keys", {"types": ["ed25519"]})
    assert new_key.status == 201 and new_key.body["added"][0]["type"] == "ed25519"
    assert len(api.call(ADMIN, "GET", "/v1/admin/keys").body["keys"]) == len(keys.body["keys"]) + 1
    signing = next(k["pin"] for k in keys.body["keys"] if k["type"] == "sm2")
    refused = api.call(ADMIN, "DELETE", f"/v1/admin/keys/{signing}")  # the only sm2 key: it signs
    assert (refused.status, refused.code) == (409, "CONFLICT")
    old_ed25519 = next(k["pin"] for k in keys.body["keys"] if k["type"] == "ed25519")
    # its successor was added after this server started: it still signs with the old one
    assert api.call(ADMIN, "DELETE", f"/v1/admin/keys/{old_ed25519}").code == "CONFLICT"
    assert api.call(ADMIN, "DELETE", "/v1/admin/keys/sm2:" + "0" * 64).code == "NOT_FOUND"

    server = api.server
    client = Client("127.0.0.1", server.port, app_id="v3", app_secret=api.secrets["v3"], server_pins=server.pins,
                    reconnect=False)  # fmt: skip
    await client.connect()
    try:
        sessions = await asyncio.to_thread(api.call, ADMIN, "GET", "/v1/admin/sessions?app=v3")
        assert sessions.status == 200 and [s["app"] for s in sessions.body["sessions"]] == ["v3"]
        ended = await asyncio.to_thread(api.call, ADMIN, "DELETE", "/v1/admin/sessions/v3")
        assert ended.status == 200 and ended.body["app_id"] == "v3"
        async with asyncio.timeout(10):
            while (await asyncio.to_thread(api.call, ADMIN, "GET", "/v1/admin/sessions?app=v3")).body["sessions"]:
                await asyncio.sleep(0.1)
    finally:
        await client.close()
    assert api.call(ADMIN, "DELETE", "/v1/admin/sessions/nobody").code == "NOT_FOUND"
    too_long = "x" * 600  # not an app id the store can hold: refused as bad input, not an internal error
    assert api.call(ADMIN, "DELETE", f"/v1/admin/sessions/{too_long}").status == 400
    assert api.call(ADMIN, "DELETE", f"/v1/admin/apps/{too_long}").status == 400
    assert api.call(ADMIN, "POST", "/v1/admin/apps", {"app_id": too_long}).status == 400

    revoked = api.call(ADMIN, "DELETE", f"/v1/admin/apps/{name}")
    assert revoked.status == 200 and revoked.body["revoked"] is True
    gone = api.call(name, "GET", "/v1/queues")
    assert (gone.status, gone.code) == (401, "AUTH_FAILED")
    assert api.call(ADMIN, "DELETE", f"/v1/admin/apps/{name}").code == "NOT_FOUND"


def test_bad_input_gets_a_specific_code(api: Api) -> None:
    cases: list[tuple[str, str, Any, int, str]] = [
        ("POST", "/v1/messages", b"{not json", 400, "MALFORMED_JSON"),
        ("POST", "/v1/messages", b"[1, 2]", 400, "MALFORMED_JSON"),
        ("POST", "/v1/messages", b"\xff\xfe", 400, "MALFORMED_JSON"),
        ("POST", "/v1/messages", {"conversation_id": "abc", "client_msg_id": "m", "text": "x"}, 400, "BAD_REQUEST"),
        ("POST", "/v1/messages", {"conversation_id": "0", "client_msg_id": "m", "text": "x"}, 400, "BAD_REQUEST"),
        ("POST", "/v1/messages", {"conversation_id": "5", "client_msg_id": "", "text": "x"}, 400, "BAD_REQUEST"),
        ("POST", "/v1/messages", {"conversation_id": "5", "client_msg_id": "m"}, 400, "BAD_REQUEST"),
        ("POST", "/v1/messages", {"conversation_id": "5", "client_msg_id": "m", "text": 7}, 400, "BAD_REQUEST"),
        ("POST", "/v1/messages", {"conversation_id": "5", "client_msg_id": "m", "body_base64": "!"}, 400, "BAD_REQUEST"),  # noqa: E501
        ("POST", "/v1/messages", {"conversation_id": 1 << 70, "client_msg_id": "m", "text": "x"}, 400, "BAD_REQUEST"),
        ("GET", "/v1/conversations/12/messages?after=-1", None, 400, "BAD_REQUEST"),
        ("GET", "/v1/conversations/x/messages", None, 400, "BAD_REQUEST"),
        ("PUT", "/v1/agents/a1/status", {"status": "asleep"}, 400, "BAD_REQUEST"),
        ("GET", "/v1/nothing-here", None, 404, "NOT_FOUND"),
        ("DELETE", "/v1/messages", None, 405, "METHOD_NOT_ALLOWED"),
    ]  # fmt: skip
    for method, target, body, status, code in cases:
        app = "a1" if "agents" in target else "bankapp"
        reply = api.call(app, method, target, body)
        assert (reply.status, reply.code) == (status, code), (method, target, body, reply.body)
        assert reply.body["error"]["message"]


def test_the_server_survives_garbage(api: Api) -> None:
    port = api.server.api_port
    for junk in [b"\x00\x01\x02garbage\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
                 b"POST /v1/messages HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 70000 + b"\r\n\r\n",
                 b"GET /v1/queues HTTP/9.9\r\n\r\n"]:  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(junk)
            answer = sock.recv(4096)
            assert answer.startswith(b"HTTP/1.") and b" 4" in answer.split(b"\r\n")[0], answer[:100]
    big = json.dumps({"conversation_id": "5", "client_msg_id": "m", "text": "x" * (2 << 20)}).encode()
    too_big = api.call("bankapp", "POST", "/v1/messages", big)
    assert (too_big.status, too_big.code) == (413, "PAYLOAD_TOO_LARGE")
    assert api.call("bankapp", "GET", "/v1/queues").status == 200  # still serving


def test_cors_for_the_web_ports_origin(api: Api) -> None:
    origin = f"http://127.0.0.1:{api.server.web_port}"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "GET",
                 "Access-Control-Request-Headers": "authorization"}  # fmt: skip
    ok = api.raw("OPTIONS", "/v1/wall", headers=preflight)
    assert ok.status == 204 and ok.headers["Access-Control-Allow-Origin"] == origin
    assert "Authorization" in ok.headers["Access-Control-Allow-Headers"]
    refused = api.raw("OPTIONS", "/v1/wall", headers={**preflight, "Origin": "http://evil.example"})
    assert (refused.status, refused.code) == (403, "ORIGIN_NOT_ALLOWED")
    assert "Access-Control-Allow-Origin" not in refused.headers
    signed = api.signer("sup").headers("GET", "/v1/wall")
    answer = api.raw("GET", "/v1/wall", headers={**signed, "Origin": origin})
    assert answer.status == 200 and answer.headers["Access-Control-Allow-Origin"] == origin
    other = api.raw("GET", "/v1/openapi.json", headers={"Origin": "http://evil.example"})
    assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers
    configured = api.raw("OPTIONS", "/v1/queues", headers={**preflight, "Origin": BANK_ORIGIN})
    assert configured.status == 204 and configured.headers["Access-Control-Allow-Origin"] == BANK_ORIGIN


def test_refusal_bodies_are_json(api: Api) -> None:
    reply: Reply = api.raw("GET", "/v1/queues")
    assert reply.status == 401 and reply.body == {
        "error": {"code": "UNAUTHENTICATED", "message": "sign the request (spec section 17.2)"}
    }


def test_the_document_is_served(api: Api) -> None:
    served = api.raw("GET", "/v1/openapi.json")
    assert served.status == 200 and served.body == document()


def test_webhook_subscriptions_through_the_api(api: Api) -> None:
    event = EventType.CONVERSATION_OPENED.value
    added = api.call("bankapp", "POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/hook", "events": [event]})
    assert added.status == 201 and added.body["subscription"]["tenant"] == "bank"
    sub = added.body["subscription"]["id"]
    assert sub in [s["id"] for s in api.call("bankapp", "GET", "/v1/webhooks").body["subscriptions"]]
    assert sub not in [s["id"] for s in api.call("otherapp", "GET", "/v1/webhooks").body["subscriptions"]]
    assert api.call("otherapp", "DELETE", f"/v1/webhooks/{sub}").code == "NOT_FOUND"
    assert api.call("v1", "GET", "/v1/webhooks").code == "FORBIDDEN"
    assert api.call("bankapp", "DELETE", f"/v1/webhooks/{sub}").status == 204


def test_the_web_ports_pages_are_told_where_the_api_is(api: Api) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{api.server.web_port}/config.json", timeout=30) as response:
        config = json.loads(response.read())
    assert config["api"] == api.base  # with [api] port 0 too, and with worker processes


def test_requests_are_counted_in_the_metrics(api: Api) -> None:
    assert api.call("bankapp", "GET", "/v1/queues").status == 200
    assert api.call("bankapp", "GET", "/v1/wall").status == 403
    assert api.call("bankapp", "GET", "/v1/no-such-route").status == 404
    with urllib.request.urlopen(f"http://127.0.0.1:{api.server.metrics_port}/metrics", timeout=30) as response:
        text = response.read().decode()
    counted = {
        (m.group(1), m.group(2)): float(m.group(3))
        for m in re.finditer(r'^kefu_api_requests_total\{route="([^"]*)",status="(\d+)"[^}]*\} (\S+)$', text, re.M)
    }
    assert counted[("/v1/queues", "200")] >= 1
    assert counted[("/v1/wall", "403")] >= 1
    assert counted[("unmatched", "404")] >= 1


def test_the_wall_shows_what_the_metrics_show(api: Api) -> None:
    for _ in range(2):
        open_for(api, group="cards")  # a1 serves it and is not connected here: they wait

    def waiting_in_metrics() -> dict[tuple[str, str], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{api.server.metrics_port}/metrics", timeout=30) as response:
            text = response.read().decode()
        pattern = r'^kefu_service_waiting_conversations\{group="([^"]*)",tenant="([^"]*)"[^}]*\} (\S+)$'
        return {(m.group(2), m.group(1)): float(m.group(3)) for m in re.finditer(pattern, text, re.M)}

    deadline = time.monotonic() + 10
    while True:
        wall = {(g["tenant"], g["group"]): g["waiting"] for g in api.call(ADMIN, "GET", "/v1/wall").body["groups"]}
        metrics = waiting_in_metrics()
        if wall == metrics and wall[("bank", "cards")] >= 2:
            break
        assert time.monotonic() < deadline, (wall, metrics)
        time.sleep(0.1)
