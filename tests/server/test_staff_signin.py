"""The sign-in routes (kefu.server.web.signin) through aiohttp's test server on loopback, against a real sealed store;
the credentials they issue are checked with the real handshake core."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from kefu.protocol.crypto import Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionTerminated, HandshakeComplete
from kefu.protocol.handshake import ClientConfig
from kefu.server.config import Config
from kefu.server.identity import credentials, keys, staff
from kefu.server.identity.datakeys import sealer_of
from kefu.server.identity.orders import OrderBook, OrderKind
from kefu.server.storage import audit
from kefu.server.storage.store import Store
from kefu.server.web import signin

from ..protocol.pairs import PINS, Pair, server_config

PASSWORD = "correct horse battery"


class Clock:
    """Unix time the test moves."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "db", sealer=sealer_of(tmp_path, "sm4-gcm"), tables=staff.TABLES)
    keys.create_app(s, "agent-1", role="agent", tenant="bank")
    staff.add_staff(s, "agent-1", PASSWORD, now_ms=1)
    keys.create_app(s, "crm", role="integration", tenant="bank")
    staff.add_staff(s, "crm", PASSWORD, now_ms=1)  # an account whose app is not staff: never signs in
    yield s
    s.close()


def _config(tmp_path: Path, **web: Any) -> Config:
    base = Config()
    server = dataclasses.replace(base.server, data_dir=str(tmp_path))
    return dataclasses.replace(base, server=server, web=dataclasses.replace(base.web, **web))


async def _client(store: Store, config: Config, clock: Clock) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    signin.add_routes(app, signin.SigninContext(store=store, config=config, clock=clock))
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    return client


@pytest_asyncio.fixture
async def http(store: Store, tmp_path: Path) -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Clock]]:
    clock = Clock()
    client = await _client(store, _config(tmp_path, signin_per_minute=100, visitor_tenants=("bank",)), clock)
    yield client, clock
    await client.close()


def _handshake(store: Store, app_id: str, secret_text: str, *, now: float) -> HandshakeComplete | ErrorCode:
    """A full protocol handshake (national suite) with this app id and secret, against the store's apps."""
    config = server_config(apps=keys.AppDirectory(store))
    client = ClientConfig(app_id, PINS, (Suite.NATIONAL,), app_secret=keys.decode_secret(secret_text))
    pair = Pair(client, config, now=now)
    pair.start(now=now)
    pair.pump()
    done = pair.of("server", HandshakeComplete)
    if done:
        return done[0]  # type: ignore[no-any-return]
    return pair.of("server", ConnectionTerminated)[0].code  # type: ignore[no-any-return]


@pytest.mark.asyncio
async def test_signin_issues_a_credential_the_handshake_accepts_until_signout(
    http: tuple[TestClient[web.Request, web.Application], Clock], store: Store
) -> None:
    client, clock = http
    response = await client.post("/auth/signin", json={"name": "agent-1", "password": PASSWORD})
    assert response.status == 200 and response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert (body["app_id"], body["role"], body["tenant"]) == ("agent-1", "agent", "bank")
    assert body["expires_at"] == int(clock.now + 8 * 3600)
    done = _handshake(store, "agent-1", body["secret"], now=clock.now)
    assert isinstance(done, HandshakeComplete) and done.client_key.startswith("session:")

    out = await client.post("/auth/signout", json={"app_id": "agent-1", "secret": body["secret"]})
    assert out.status == 200 and await out.json() == {"signed_out": True}
    assert _handshake(store, "agent-1", body["secret"], now=clock.now) is ErrorCode.AUTH_FAILED
    order = OrderBook.decode(store.app_orders()).orders[-1]
    assert (OrderKind(order.kind), order.pin) == (OrderKind.SIGNED_OUT, done.client_key)
    again = await client.post("/auth/signout", json={"app_id": "agent-1", "secret": body["secret"]})
    assert again.status == 401 and await again.json() == signin.FAILED
    actions = [(s.entry.action, s.entry.target, s.entry.result) for s in audit.entries(store, 0) if s.entry]
    assert ("auth.signin", "agent-1", "ok") in actions and ("auth.signout", "agent-1", "ok") in actions


@pytest.mark.asyncio
async def test_every_failure_gets_the_same_401(
    http: tuple[TestClient[web.Request, web.Application], Clock], store: Store
) -> None:
    client, _ = http
    for name, password in (("agent-1", "wrong password!"), ("nobody", PASSWORD), ("crm", PASSWORD), ("", "")):
        response = await client.post("/auth/signin", json={"name": name, "password": password})
        assert response.status == 401, name
        assert await response.json() == signin.FAILED
    assert credentials.read_session_keys(store, "crm") == []
    results = [(s.entry.action, s.entry.result) for s in audit.entries(store, 0) if s.entry]
    assert results.count(("auth.signin", "failed")) == 4


