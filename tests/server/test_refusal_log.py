"""Refused requests are logged at info with app, request type and code, at a bounded rate (RefusalLog)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import ContentType, OpenConversation, Send
from kefu.server.config import Config
from kefu.server.engine.core import Core
from kefu.server.engine.refusals import REFUSAL_LOG_BURST, REFUSAL_LOG_PER_S, RefusalLog

from .fakes import MemoryLog, RecordingEndpoint

OPEN = OpenConversation(b"r" * 16, "", "nope", (), "我的卡丢了".encode())


def test_a_burst_is_logged_then_a_bounded_rate_with_the_count_left_out() -> None:
    now, lines = [100.0], []
    log = RefusalLog(lambda: now[0], lambda name, **fields: lines.append((name, fields)))
    for _ in range(REFUSAL_LOG_BURST + 50):  # a flood at one instant
        log.refused("visitor-1", OPEN, ErrorCode.NOT_FOUND)
    assert len(lines) == REFUSAL_LOG_BURST
    assert lines[0] == ("request.refused", {"app": "visitor-1", "request": "OPEN_CONVERSATION", "code": "NOT_FOUND"})
    now[0] += 1 / REFUSAL_LOG_PER_S
    log.refused("visitor-1", OPEN, ErrorCode.RATE_LIMITED)
    assert lines[-1][1] == {
        "app": "visitor-1",
        "request": "OPEN_CONVERSATION",
        "code": "RATE_LIMITED",
        "not_logged": 50,
    }
    assert "我" not in repr(lines) and "nope" not in repr(lines), "no content, no reason, no group name"


@pytest.mark.asyncio
async def test_the_core_logs_a_refused_send_with_its_app_type_and_code() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    loop = asyncio.get_running_loop()
    core = Core(config=Config(), log=MemoryLog(loop), loop=loop, events=lambda n, **f: events.append((n, f)))
    endpoint = RecordingEndpoint()
    core.admit(endpoint, 1, "198.51.100.1:1")
    core.opened(endpoint, 1, "alice")
    core.submit(endpoint, 1, Send(b"m" * 16, 0, ContentType.TEXT, b"secret words", (), request_id=1), 0.0)
    refused = [fields for name, fields in events if name == "request.refused"]
    assert refused == [{"app": "alice", "request": "SEND", "code": "BAD_REQUEST"}]
