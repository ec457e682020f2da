"""Explicit acknowledgement, connection callbacks and send()'s default timeout, against the scripted server
(tests/client/scripted.py) on asyncio and uvloop."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from kefu.client import BlockingClient, Client, ConnectionLost, Message, SendTimeout
from kefu.protocol.frames import DeliverAck, Send

from .scripted import APP_ID, APP_SECRET, PINS, ScriptedServer, deliver
from .test_options import SECRET_TEXT
from .test_socket import CONV, acked, client_for


async def quiet_acks(session: Any, count: int) -> None:
    """Give the client time to (wrongly) acknowledge, then check it sent exactly `count` DELIVER_ACKs."""
    await asyncio.sleep(0.15)
    assert len(session.of(DeliverAck)) == count


def test_explicit_acks_are_sent_only_when_awaited_in_any_order(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            async with client_for(server, explicit_ack=True) as client:
                session = await server.accept()
                session.send(deliver(CONV, 1), deliver(CONV, 2), deliver(CONV, 3))
                got = [await client.receive(2) for _ in range(3)]
                assert [m.seq for m in got if m is not None] == [1, 2, 3]
                assert await client.receive(0.1) is None  # asking for more acknowledges nothing
                await quiet_acks(session, 0)
                first, second, third = (m for m in got if m is not None)
                await third.ack()  # 1 and 2 are still with the app: a cumulative ack of 3 would cover them
                await quiet_acks(session, 0)
                await first.ack()
                await session.wait_for(DeliverAck, 1)
                assert acked(session) == {CONV: 1}
                await second.ack()
                await session.wait_for(DeliverAck, 2)
                assert acked(session) == {CONV: 3}
                session.send(deliver(CONV, 4))
                fourth = await client.receive(2)
                assert fourth is not None and fourth.seq == 4
            await session.wait_end()  # closing acknowledges nothing in explicit mode
            assert acked(session) == {CONV: 3}
            await fourth.ack()  # after close: a no-op, not an error

    run(scenario())


def test_connection_callbacks(run: Any) -> None:
    async def scenario() -> None:
        calls: list[str] = []
        errors: list[BaseException] = []

        def connected() -> None:
            calls.append("connected")
            raise RuntimeError("a broken callback")  # reported to error_cb, the client carries on

        async def disconnected() -> None:
            await asyncio.sleep(0)
            calls.append("disconnected")

        async def error(exc: BaseException) -> None:
            errors.append(exc)

        async with ScriptedServer() as server:
            client = client_for(
                server, connected_cb=connected, disconnected_cb=disconnected,
                reconnected_cb=lambda: calls.append("reconnected"), error_cb=error,
            )  # fmt: skip
            async with client:
                (await server.accept()).abort()
                await server.accept()
                async with asyncio.timeout(3):
                    while "reconnected" not in calls:
                        await asyncio.sleep(0.01)
                assert calls == ["connected", "disconnected", "reconnected"]
                assert [str(e) for e in errors] == ["a broken callback"]
                server.config = dataclasses.replace(server.config, apps={})  # the app is revoked
                server.all[-1].abort()
                with pytest.raises(ConnectionLost):
                    await client.receive(5)
            assert calls == ["connected", "disconnected", "reconnected", "disconnected"]
            assert isinstance(errors[-1], ConnectionLost) and "AUTH_FAILED" in str(errors[-1])

    run(scenario())


def test_send_has_a_default_timeout(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server, client_for(server, send_timeout=0.3) as client:
            session = await server.accept()
            with pytest.raises(SendTimeout):
                await client.send(CONV, "never answered")  # no timeout given: the options' applies
            assert len(session.of(Send)) == 1

    run(scenario())


def test_blocking_client_from_url_with_explicit_acks(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            pins = "&".join(f"pin={pin}" for pin in sorted(PINS))
            url = f"kefu://{APP_ID}:{SECRET_TEXT}@127.0.0.1:{server.port}?{pins}"
            blocking = BlockingClient.from_url(url, explicit_ack=True, connect_timeout=3)
            assert blocking.options.app_secret == APP_SECRET
            await asyncio.to_thread(blocking.connect)
            session = await server.accept()
            session.send(deliver(CONV, 1))
            message: Message | None = await asyncio.to_thread(blocking.receive, 2)
            assert message is not None and await asyncio.to_thread(blocking.receive, 0.1) is None
            await quiet_acks(session, 0)
            await asyncio.to_thread(blocking.ack, message)
            await session.wait_for(DeliverAck)
            assert acked(session) == {CONV: 1}
            await asyncio.to_thread(blocking.close)

    run(scenario())


def test_a_client_from_url_connects(run: Any) -> None:
    async def scenario() -> None:
        async with ScriptedServer() as server:
            pins = "&".join(f"pin={pin}" for pin in sorted(PINS))
            async with Client.from_url(f"kefu://{APP_ID}:{SECRET_TEXT}@127.0.0.1:{server.port}/?{pins}") as client:
                await server.accept()
                assert client.connected

    run(scenario())
