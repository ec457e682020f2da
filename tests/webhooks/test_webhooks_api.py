"""/v1/webhooks through the real HTTP API of a real `kefu serve` (signed requests; every answer checked against
spec/openapi.json by the API tests' helper): who may manage which tenant's subscriptions, and a subscription made
over the API delivering at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.api.conftest import ADMIN, Api, start_api_server
from tests.integration.service_harness import users

from .receiver import Receiver

pytestmark = pytest.mark.asyncio


@pytest.fixture(params=[0, 1], ids=["workers0", "workers1"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    served = start_api_server(tmp_path, request.param)
    try:
        yield served
    finally:
        served.server.kill()


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


async def test_manage_subscriptions_over_the_api_and_deliver_at_once(api: Api, receiver: Receiver) -> None:
    add = {"url": receiver.url, "events": ["conversation.opened"]}
    made = api.call("bankapp", "POST", "/v1/webhooks", add)
    assert made.status == 201, made.body
    sub, secret = made.body["subscription"], made.body["secret"]
    assert sub["tenant"] == "bank" and sub["events"] == ["conversation.opened"] and secret.startswith("whsec_")
    assert api.call("bankapp", "POST", "/v1/webhooks", {**add, "tenant": "other"}).status == 403
    assert api.call("v1", "GET", "/v1/webhooks").status == 403, "a visitor manages no webhooks"
    assert api.call("bankapp", "POST", "/v1/webhooks", {**add, "url": "ftp://x/"}).code == "BAD_REQUEST"
    assert api.call("bankapp", "POST", "/v1/webhooks", {**add, "events": ["nope"]}).code == "BAD_REQUEST"
    assert api.call("bankapp", "POST", "/v1/webhooks", b"{not json").code == "MALFORMED_JSON", "as every API route"
    theirs = api.call(ADMIN, "POST", "/v1/webhooks", {**add, "tenant": "other"})
    assert theirs.status == 201 and theirs.body["subscription"]["tenant"] == "other"
    listed = api.call("bankapp", "GET", "/v1/webhooks").body["subscriptions"]
    assert [s["id"] for s in listed] == [sub["id"]] and "secret" not in listed[0]
    assert len(api.call(ADMIN, "GET", "/v1/webhooks").body["subscriptions"]) == 2

    # The dispatcher took the subscription at once: the next conversation of tenant bank is announced, signed.
    async with users(api.server) as connect:
        v1 = await connect("v1")
        opened = await v1.service.open()
        await receiver.wait_for(lambda r: len(r.accepted()) == 1, 10)
    (delivery,) = receiver.deliveries
    assert delivery.event["conversation_id"] == opened.conversation_id
    delivery.verify(secret.encode())

    assert api.call("otherapp", "DELETE", f"/v1/webhooks/{sub['id']}").status == 404, "another tenant's"
    assert api.call("bankapp", "DELETE", f"/v1/webhooks/{sub['id']}").status == 204
    assert api.call("bankapp", "DELETE", f"/v1/webhooks/{sub['id']}").status == 404
    assert api.call("bankapp", "GET", "/v1/webhooks").body["subscriptions"] == []
    trail = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "kefu.server.cli", "audit", "tail", "--data-dir", str(api.server.data_dir)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert f"bankapp  webhook.add  {receiver.url}  ok" in trail.stdout
    assert f"bankapp  webhook.remove  {sub['id']}  ok" in trail.stdout
