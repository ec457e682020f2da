"""The JS client against a real `kefu serve` over its WebSocket port, with a Python client over TCP on the other side:
messages both ways in both suites, a lost connection resumed with the ticket, and the history fetch."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from kefu.client import Client, Message, new_conversation_id
from kefu.protocol.crypto import KeyType, SigningKey, Suite
from kefu.server.identity.keys import encode_secret
from tests.integration.conftest import ServerProcess, running_server

from .node import JS, installed, node

WAIT_S = 15.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for both suites' runs (each uses its own conversation)."""
    yield from running_server(tmp_path_factory.mktemp("js-interop"), {}, ("alice", "bob"))


async def receive_in(client: Client, conversation: int) -> Message | None:
    """The next message of `conversation` (bob's earlier conversations, resumed from his stored cursor, are passed
    over: the tests share one server)."""
    while (message := await client.receive(WAIT_S)) is not None:
        if message.conversation_id == conversation:
            return message
    return None


def in_own_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run `coroutine` with asyncio.run in a thread of its own: immune to a loop another test module left marked
    running in this thread (tests/browser's session-wide sync Playwright does)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coroutine).result(timeout=120)


@pytest.mark.parametrize("suite", ["national", "international"])
def test_js_client_and_python_client_through_the_server(server: ServerProcess, suite: str) -> None:
    in_own_loop(js_and_python(server, suite))


async def js_and_python(server: ServerProcess, suite: str) -> None:
    installed()
    conversation = new_conversation_id()
    config = {
        "ws": f"ws://127.0.0.1:{server.web_port}/ws",
        "pins": sorted(server.pins),
        "appId": "alice",
        "secret": encode_secret(server.secrets["alice"]),
        "suite": suite,
        "conversation": str(conversation),
    }
    code = Suite.NATIONAL if suite == "national" else Suite.INTERNATIONAL
    bob = Client("127.0.0.1", server.port, app_id="bob", app_secret=server.secrets["bob"], server_pins=server.pins,
                 suites=(code,))  # fmt: skip
    async with bob:
        script = str(Path(__file__).with_name("interop.mjs"))
        proc = await asyncio.create_subprocess_exec(
            node(), "--experimental-websocket", script, json.dumps(config), cwd=JS,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            first = await receive_in(bob, conversation)
            assert first is not None and first.sender == "alice" and first.text == f"js says hello ({suite})"
            await bob.send(conversation, "python answers", timeout=WAIT_S)
            second = await receive_in(bob, conversation)
            assert second is not None and second.text == "js again after the reconnect"
            await bob.send(conversation, "python answers again", timeout=WAIT_S)
            stdout, stderr = await asyncio.wait_for(proc.communicate(), WAIT_S)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, stderr.decode()[-3000:]
    seen = json.loads(stdout.decode().strip().splitlines()[-1])
    assert seen["suite"] == suite
    assert [g["text"] for g in seen["got"]] == ["python answers", "python answers again"]
    assert all(g["sender"] == "bob" for g in seen["got"])
    assert seen["resumed"] is True, seen
    assert seen["reconnects"] == 1
    assert [c["resumed"] for c in seen["connects"]] == [False, True]
    assert sorted(seen["big"]) == list(range(5, 29)), seen["big"]
    assert seen["history"] == [f"js says hello ({suite})", "python answers", "js again after the reconnect",
                               "python answers again"]  # fmt: skip


@pytest.mark.parametrize("key_type", [KeyType.SM2, KeyType.ED25519])
def test_js_client_authenticates_with_a_client_key(server: ServerProcess, key_type: KeyType) -> None:
    in_own_loop(js_with_client_key(server, key_type))


async def js_with_client_key(server: ServerProcess, key_type: KeyType) -> None:
    installed()
    key = SigningKey.generate(key_type)
    name = f"keyed-{key_type.name.lower()}"
    subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", "app", "add", name, "--client-key-pin", key.verify_key.fingerprint(),
         "--data-dir", str(server.data_dir)],
        check=True, capture_output=True,
    )  # fmt: skip
    conversation = new_conversation_id()
    config = {
        "ws": f"ws://127.0.0.1:{server.web_port}/ws",
        "pins": sorted(server.pins),
        "appId": name,
        "type": "sm2" if key_type is KeyType.SM2 else "ed25519",
        "key": key.private_bytes().hex(),
        "conversation": str(conversation),
    }
    bob = Client("127.0.0.1", server.port, app_id="bob", app_secret=server.secrets["bob"], server_pins=server.pins)
    async with bob:
        script = str(Path(__file__).with_name("client_key.mjs"))
        proc = await asyncio.create_subprocess_exec(
            node(), "--experimental-websocket", script, json.dumps(config), cwd=JS,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await asyncio.wait_for(proc.communicate(), WAIT_S)
        assert proc.returncode == 0, stderr.decode()[-3000:]
        got = await receive_in(bob, conversation)
    assert got is not None and got.sender == name and got.text == f"signed in with {config['type']}"
    seen = json.loads(stdout.decode().strip().splitlines()[-1])
    assert seen["suite"] == ("national" if key_type is KeyType.SM2 else "international")
    assert seen["seq"] == str(got.seq)
