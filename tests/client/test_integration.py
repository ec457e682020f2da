"""The client against the real server: `kefu serve` as a subprocess on 127.0.0.1 (fixtures in conftest.py).

Skipped when the server cannot start. Every wait is bounded; servers are stopped by PID. Tests that neither stop the
server nor need a fresh one share one per module (`shared_kefu_server`), each with apps of its own.
"""

from __future__ import annotations

import asyncio
import base64
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import kefu.client
from kefu.client import AuthFailed, BlockingClient, Client, Message, SendRefused, Suite, new_conversation_id
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionClosed

from .conftest import KefuServer

pytestmark = pytest.mark.slow

WAIT_S = 10.0
EXAMPLES = Path(kefu.client.__file__).parent / "examples"


async def from_others(client: Client, count: int, timeout: float = WAIT_S) -> list[Message]:
    """The next `count` messages not sent by the client's own user (its own come back too, by design)."""
    got: list[Message] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            message = await client.receive()
            assert message is not None
            if message.sender != client.app_id:
                got.append(message)
    return got


async def reconnected(client: Client, count: int = 1) -> None:
    """Wait until the client has reconnected `count` times and is connected."""
    async with asyncio.timeout(WAIT_S):
        while client.reconnects < count or not client.connected:
            await asyncio.sleep(0.02)


async def quiet(client: Client, timeout: float = 0.5) -> list[Message]:
    """Whatever else arrives (from others) until `timeout` of silence."""
    extra = []
    while (message := await client.receive(timeout)) is not None:
        if message.sender != client.app_id:
            extra.append(message)
    return extra


@pytest.mark.parametrize("suite", [Suite.NATIONAL, Suite.INTERNATIONAL])
def test_visitor_and_agent_talk_in_order(shared_kefu_server: KefuServer, run: Any, suite: Suite) -> None:
    server = shared_kefu_server
    visitor_id, agent_id = server.fresh_apps(2)

    async def scenario() -> None:
        async with (
            server.client(visitor_id, suites=(suite,)) as visitor,
            server.client(agent_id, suites=(suite,)) as agent,
        ):
            assert visitor.suite is suite and agent.suite is suite
            conversation = new_conversation_id()
            receipts = [await visitor.send(conversation, f"问题 {i}", to=[agent_id]) for i in range(1, 6)]
            assert [r.seq for r in receipts] == [1, 2, 3, 4, 5]
            assert len({r.server_msg_id for r in receipts}) == 5 and not any(r.duplicate for r in receipts)
            got = await from_others(agent, 5)
            assert [(m.conversation_id, m.seq, m.text, m.sender) for m in got] == [
                (conversation, i, f"问题 {i}", visitor_id) for i in range(1, 6)
            ]
            assert [m.client_msg_id for m in got] == [r.client_msg_id for r in receipts]
            reply = await agent.send(conversation, "您好，请稍等")
            assert reply.seq == 6
            (answer,) = await from_others(visitor, 1)
            assert (answer.seq, answer.text, answer.sender) == (6, "您好，请稍等", agent_id)
            assert await quiet(agent) == []

    run(scenario())


def test_repeated_client_msg_id_returns_the_original_receipt(shared_kefu_server: KefuServer, run: Any) -> None:
    server = shared_kefu_server
    visitor_id, agent_id = server.fresh_apps(2)

    async def scenario() -> None:
        async with server.client(visitor_id) as visitor, server.client(agent_id) as agent:
            conversation = new_conversation_id()
            first = await visitor.send(conversation, "once", to=[agent_id], timeout=WAIT_S)
            again = await visitor.send(conversation, "once", client_msg_id=first.client_msg_id, timeout=WAIT_S)
            assert again.duplicate and not first.duplicate
            assert (again.seq, again.server_msg_id, again.timestamp_ms) == (first.seq, first.server_msg_id,
                                                                            first.timestamp_ms)  # fmt: skip
            assert [m.seq for m in await from_others(agent, 1)] == [1]
            assert await quiet(agent) == []  # stored and delivered once

    run(scenario())