@pytest.mark.asyncio
async def test_requests_that_are_not_what_the_route_reads(
    http: tuple[TestClient[web.Request, web.Application], Clock],
) -> None:
    client, _ = http
    cases: list[tuple[dict[str, Any], int]] = [
        ({"data": b"not json", "headers": {"Content-Type": "application/json"}}, 400),
        ({"json": ["a", "list"]}, 400),
        ({"json": {"name": "agent-1"}}, 400),
        ({"json": {"name": "agent-1", "password": 5}}, 400),
        ({"data": b'{"name": "a", "password": "b"}', "headers": {"Content-Type": "text/plain"}}, 415),
        ({"json": {"name": "agent-1", "password": "x" * (signin.MAX_BODY_BYTES + 1)}}, 413),
    ]
    for kwargs, status in cases:
        response = await client.post("/auth/signin", **kwargs)
        assert response.status == status, kwargs
    chunked = await client.post(
        "/auth/signin", data=_chunks(b'{"name": "' + b"x" * 5000 + b'"}'), headers={"Content-Type": "application/json"}
    )
    assert chunked.status == 413
    assert (await client.post("/auth/signout", json={"app_id": "agent-1", "secret": "!!"})).status == 401
    assert (await client.post("/auth/visitor", json={"tenant": "bank", "name": "x" * 65})).status == 400


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 1000):
        yield data[i : i + 1000]


@pytest.mark.asyncio
async def test_an_address_past_its_rate_gets_429_with_retry_after(store: Store, tmp_path: Path) -> None:
    clock = Clock()
    client = await _client(store, _config(tmp_path, signin_per_minute=2, visitors_per_minute=1), clock)
    try:
        for _ in range(2):
            response = await client.post("/auth/signin", json={"name": "nobody", "password": "x"})
            assert response.status == 401
        limited = await client.post("/auth/signin", json={"name": "agent-1", "password": PASSWORD})
        assert limited.status == 429 and limited.headers["Retry-After"] == "30"
        clock.now += 30
        assert (await client.post("/auth/signin", json={"name": "agent-1", "password": PASSWORD})).status == 200
        assert (await client.post("/auth/visitor", json={"tenant": "bank"})).status == 200
        assert (await client.post("/auth/visitor", json={"tenant": "bank"})).status == 429
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_a_visitor_identity_authenticates_as_a_visitor_of_its_tenant_until_it_expires(
    http: tuple[TestClient[web.Request, web.Application], Clock], store: Store
) -> None:
    client, clock = http
    response = await client.post("/auth/visitor", json={"tenant": "bank", "name": "Ms Li"})
    assert response.status == 200
    body = await response.json()
    assert body["app_id"].startswith("visitor-") and body["role"] == "visitor" and body["name"] == "Ms Li"
    assert body["expires_at"] == int(clock.now + 86400)
    record = keys.AppRecord.decode(store.get_app(body["app_id"]) or b"")
    assert (record.role, record.tenant) == ("visitor", "bank")
    assert isinstance(_handshake(store, body["app_id"], body["secret"], now=clock.now + 10), HandshakeComplete)
    assert _handshake(store, body["app_id"], body["secret"], now=clock.now + 86401) is ErrorCode.AUTH_FAILED
    other = await client.post("/auth/visitor", json={"tenant": "another bank"})
    assert other.status == 403

    clock.now += 86401  # the next issue purges: the expired visitor's credential and app record go
    assert (await client.post("/auth/visitor", json={"tenant": "bank"})).status == 200
    assert store.get_app(body["app_id"]) is None
    assert credentials.read_session_keys(store, body["app_id"]) == []


@pytest.mark.asyncio
async def test_visitor_tenants_default_to_the_directorys_groups(store: Store, tmp_path: Path) -> None:
    directory = tmp_path / "directory.toml"
    directory.write_text('[groups.cards]\ntenant = "bank"\n')
    config = _config(tmp_path)
    config = dataclasses.replace(config, service=dataclasses.replace(config.service, directory=str(directory)))
    client = await _client(store, config, Clock())
    try:
        assert (await client.post("/auth/visitor", json={"tenant": "bank"})).status == 200
        assert (await client.post("/auth/visitor", json={"tenant": "other"})).status == 403
    finally:
        await client.close()


@pytest.mark.asyncio
async def test_the_web_ports_app_mounts_the_routes_behind_its_origin_policy(store: Store, tmp_path: Path) -> None:
    from kefu.server.web.app import WebContext, build_app  # noqa: PLC0415 - the web port's own builder

    config = _config(tmp_path, allowed_origins=("https://bank.example",), visitor_tenants=("bank",))
    app = build_app(WebContext(config, gateway=None, pins=(), store=store))
    client = TestClient(TestServer(app, host="127.0.0.1", port=0))
    await client.start_server()
    try:
        bank = {"Origin": "https://bank.example"}
        preflight = await client.options("/auth/visitor", headers=bank | {"Access-Control-Request-Method": "POST"})
        assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == "https://bank.example"
        visitor = await client.post("/auth/visitor", json={"tenant": "bank"}, headers=bank)
        assert visitor.status == 200 and visitor.headers["Access-Control-Allow-Origin"] == "https://bank.example"
        evil = await client.post("/auth/signin", json={"name": "agent-1", "password": PASSWORD},
                                 headers={"Origin": "https://evil.example"})  # fmt: skip
        assert evil.status == 403
        same = await client.post("/auth/signin", json={"name": "agent-1", "password": PASSWORD},
                                 headers={"Origin": f"http://127.0.0.1:{client.port}"})  # fmt: skip
        assert same.status == 200 and (await same.json())["app_id"] == "agent-1"
    finally:
        await client.close()
