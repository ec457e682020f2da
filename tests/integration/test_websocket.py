"""The WebSocket gateway (issue #17 point 1, spec section 15) against a real `kefu serve`, in one process and with
two gateway processes: the kefu protocol byte for byte in binary WebSocket messages (both suites' full handshakes, a
resumption, messages both ways between a WebSocket client and a TCP client), the Origin policy, every kind of bad
input ending in a specific close while the server serves on, the port's static files and /config.json, and the
port held across a gateway's restart.

The clients are the test peer (`.peer.Peer`, the sans-IO client core) and `kefu.client.Client`, each run unchanged
over aiohttp's client WebSocket (`bench.kefu_bench.wsclient`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import os
import signal
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bench.kefu_bench.wsclient import WsTransport, open_ws, ws_client
from kefu.client import Client, new_conversation_id
from kefu.protocol import frames
from kefu.protocol.crypto import Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import TicketReceived
from kefu.protocol.handshake import ClientConfig

from .conftest import ServerProcess, add_app, add_apps, running_server
from .peer import TIMEOUT, Peer

pytestmark = pytest.mark.asyncio

BANK = "https://bank.example"
"""The one other origin the server is told to allow ([web] allowed_origins)."""
WAIT_S = 10.0
REQUEST_TIMEOUT_S = 3.0
"""[web] request_timeout_s of this module's servers (15 s by default): a connection that never finishes its request
is closed after it; the module's HTTP clients finish theirs at once."""