def test_messages_sent_while_offline_arrive_in_order_on_connect(shared_kefu_server: KefuServer, run: Any) -> None:
    server = shared_kefu_server
    visitor_id, agent_id = server.fresh_apps(2)

    async def scenario() -> None:
        conversation = new_conversation_id()
        async with server.client(visitor_id) as visitor:
            for i in range(1, 21):
                await visitor.send(conversation, f"m{i}", to=[agent_id], timeout=WAIT_S)
        async with server.client(agent_id) as agent:
            got = await from_others(agent, 20)
            assert [m.seq for m in got] == list(range(1, 21))
            assert [m.text for m in got] == [f"m{i}" for i in range(1, 21)]
            history = await agent.sync(conversation, 0, 20, limit=20, timeout=WAIT_S)
            assert [m.seq for m in history] == list(range(1, 21)) and all(m.redelivery for m in history)
            assert await quiet(agent) == []

    run(scenario())


def test_server_restart_send_keeps_working_and_nothing_is_duplicated(kefu_server: KefuServer, run: Any) -> None:
    async def scenario() -> None:
        async with kefu_server.client("visitor") as visitor, kefu_server.client("agent") as agent:
            conversation = new_conversation_id()
            first = await visitor.send(conversation, "before", to=["agent"], timeout=WAIT_S)
            assert [m.seq for m in await from_others(agent, 1)] == [1]

            await asyncio.to_thread(kefu_server.stop)  # SIGTERM: GOAWAY, drain, exit
            async with asyncio.timeout(WAIT_S):
                while visitor.connected or agent.connected:
                    await asyncio.sleep(0.05)
            during = asyncio.ensure_future(visitor.send(conversation, "during", timeout=30))
            repeat = asyncio.ensure_future(visitor.send(conversation, "before", client_msg_id=first.client_msg_id))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(kefu_server.start)

            second = await during
            assert second.seq == 2 and not second.duplicate
            again = await asyncio.wait_for(repeat, WAIT_S)
            assert again.duplicate and again.seq == 1
            got = await from_others(agent, 1, timeout=30)
            assert [(m.seq, m.text) for m in got] == [(2, "during")]
            assert await quiet(agent, 1.0) == []
            assert visitor.reconnects >= 1 and agent.reconnects >= 1

    run(scenario(), timeout=90)


def test_reconnect_resumes_the_session(shared_kefu_server: KefuServer, run: Any) -> None:
    server = shared_kefu_server
    visitor_id, agent_id = server.fresh_apps(2)

    async def scenario() -> None:
        async with server.client(visitor_id) as visitor, server.client(agent_id) as agent:
            assert not visitor.resumed
            conversation = new_conversation_id()
            await visitor.send(conversation, "hello", to=[agent_id], timeout=WAIT_S)
            assert visitor._link is not None
            visitor._link.abort()  # the network drops us
            await reconnected(visitor)
            assert visitor.resumed and visitor.reconnects == 1
            assert (await visitor.send(conversation, "again", timeout=WAIT_S)).seq == 2
            assert [m.seq for m in await from_others(agent, 2)] == [1, 2]

    run(scenario())


def test_explicit_acks_what_is_not_acked_comes_again_after_a_reconnect(
    shared_kefu_server: KefuServer, run: Any
) -> None:
    """With explicit_ack the client acknowledges nothing until message.ack() (acks of 2 alone cannot be sent: the
    wire's ack is cumulative). After the connection drops, the real server resends what was not acked and the client
    gives the app 1 and 3 again, not 2; a client without state then gets all three (nothing was acknowledged), acks
    them, and the next one gets none. Connects by URL with the secret as text, as `kefu app add` prints it."""
    server = shared_kefu_server
    visitor_id, agent_id = server.fresh_apps(2)

    async def scenario() -> None:
        conversation = new_conversation_id()
        async with server.client(visitor_id) as visitor:
            for i in (1, 2, 3):
                await visitor.send(conversation, f"m{i}", to=[agent_id])
        events: list[str] = []
        changes = {"disconnected_cb": lambda: events.append("down"), "reconnected_cb": lambda: events.append("up")}
        async with Client.from_url(server.url(agent_id), explicit_ack=True, connect_timeout=5, **changes) as agent:
            got = await from_others(agent, 3)
            assert [(m.seq, m.redelivery) for m in got] == [(1, False), (2, False), (3, False)]
            await got[1].ack()
            assert agent._link is not None
            agent._link.abort()  # the network drops us
            await reconnected(agent)
            again = await from_others(agent, 2)
            assert [(m.seq, m.text, m.redelivery) for m in again] == [(1, "m1", True), (3, "m3", True)]
            assert await quiet(agent) == [] and events == ["down", "up"]
        async with Client.from_url(server.url(agent_id), explicit_ack=True, connect_timeout=5) as fresh:
            got = await from_others(fresh, 3)
            assert [m.seq for m in got] == [1, 2, 3]
            for message in reversed(got):
                await message.ack()
        async with server.client(agent_id) as last:
            assert await quiet(last) == []

    run(scenario())


