"""Pending sends without a socket: bounds, order, requeueing."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kefu.client.outbox import Outbox, PendingSend, build_send
from kefu.protocol.frames import MAX_BODY, Send


def pending(n: int, size: int = 10) -> PendingSend:
    frame = Send(n.to_bytes(16, "big"), 1, 1, b"x" * size, ())
    return PendingSend(frame, asyncio.get_running_loop().create_future())


def test_room_is_bounded_by_count_and_bytes() -> None:
    async def scenario() -> None:
        outbox = Outbox(max_count=2, max_bytes=25)
        outbox.add(pending(1))
        assert outbox.has_room(10) and not outbox.has_room(20)
        outbox.add(pending(2))
        assert not outbox.has_room(1)
        waiter = asyncio.ensure_future(outbox.wait_room(10))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        outbox.remove((1).to_bytes(16, "big"))
        await asyncio.wait_for(waiter, 1)
        # an empty outbox takes any single message, however large
        empty = Outbox(max_count=1, max_bytes=1)
        assert empty.has_room(10_000)

    asyncio.run(scenario())


def test_unsent_in_submission_order_and_requeue_all() -> None:
    async def scenario() -> None:
        outbox = Outbox()
        entries = [pending(n) for n in range(1, 6)]
        for entry in entries:
            outbox.add(entry)
        assert [e.client_msg_id for e in outbox.take_unsent()] == [e.client_msg_id for e in entries]
        assert not outbox.has_unsent
        outbox.remove(entries[1].client_msg_id)  # settled
        entries[3].retry = asyncio.get_running_loop().call_later(10, lambda: None)  # waiting out a 429
        outbox.requeue_all()  # a new connection
        assert [e.client_msg_id[-1] for e in outbox.take_unsent()] == [1, 3, 5]
        outbox.requeue(entries[3].client_msg_id)  # its backoff is over
        assert [e.client_msg_id[-1] for e in outbox.take_unsent()] == [4]
        for entry in outbox.drain():
            entry.future.cancel()
        assert len(outbox) == 0

    asyncio.run(scenario())


def test_take_unsent_is_bounded_per_flush() -> None:
    async def scenario() -> None:
        outbox = Outbox()
        for n in range(10):
            outbox.add(pending(n, size=100))
        assert len(outbox.take_unsent(max_bytes=250)) == 3
        assert len(outbox.take_unsent(max_bytes=1)) == 1  # always at least one
        assert len(outbox.take_unsent()) == 6

    asyncio.run(scenario())


def test_retry_delays_back_off() -> None:
    async def scenario() -> None:
        entry = pending(1)
        delays = [entry.next_retry_delay() for _ in range(4)]
        assert 0.16 <= delays[0] <= 0.24 and delays[3] > delays[0] * 4

    asyncio.run(scenario())


def test_build_send_checks_locally() -> None:
    frame = build_send(7, "你好", content_type=1, metadata={"k": b"v"}, to=["a", "b"], client_msg_id=None)
    assert frame.body == "你好".encode() and len(frame.client_msg_id) == 16
    assert {m.key: m.value for m in frame.metadata} == {"k": b"v", "kefu.to": b"a,b"}
    cases: list[dict[str, Any]] = [
        {"conversation_id": 0},
        {"conversation_id": 1 << 64},
        {"client_msg_id": b"short"},
        {"body": b"x" * MAX_BODY},
    ]
    for case in cases:
        args: dict[str, Any] = {"conversation_id": 1, "body": b"", "content_type": 1, "metadata": None, "to": ()}
        args["client_msg_id"] = None
        args.update(case)
        with pytest.raises(ValueError):
            build_send(**args)