@pytest.fixture(scope="module", params=[0, 2], ids=["one-process", "two-gateways"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with its web port, alice and bob, in one process or with two gateways."""
    env = {"KEFU_SERVER_WORKERS": str(request.param), "KEFU_WEB_ALLOWED_ORIGINS": BANK,
           "KEFU_WEB_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S)}  # fmt: skip
    yield from running_server(tmp_path_factory.mktemp(f"web-{request.param}"), env, ("alice", "bob"))


def ws_url(server: ServerProcess) -> str:
    return f"ws://127.0.0.1:{server.web_port}/ws"


def http_url(server: ServerProcess, path: str) -> str:
    return f"http://127.0.0.1:{server.web_port}{path}"


async def ws_peer(server: ServerProcess, app: str = "alice", *, suite: Suite = Suite.NATIONAL, **config: Any) -> Peer:
    """The test peer over the WebSocket gateway, its handshake done."""
    peer = Peer(ClientConfig(app, server.pins, (suite,), app_secret=server.secrets[app], **config))
    await open_ws(ws_url(server), lambda: peer)
    await asyncio.wait_for(asyncio.shield(peer.ready), TIMEOUT)
    return peer


def client_kwargs(server: ServerProcess, app: str, **more: Any) -> dict[str, Any]:
    return {"app_id": app, "app_secret": server.secrets[app], "server_pins": list(server.pins), **more}


async def raw_ws(server: ServerProcess, **kwargs: Any) -> tuple[aiohttp.ClientSession, aiohttp.ClientWebSocketResponse]:
    """A bare WebSocket to /ws (subprotocol kefu.v1 unless `protocols` says otherwise), for bad input."""
    http = aiohttp.ClientSession()
    kwargs.setdefault("protocols", ("kefu.v1",))
    try:
        return http, await http.ws_connect(ws_url(server), **kwargs)
    except BaseException:
        await http.close()
        raise


async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> list[aiohttp.WSMessage]:
    """Every message until the server's close (which aiohttp answers)."""
    got = []
    async with asyncio.timeout(WAIT_S):
        while True:
            msg = await ws.receive()
            got.append(msg)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return got


async def closed(peer: Peer) -> None:
    """Close the peer's connection and wait until it is gone (a WebSocket's own HTTP session closed with it)."""
    peer.close()
    await asyncio.wait_for(asyncio.shield(peer.lost), WAIT_S)


async def still_serves(server: ServerProcess) -> None:
    """A fresh WebSocket session completes its handshake."""
    peer = await ws_peer(server, "bob")
    await closed(peer)


# --- the protocol over WebSocket ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suite", [Suite.NATIONAL, Suite.INTERNATIONAL], ids=["national", "international"])
async def test_full_handshake_then_resumption_over_websocket(server: ServerProcess, suite: Suite) -> None:
    first = await ws_peer(server, suite=suite)
    assert first.ready.result().suite is suite and not first.ready.result().resumed
    ticket = (await first.next(TicketReceived)).ticket
    await closed(first)
    second = await ws_peer(server, suite=suite, ticket=dataclasses.replace(ticket, received_at=time.time()))
    assert second.ready.result().resumed and second.ready.result().app_id == "alice"
    await closed(second)


async def test_messages_both_ways_between_a_websocket_client_and_a_tcp_client(server: ServerProcess) -> None:
    conversation = new_conversation_id()
    async with (
        ws_client(ws_url(server), **client_kwargs(server, "alice")) as browser,
        Client("127.0.0.1", server.port, **client_kwargs(server, "bob")) as bank,
    ):
        sent = await browser.send(conversation, "你好 over WebSocket", to=["bob"], timeout=WAIT_S)
        got = await bank.receive(WAIT_S)
        assert got is not None and got.text == "你好 over WebSocket" and got.seq == sent.seq and got.sender == "alice"
        big = bytes(range(256)) * 240  # a record cut into several messages by the client (spec 15.2)
        sent = await browser.send(conversation, big, timeout=WAIT_S)
        got = await bank.receive(WAIT_S)
        assert got is not None and got.body == big and got.seq == sent.seq
        bodies = [bytes([i]) * 60_000 for i in range(8)]  # one flush of DELIVERs: records past one message's size
        receipts = await asyncio.gather(*(bank.send(conversation, body, timeout=WAIT_S) for body in bodies))
        for body, receipt in zip(bodies, receipts, strict=True):
            back = await browser.receive(WAIT_S)
            assert back is not None and back.body == body and back.seq == receipt.seq and back.sender == "bob"


async def test_a_websocket_session_is_counted_like_a_tcp_one(server: ServerProcess) -> None:
    peer = await ws_peer(server)
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(40):  # the byte counts reach Prometheus once a second
                text = await (await http.get(f"http://127.0.0.1:{server.metrics_port}/metrics")).text()
                series = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
                if float(series.get('kefu_websocket_bytes_total{direction="in"}', 0)) > 0:
                    break
                await asyncio.sleep(0.1)
        assert float(series["kefu_websocket_connections"]) >= 1
        assert float(series['kefu_connections{state="open",suite="national"}']) >= 1
        assert float(series['kefu_websocket_bytes_total{direction="in"}']) > 0
    finally:
        await closed(peer)


# --- bad input: a specific close each, and the server serves on ----------------------------------------------------


async def test_garbage_gets_a_kefu_error_then_a_close(server: ServerProcess) -> None:
    http, ws = await raw_ws(server)
    try:
        await ws.send_bytes(b"\xff" * 64)  # a frame header no version of the protocol has
        got = await until_closed(ws)
        data = b"".join(m.data for m in got if m.type is aiohttp.WSMsgType.BINARY)
        assert data[frames.TYPE_OFFSET] == frames.FrameType.ERROR
        error = frames.parse_body(frames.FrameType.ERROR, data[frames.HEADER_LEN :])
        assert isinstance(error, frames.Error) and error.code != ErrorCode.OK
        assert ws.close_code == aiohttp.WSCloseCode.OK
    finally:
        await http.close()
    await still_serves(server)


async def test_a_text_message_closes_with_1003(server: ServerProcess) -> None:
    http, ws = await raw_ws(server)
    try:
        await ws.send_str("hello")
        await until_closed(ws)
        assert ws.close_code == aiohttp.WSCloseCode.UNSUPPORTED_DATA
    finally:
        await http.close()
    await still_serves(server)


async def test_a_message_larger_than_a_handshake_frame_closes_with_1009(server: ServerProcess) -> None:
    http, ws = await raw_ws(server)
    try:
        await ws.send_bytes(bytes(frames.HEADER_LEN + frames.MAX_HANDSHAKE_BODY + 1))
        await until_closed(ws)
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    finally:
        await http.close()
    await still_serves(server)


async def test_a_long_message_is_refused_from_its_header_before_any_of_it_is_held(server: ServerProcess) -> None:
    """Before the handshake nothing larger than a handshake frame is buffered (spec sections 8 and 15.2): a frame
    declaring a megabyte gets 1009 as soon as its header is read, while its payload has not arrived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.web_port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.web_port}\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                     f"Sec-WebSocket-Protocol: kefu.v1\r\n\r\n".encode())  # fmt: skip
        async with asyncio.timeout(WAIT_S):
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 101")
            writer.write(bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 1 << 20) + os.urandom(4) + bytes(1000))
            frame = await reader.readexactly(4)  # the server's close: FIN+CLOSE, length 2 or more, the code
        assert frame[0] == 0x88 and struct.unpack("!H", frame[2:4])[0] == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
    finally:
        writer.close()
    await still_serves(server)


async def test_a_session_ended_by_the_protocol_closes_the_websocket(server: ServerProcess) -> None:
    peer = await ws_peer(server)
    transport = peer.transport
    assert isinstance(transport, WsTransport)
    peer.conn.close(ErrorCode.OK, "bye")
    peer._flush()  # the CLOSE; the server answers with its own and closes the WebSocket
    await asyncio.wait_for(peer.lost, WAIT_S)
    assert transport.ws.close_code == aiohttp.WSCloseCode.OK


@pytest.mark.parametrize("protocols", [(), ("chat",), ("kefu.v2", "chat")], ids=["none", "other", "others"])
async def test_the_kefu_subprotocol_is_required(server: ServerProcess, protocols: tuple[str, ...]) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await raw_ws(server, protocols=protocols)
    assert refused.value.status == 400
    await still_serves(server)


async def test_a_plain_get_of_ws_is_refused(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http, http.get(http_url(server, "/ws")) as response:
        assert response.status == 400


async def test_a_connection_that_never_finishes_its_request_is_closed(server: ServerProcess) -> None:
    """It holds a descriptor outside the connection limits until then ([web] request_timeout_s)."""
    if server.workers():
        pytest.skip("the same WebPort serves both modes: its wait is spent once, in one process")
    reader, writer = await asyncio.open_connection("127.0.0.1", server.web_port)
    try:
        writer.write(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        t0 = time.monotonic()
        assert await asyncio.wait_for(reader.read(), REQUEST_TIMEOUT_S + WAIT_S) == b""
        assert time.monotonic() - t0 >= REQUEST_TIMEOUT_S - 1
    finally:
        writer.close()
    await still_serves(server)


# --- the Origin policy ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),  # not a browser
        ("same", True),  # the port's own pages
        (BANK, True),  # listed in allowed_origins
        ("https://BANK.example:443", True),  # the same origin, spelt otherwise
        ("https://evil.example", False),
        ("http://bank.example", False),  # another scheme is another origin
        ("null", False),  # a sandboxed page, a file
        ("not an origin", False),
    ],
)
async def test_origin_policy(server: ServerProcess, origin: str | None, allowed: bool) -> None:
    if origin == "same":
        origin = f"http://127.0.0.1:{server.web_port}"
    if allowed:
        peer = Peer(ClientConfig("alice", server.pins, (Suite.NATIONAL,), app_secret=server.secrets["alice"]))
        await open_ws(ws_url(server), lambda: peer, origin=origin)
        await asyncio.wait_for(asyncio.shield(peer.ready), TIMEOUT)
        await closed(peer)
    else:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await raw_ws(server, headers={"Origin": origin})
        assert refused.value.status == 403


async def test_an_allowed_cross_origin_page_may_read_the_answers(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(http_url(server, "/config.json"), headers={"Origin": BANK}) as response:
            assert response.status == 200 and response.headers["Access-Control-Allow-Origin"] == BANK
        async with http.options(http_url(server, "/auth/visitor"), headers={"Origin": BANK}) as response:
            assert response.status == 204 and "POST" in response.headers["Access-Control-Allow-Methods"]
        async with http.get(http_url(server, "/config.json"), headers={"Origin": "https://evil.example"}) as response:
            assert response.status == 403 and "Access-Control-Allow-Origin" not in response.headers


# --- static files and /config.json ---------------------------------------------------------------------------------


async def test_config_json_says_how_to_connect(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http, http.get(http_url(server, "/config.json")) as response:
        assert response.status == 200
        body = await response.json()
    assert body["ws"] == "/ws" and body["suites"] == ["national", "international"]
    assert set(body["server_pins"]) == set(server.pins)
    assert body["api"] == f"http://127.0.0.1:{server.api_port}"  # the port picked at start, in both modes


async def test_static_pages_and_the_js_client(server: ServerProcess) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(http_url(server, "/"), allow_redirects=False) as response:
            assert response.status == 302 and response.headers["Location"] == "/console/"
        framing = {"/console/": "; frame-ancestors 'none'", "/widget/frame.html": ""}  # any page frames the widget
        for page, ancestors in framing.items():
            async with http.get(http_url(server, page)) as response:
                assert response.status == 200 and response.content_type == "text/html"
                csp = f"default-src 'self'; connect-src 'self' http://127.0.0.1:{server.api_port}{ancestors}"
                assert response.headers["Content-Security-Policy"] == csp
                assert response.headers.get("X-Frame-Options") == ("DENY" if ancestors else None)
        async with http.get(http_url(server, "/js/index.d.ts")) as response:
            assert response.status == 200 and "export" in await response.text()
        js = sorted(p.name for p in (Path(__file__).parents[2] / "clients" / "js" / "src").glob("*.js"))
        if js:
            async with http.get(http_url(server, f"/js/{js[0]}")) as response:
                assert response.status == 200 and response.content_type == "application/javascript"
        for outside in ("/js/../../pyproject.toml", "/js/%2e%2e/%2e%2e/pyproject.toml", "/console/.hidden",
                        "/js/nothing-here.js", "/console/..%2f..%2fconfig.py"):  # fmt: skip
            async with http.get(http_url(server, outside)) as response:
                assert response.status == 404, outside


# --- the port across a gateway's restart ---------------------------------------------------------------------------


async def test_a_restarted_gateway_serves_the_same_web_port(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, env={"KEFU_SERVER_WORKERS": "1"})
    server.secrets.update(add_apps(data, ("alice", "bob")))
    server.start()
    try:
        await still_serves(server)
        old, port = server.workers()["gateway-0"], server.web_port
        os.kill(old, signal.SIGKILL)
        async with asyncio.timeout(30):
            while server.workers().get("gateway-0") in (None, old):
                await asyncio.sleep(0.05)
            while True:  # until the new gateway listens (the supervisor held the port meanwhile)
                try:
                    await still_serves(server)
                    break
                except (OSError, aiohttp.ClientError, ConnectionError):
                    await asyncio.sleep(0.05)
        assert server.web_port == port
    finally:
        server.kill()


async def test_websocket_connections_count_against_the_same_connection_limit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, env={"KEFU_SERVER_WORKERS": "0", "KEFU_SERVER_MAX_CONNECTIONS": "2"})
    server.secrets.update(add_apps(data, ("alice", "bob")))
    server.start()
    try:
        tcp = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins)
        ws = await ws_peer(server)
        http, third = await raw_ws(server)  # a third connection: over the limit, whichever the transport
        try:
            got = await until_closed(third)
            assert [m.type for m in got] == [aiohttp.WSMsgType.CLOSE]  # not a byte of the protocol
            assert third.close_code == aiohttp.WSCloseCode.TRY_AGAIN_LATER
        finally:
            await http.close()
        await closed(ws)
        await asyncio.sleep(0.2)  # the core hears of the close
        again = await ws_peer(server, "bob")  # room again
        await closed(again)
        await closed(tcp)
    finally:
        server.kill()


async def test_http_connections_not_yet_upgraded_are_bounded_too(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = ServerProcess(data, env={"KEFU_SERVER_WORKERS": "0", "KEFU_SERVER_MAX_CONNECTIONS": "2"})
    server.secrets["alice"] = add_app(data, "alice")
    server.start()
    idle = []
    try:
        for _ in range(2):  # connections that never send a request: the port's bound is reached
            idle.append(await asyncio.open_connection("127.0.0.1", server.web_port))
        reader, writer = await asyncio.open_connection("127.0.0.1", server.web_port)
        writer.write(b"GET /config.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), WAIT_S) == b""  # reset, unanswered
        writer.close()
        idle.pop()[1].close()
        await asyncio.sleep(0.2)
        peer = await ws_peer(server)  # room again
        await closed(peer)
        text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
        assert 'kefu_websocket_refused_total{reason="connections"} 1.0' in text
    finally:
        for _, w in idle:
            w.close()
        server.kill()