def test_psk_with_ecdhe_resumption(shared_kefu_server: KefuServer, run: Any) -> None:
    (visitor_id,) = shared_kefu_server.fresh_apps(1)

    async def scenario() -> None:
        options: dict[str, Any] = {"psk_with_ecdhe": True, "suites": (Suite.INTERNATIONAL,)}
        async with shared_kefu_server.client(visitor_id, **options) as visitor:
            assert visitor._link is not None
            visitor._link.abort()
            await reconnected(visitor)
            assert visitor.resumed

    run(scenario())


def test_close_is_clean(shared_kefu_server: KefuServer, run: Any) -> None:
    (visitor_id,) = shared_kefu_server.fresh_apps(1)

    async def scenario() -> None:
        visitor = shared_kefu_server.client(visitor_id)
        await visitor.connect()
        link = visitor._link
        assert link is not None
        started = time.monotonic()
        await visitor.close()
        assert time.monotonic() - started < 1.5  # the server's CLOSE came back; no timeout
        assert isinstance(link.end, ConnectionClosed) and link.end.code is ErrorCode.OK
        assert not visitor.connected

    run(scenario())


def test_refusals(shared_kefu_server: KefuServer, run: Any) -> None:
    server = shared_kefu_server
    visitor_id, agent_id, outsider_id = server.fresh_apps(3)

    async def scenario() -> None:
        with pytest.raises(AuthFailed) as denied:
            await Client(
                "127.0.0.1", server.port, app_id=visitor_id, app_secret=b"\x00" * 32, server_pins=server.pins
            ).connect()
        assert denied.value.code is ErrorCode.AUTH_FAILED
        async with server.client(visitor_id) as visitor, server.client(outsider_id) as outsider:
            conversation = new_conversation_id()
            await visitor.send(conversation, "private", to=[agent_id], timeout=WAIT_S)
            with pytest.raises(SendRefused) as refused:
                await outsider.send(conversation, "let me in", timeout=WAIT_S)
            assert refused.value.code is ErrorCode.NOT_FOUND, "as if there were no such conversation"

    run(scenario())


def test_blocking_client_round_trip(shared_kefu_server: KefuServer) -> None:
    server = shared_kefu_server
    script_id, agent_id = server.fresh_apps(2)
    options: dict[str, Any] = {"server_pins": server.pins, "connect_timeout": 5}
    with (
        BlockingClient("127.0.0.1", server.port, app_id=script_id, app_secret=server.secrets[script_id],
                       **options) as script,
        BlockingClient("127.0.0.1", server.port, app_id=agent_id, app_secret=server.secrets[agent_id],
                       **options) as agent,
    ):  # fmt: skip
        assert script.connected and script.suite is Suite.NATIONAL
        conversation = new_conversation_id()
        receipt = script.send(conversation, "blocking hello", to=[agent_id], timeout=WAIT_S)
        assert receipt.seq == 1
        message = agent.receive(WAIT_S)
        assert message is not None and (message.seq, message.text) == (1, "blocking hello")
        agent.send(conversation, "blocking reply", timeout=WAIT_S)
        replies = [m for m in iter(lambda: script.receive(2.0), None) if m.sender == agent_id]
        assert [m.text for m in replies] == ["blocking reply"]
        assert script.sync(conversation, 0, 5, timeout=WAIT_S)[0].text == "blocking hello"
    assert not script.connected and not agent.connected


