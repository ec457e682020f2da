"""Staff sign-in against a real `kefu serve` (spec section 16): a staff member signs in over HTTP on the web port, the
session credential it gets opens a real protocol session over TCP (kefu.client) on every gateway process, signing out
ends those sessions and refuses the credential; a wrong password gets 401; a visitor identity from /auth/visitor opens
a visitor's session. One process, and two gateway workers (the credential issued by one works on the other)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from kefu.client import AuthFailed, Client
from kefu.protocol.errors import ErrorCode

from .conftest import ServerProcess
from .workers_harness import GATEWAYS, HOST, WORKERS, client_on

pytestmark = pytest.mark.asyncio

PASSWORD = "correct horse battery"


def staff_add(data_dir: Path, name: str, role: str, tenant: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", "staff", "add", name, "--role", role, "--tenant", tenant,
         "--password-stdin", "--data-dir", str(data_dir)],
        input=PASSWORD + "\n", capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip


@pytest.fixture(scope="module", params=[0, WORKERS], ids=["single", "workers"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server per mode for the module (a start costs seconds): the staff test signs agent-1 in and out, the
    visitor test makes a visitor of its own; neither touches what the other uses."""
    data_dir = tmp_path_factory.mktemp(f"signin-{request.param}") / "data"
    staff_add(data_dir, "agent-1", "agent", "bank")
    server = ServerProcess(data_dir, env={"KEFU_SERVER_WORKERS": str(request.param)})
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def post(server: ServerProcess, path: str, body: dict[str, Any], **headers: str) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://{HOST}:{server.web_port}{path}", json=body, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def connected(server: ServerProcess, app_id: str, secret: str, gateway: str | None) -> Client:
    server.secrets[app_id] = _decode(secret)
    if gateway is not None:
        return await client_on(server, app_id, gateway)
    client = Client(HOST, server.port, app_id=app_id, app_secret=server.secrets[app_id], server_pins=server.pins,
                    connect_timeout=5)  # fmt: skip
    await client.connect()
    return client


def _decode(text: str) -> bytes:
    from kefu.server.identity.keys import decode_secret  # noqa: PLC0415

    return decode_secret(text)


async def ended(client: Client) -> ErrorCode | None:
    link = client._link
    assert link is not None
    await asyncio.wait_for(asyncio.shield(link.lost), 10)
    return link.end.code if link.end is not None else None


async def test_a_signed_in_staff_member_connects_until_signing_out(served: ServerProcess) -> None:
    status, body = await post(served, "/auth/signin", {"name": "agent-1", "password": "not the password"})
    assert (status, body) == (401, {"error": "authentication failed"})
    status, body = await post(served, "/auth/signin", {"name": "agent-1", "password": PASSWORD})
    assert status == 200, body
    assert (body["app_id"], body["role"], body["tenant"]) == ("agent-1", "agent", "bank")
    assert body["expires_at"] > time.time() + 7 * 3600

    gateways = GATEWAYS if served.workers() else (None,)
    clients = [await connected(served, "agent-1", body["secret"], g) for g in gateways]
    for i, client in enumerate(clients):  # a real session on every gateway: the credential works everywhere
        receipt = await client.send(100 + i, b"signed in", to=("agent-1",), timeout=10)
        assert receipt.seq >= 1
    endings = [asyncio.create_task(ended(c)) for c in clients]

    status, out = await post(served, "/auth/signout", {"app_id": "agent-1", "secret": body["secret"]})
    assert (status, out) == (200, {"signed_out": True})
    assert [await e for e in endings] == [ErrorCode.AUTH_FAILED] * len(clients)
    for client in clients:
        await client.close()
    with pytest.raises(AuthFailed):
        await connected(served, "agent-1", body["secret"], None)
    status, _ = await post(served, "/auth/signout", {"app_id": "agent-1", "secret": body["secret"]})
    assert status == 401


async def test_a_visitor_identity_opens_a_visitors_session(served: ServerProcess) -> None:
    status, body = await post(served, "/auth/visitor", {"tenant": "bank", "name": "Ms Li"})
    assert status == 200, body
    assert body["app_id"].startswith("visitor-") and body["role"] == "visitor" and body["tenant"] == "bank"
    gateways = GATEWAYS if served.workers() else (None,)
    for gateway in gateways:
        client = await connected(served, body["app_id"], body["secret"], gateway)
        receipt = await client.send(7, b"hello", to=(body["app_id"],), timeout=10)
        assert receipt.seq >= 1
        await client.close()
    status, _ = await post(served, "/auth/visitor", {"tenant": "bank"}, Origin="http://evil.example")
    assert status == 403  # another site's page: the web port's Origin policy, before the route
