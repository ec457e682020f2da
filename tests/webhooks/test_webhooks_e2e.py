"""Webhooks end to end: a real `kefu serve` (subprocess, real LMDB, one process and with workers), real clients of
the service desk, `kefu webhook add` from the command line, and a receiver on loopback that checks every signature."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from kefu.client import AgentState, DraftAction, staff_channel
from tests.integration.conftest import ServerProcess
from tests.integration.service_harness import add_apps, next_matching, users, write_directory

from .receiver import Receiver, per_conversation

pytestmark = pytest.mark.asyncio

FAST = {
    "KEFU_SERVICE_DIRECTORY": "service.toml",
    "KEFU_SERVICE_SENTIMENT": "false",
    "KEFU_SERVICE_QUEUE_TICK_MS": "100",
    "KEFU_WEBHOOKS_BACKOFF_INITIAL_MS": "50",
    "KEFU_WEBHOOKS_BACKOFF_MAX_MS": "200",
    "KEFU_WEBHOOKS_CURSOR_SAVE_MS": "100",
    "KEFU_WEBHOOKS_MAX_ATTEMPTS": "3",
}
"""The desk's directory, no sentiment worker, and backoffs of milliseconds (a test lasts seconds)."""
LLM_PLUGIN = """
[[plugins]]
name = "llm"
kind = "openai"
modes = ["suggest"]
timeout_s = 5.0
options = {{ endpoint = "{url}", model = "qwen2-7b" }}
"""
TIMEOUT = 20.0


def webhook_add(data_dir: Path, url: str, events: str, tenant: str) -> tuple[str, bytes]:
    """`kefu webhook add`: (id, secret) as it prints them."""
    out = subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", "webhook", "add", url, "--events", events, "--tenant", tenant,
         "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    sub_id, secret = out.stdout.split()
    return sub_id, secret.encode()


def desk(tmp_path: Path, workers: int, plugins: str = "") -> ServerProcess:
    """A server (not started) with the service directory and apps of the service tests."""
    data_dir = tmp_path / "data"
    write_directory(data_dir, plugins=plugins)
    proc = ServerProcess(data_dir, env={**FAST, "KEFU_SERVER_WORKERS": str(workers)})
    proc.secrets.update(add_apps(data_dir))
    return proc