def run_examples(
    kefu_server: KefuServer, tmp_path: Path, agent: tuple[str, ...], visitor: tuple[str, ...], *mode: str
) -> tuple[str, str]:
    """Start the agent example, wait until it is ready, run the visitor example against it, and return both
    outputs (visitor, agent) once both exited with status 0. `agent` and `visitor` are the app id and the
    script's own arguments; `mode` goes to both (e.g. --service)."""
    pins = tmp_path / "pins.txt"
    pins.write_text("\n".join(kefu_server.pins) + "\n")

    def command(script: str, app_id: str, *extra: str) -> list[str]:
        secret = base64.urlsafe_b64encode(kefu_server.secrets[app_id]).rstrip(b"=").decode()
        return [
            sys.executable, str(EXAMPLES / script), "--port", str(kefu_server.port), "--app-id", app_id,
            f"--secret={secret}", "--pins-file", str(pins), "--timeout", "30", *mode, *extra,
        ]  # fmt: skip

    process = subprocess.Popen(command("agent.py", *agent), stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the agent example did not get ready in 30 s"
        assert process.stdout.readline().startswith("agent: ready")
        result = subprocess.run(
            command("visitor.py", *visitor), capture_output=True, text=True, timeout=45, check=False
        )
        assert result.returncode == 0, result.stderr
        out, _ = process.communicate(timeout=45)
        assert process.returncode == 0
        return result.stdout, out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def test_examples_exchange_a_message_and_exit(shared_kefu_server: KefuServer, tmp_path: Path) -> None:
    visitor_id, agent_id = shared_kefu_server.fresh_apps(2)
    visitor, agent = run_examples(
        shared_kefu_server, tmp_path, (agent_id, "--count", "1"), (visitor_id, "--agent", agent_id, "你好")
    )
    assert f"visitor: {agent_id} replied: 您好 {visitor_id}，已收到：你好" in visitor
    assert f"agent: {visitor_id} says: 你好" in agent


def test_examples_in_service_mode(shared_kefu_server: KefuServer, tmp_path: Path) -> None:
    """The agent goes online at the desk; the visitor opens a service conversation and is routed to it (the only
    test of this module with an agent online at the desk, so the desk has no other agent to pick)."""
    (agent_id,) = shared_kefu_server.fresh_apps(1, role="agent")
    (visitor_id,) = shared_kefu_server.fresh_apps(1, role="visitor")
    visitor, agent = run_examples(
        shared_kefu_server, tmp_path, (agent_id, "--count", "1"), (visitor_id, "请问营业时间"), "--service"
    )
    assert f"in general: agent {agent_id}" in visitor
    assert f"visitor: {agent_id} replied: 您好 {visitor_id}，已收到：请问营业时间" in visitor
    assert f"agent: {visitor_id} says: 请问营业时间" in agent


def test_a_handshake_refused_for_load_is_retried_after_the_servers_delay(tmp_path: Path, run: Any) -> None:
    """Spec section 5.9: past the handshake budget the server answers CLIENT_HELLO with a GOAWAY (OVERLOADED); the
    client waits the delay it gives and connects, within its connect timeout."""
    import urllib.request  # noqa: PLC0415

    from .conftest import KefuServer, free_port  # noqa: PLC0415

    server = KefuServer(tmp_path / "data", free_port())
    server.env["KEFU_LIMITS_HANDSHAKE_CPU_SHARE"] = "0.02"
    server.add_app("alice")
    server.start()
    try:

        async def main() -> None:
            clients = [server.client("alice", connect_timeout=20) for _ in range(10)]
            await asyncio.gather(*(c.connect() for c in clients))
            receipt = await clients[-1].send(new_conversation_id(), b"in", to=["alice"])
            assert receipt.seq == 1
            for c in clients:
                await c.close()

        run(main(), timeout=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5) as page:
            metrics = page.read().decode()
        refused = [
            float(line.rsplit(" ", 1)[1])
            for line in metrics.splitlines()
            if line.startswith("kefu_handshakes_total") and 'result="refused"' in line
        ]
        assert sum(refused) >= 1, "no handshake was refused: the test did not exercise the retry"
    finally:
        server.stop()
