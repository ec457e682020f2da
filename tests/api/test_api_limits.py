"""The API's bound on connections ([api] max_connections): past it a connection is answered 503 BUSY and closed,
and the API serves again once connections go."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path
from typing import Any, cast

import pytest

from kefu.server.api import app as app_module
from kefu.server.api.context import ApiContext
from kefu.server.config import load_config
from tests.integration.conftest import ServerProcess
from tests.integration.service_harness import add_apps, write_directory

from .conftest import Api


def test_connections_past_the_bound_get_503(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_directory(data_dir)
    secrets = add_apps(data_dir)
    env = {"KEFU_SERVICE_DIRECTORY": "service.toml", "KEFU_API_MAX_CONNECTIONS": "3", "KEFU_SERVER_WORKERS": "0"}
    server = ServerProcess(data_dir, env=env)
    server.start()
    held: list[socket.socket] = []
    try:
        api = Api(server, secrets)
        for _ in range(3):  # kept-alive connections, as a slow or hostile client holds them
            sock = socket.create_connection(("127.0.0.1", server.api_port), timeout=10)
            held.append(sock)
            sock.sendall(b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 401")  # answered: the server holds it now
        with socket.create_connection(("127.0.0.1", server.api_port), timeout=10) as extra:
            extra.sendall(b"GET /v1/queues HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = extra.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503") and b'"BUSY"' in answer, answer
        for sock in held:
            sock.close()
        held.clear()
        deadline = time.monotonic() + 10
        while (reply := api.call("bankapp", "GET", "/v1/queues")).status != 200:
            assert time.monotonic() < deadline, reply
            time.sleep(0.1)
    finally:
        for sock in held:
            sock.close()
        server.stop()


@pytest.mark.asyncio
async def test_an_idle_or_half_sent_connection_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(app_module, "IDLE_TIMEOUT_S", 0.5)
    config = load_config(env={}, overrides={"api.port": 0})
    ctx = ApiContext(config, cast(Any, None), cast(Any, None), cast(Any, None), cast(Any, None))
    server = app_module.ApiServer(ctx)
    host, port = await server.start()
    try:
        for start in (b"", b"GET /v1/queues HTTP/1.1\r\nHost: x\r\n"):  # nothing, and a request never finished
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(start)
            async with asyncio.timeout(5):
                assert await reader.read() == b""  # closed by the server, without an answer
            writer.close()
    finally:
        await server.stop()