def scrape(server: ServerProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as response:
        text: str = response.read().decode()
    return text


def metric(text: str, series: str) -> float:
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def wait_logged(server: ServerProcess, text: str) -> None:
    """Until the server's log holds `text`."""
    async with asyncio.timeout(TIMEOUT):
        while text not in server.log_path.read_text(errors="replace"):
            await asyncio.sleep(0.05)


def in_commit_order(events: list[dict[str, Any]]) -> bool:
    """Each conversation's events arrived in commit order: their ids (server_msg_ids) ascend."""
    return all(
        [int(e["id"]) for e in conv] == sorted(int(e["id"]) for e in conv) for conv in per_conversation(events).values()
    )


@pytest.fixture
def fake_llm() -> Iterator[Any]:
    from tests.server.fake_openai import FakeOpenAI, echo  # noqa: PLC0415 - a test helper module

    with FakeOpenAI(echo("草稿：")) as fake:
        yield fake


@pytest_asyncio.fixture
async def receivers() -> AsyncIterator[tuple[Receiver, Receiver]]:
    bank, other = await Receiver().start(), await Receiver().start()
    yield bank, other
    await bank.stop()
    await other.stop()


@pytest.mark.parametrize("workers", [0, 1])
async def test_every_event_kind_arrives_signed_in_order_and_only_to_its_tenant(
    tmp_path: Path, workers: int, fake_llm: Any, receivers: tuple[Receiver, Receiver]
) -> None:
    bank, other = receivers
    server = desk(tmp_path, workers, LLM_PLUGIN.format(url=fake_llm.url))
    bank_id, bank_secret = webhook_add(server.data_dir, bank.url, "all", "bank")  # before the server starts
    server.start()
    try:
        other_id, other_secret = webhook_add(server.data_dir, other.url, "all", "other")  # while it runs
        async with users(server) as connect:
            # At once: the server may not have read the new subscription yet; it catches up from the log.
            await connect("o1", status=AgentState.ONLINE)
            ov = await connect("ov")
            elsewhere = await ov.service.open(first_message="hello")
            a1 = await connect("a1", status=AgentState.ONLINE)
            a2 = await connect("a2", status=AgentState.ONLINE)
            v1 = await connect("v1")
            opened = await v1.service.open(first_message="你好")
            conv = opened.conversation_id
            owner, peer = (a1, a2) if opened.agent == "a1" else (a2, a1)
            await v1.send(conv, "我的卡丢了")
            staff = staff_channel(conv)
            draft = await next_matching(owner, lambda m: m.conversation_id == staff and not m.is_system_event)
            await owner.service.decide_draft(conv, draft.seq, DraftAction.APPROVE)
            await owner.service.transfer(conv, to_agent="a2" if owner is a1 else "a1")
            await peer.service.end(conv, "resolved")
            await bank.wait_for(lambda r: len(r.accepted()) >= 8, TIMEOUT)
            await other.wait_for(lambda r: len(r.accepted()) >= 3, TIMEOUT)
        types = [e["type"] for e in bank.accepted()]
        assert types == [
            "conversation.opened", "message.committed", "conversation.assigned", "message.committed",
            "draft.decided", "message.committed", "conversation.transferred", "conversation.ended",
        ], types  # fmt: skip
        assert {e["conversation_id"] for e in bank.accepted()} == {conv}
        texts = [e["data"]["text"] for e in bank.accepted() if e["type"] == "message.committed"]
        assert texts[:2] == ["你好", "我的卡丢了"] and texts[2] == draft.text and texts[2].startswith("草稿：")
        assert bank.accepted()[4]["data"] == {"decision": "approve", "draft_seq": draft.seq}
        assert [e["type"] for e in other.accepted()] == [
            "conversation.opened", "message.committed", "conversation.assigned",
        ]  # fmt: skip
        assert {e["conversation_id"] for e in other.accepted()} == {elsewhere.conversation_id}
        assert {e["tenant"] for e in other.accepted()} == {"other"}
        assert in_commit_order(bank.accepted()) and in_commit_order(other.accepted())
        for delivery in bank.deliveries:
            assert delivery.verify(bank_secret) == ["hmac-sm3", "hmac-sha256"]
            assert delivery.headers["Kefu-Webhook-Subscription"] == bank_id
        for delivery in other.deliveries:
            delivery.verify(other_secret)
        await wait_logged(server, f"subscription={other_id}")
    finally:
        server.kill()


@pytest.mark.parametrize("workers", [0, 1])
async def test_a_failing_receiver_gets_retries_then_dead_letters_in_metrics(
    tmp_path: Path, workers: int, receivers: tuple[Receiver, Receiver]
) -> None:
    bank, _ = receivers
    bank.answer = lambda n: 500
    server = desk(tmp_path, workers)
    webhook_add(server.data_dir, bank.url, "conversation.opened,message.committed", "bank")
    server.start()
    try:
        async with users(server) as connect:
            v1 = await connect("v1")
            await v1.service.open(first_message="hi")
            async with asyncio.timeout(TIMEOUT):
                while metric(scrape(server), 'kefu_webhook_dead_letters_total{reason="attempts"}') < 2:
                    await asyncio.sleep(0.05)
        text = scrape(server)
        assert metric(text, 'kefu_webhook_deliveries_total{result="rejected"}') == 6
        ids = [d.event["id"] for d in bank.deliveries]
        assert len(ids) == 6 and ids[0] == ids[1] == ids[2] != ids[3] == ids[4] == ids[5], "3 attempts each, in order"
        first = bank.deliveries[:3]
        assert first[1].at - first[0].at >= 0.025 and first[2].at - first[1].at >= 0.05, "the backoff doubles"
        assert "webhooks.dead_letter" in server.log_tail(20000)
    finally:
        server.kill()


@pytest.mark.parametrize("workers", [0, 1])
async def test_sigkill_mid_delivery_loses_nothing(
    tmp_path: Path, workers: int, receivers: tuple[Receiver, Receiver]
) -> None:
    bank, _ = receivers
    bank.pause_after = 40  # then the receiver holds its answers: the kill comes with deliveries in flight
    server = desk(tmp_path, workers)
    webhook_add(server.data_dir, bank.url, "conversation.opened,message.committed", "bank")
    server.start()
    expected: set[tuple[int, int]] = set()
    try:
        async with users(server) as connect:

            async def visitor(name: str) -> None:
                client = await connect(name)
                opened = await client.service.open()
                expected.add((opened.conversation_id, 1))
                for i in range(30):
                    receipt = await client.send(opened.conversation_id, f"{name} {i}")
                    expected.add((opened.conversation_id, receipt.seq))

            await asyncio.gather(*(visitor(f"v{i}") for i in range(1, 6)))
        await bank.wait_for(lambda r: r.held >= 3, TIMEOUT)  # several conversations' deliveries in flight
        arrived_before = len(bank.accepted())
        server.kill()  # SIGKILL, every process of the server
        assert not server.alive and arrived_before < len(expected)
        bank.resume.set()
        server.start()
        await bank.wait_for(lambda r: {(e["conversation_id"], e["seq"]) for e in r.accepted()} >= expected, TIMEOUT)
        events = bank.accepted()
        assert {(e["conversation_id"], e["seq"]) for e in events} == expected
        assert in_commit_order(events)
        for conv in per_conversation(events).values():
            assert [e["seq"] for e in conv] == sorted(e["seq"] for e in conv)
        duplicates = len(bank.deliveries) - len(events)
        assert duplicates <= len(expected), "at-least-once: a bounded tail is delivered again"
        print(f"workers={workers}: {len(expected)} events, {arrived_before} before the kill, {duplicates} again")
    finally:
        server.kill()
