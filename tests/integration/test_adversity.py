"""Bad input of any kind: a specific error code, a clean close, and no effect on other connections."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.protocol import frames
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionTerminated
from kefu.protocol.frames import HEADER, FrameType
from kefu.protocol.handshake import ClientConfig
from kefu.protocol.serverconn import AUTH_FAILED_REASON

from .conftest import ServerProcess, running_server
from .peer import Peer

pytestmark = pytest.mark.asyncio

READ_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module's tests of bad input (a start costs seconds): each checks its own connections'
    answers, that the server still serves (`healthy_exchange`, in a conversation of its own) and the log lines written
    since it began (`log_since`). The tests that count lines of the whole log, or need other settings, start their
    own."""
    yield from running_server(tmp_path_factory.mktemp("adversity"), {})


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh server for this test alone."""
    yield from running_server(tmp_path, {})


def log_since(server: ServerProcess, offset: int) -> str:
    """What the server logged after the log was `offset` bytes long."""
    with server.log_path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


@pytest.fixture
def quick_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with a 1 s handshake deadline."""
    yield from running_server(tmp_path, {"KEFU_SERVER_HANDSHAKE_TIMEOUT_S": "1.0"})


async def raw(server: ServerProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port)


async def shut(writer: asyncio.StreamWriter) -> None:
    """Close our end and wait for it (the server may already have reset it)."""
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def error_then_close(reader: asyncio.StreamReader) -> int:
    """Read until EOF; the server's last words must be one plaintext ERROR frame. Returns its code."""
    data = await asyncio.wait_for(reader.read(), READ_TIMEOUT)
    (raw_frame,) = frames.FrameDecoder().feed(data)
    error = frames.decode_frame(raw_frame)
    assert isinstance(error, frames.Error)
    return error.code


async def healthy_exchange(server: ServerProcess, conversation: int) -> None:
    """Two well-behaved clients still get through, promptly: a new message in a new conversation (the module's server
    is shared: `conversation` is offset by a random number, and bob skips what earlier tests left him)."""
    conversation += int.from_bytes(os.urandom(6), "big") << 8
    body = b"still fine " + os.urandom(8).hex().encode()
    alice = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins)
    bob = await Peer.connect(server.port, "bob", server.secrets["bob"], server.pins)
    alice.send(conversation, body, to=("bob",))
    async with asyncio.timeout(5):
        while (deliver := await bob.next(frames.Deliver)).conversation_id != conversation:
            pass
    assert deliver.body == body
    alice.close()
    bob.close()


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"GET / HTTP/1.1\r\nHost: kefu\r\n\r\n", ErrorCode.UNSUPPORTED_VERSION),
        (HEADER.pack(100 << 20, 1, FrameType.CLIENT_HELLO, 0, 0), ErrorCode.FRAME_TOO_LARGE),
        (HEADER.pack(2 << 20, 1, FrameType.SEND, 0, 0), ErrorCode.UNEXPECTED_FRAME),  # section 8: header alone
        (HEADER.pack(1 << 20, 1, FrameType.SEND, 0, 0), ErrorCode.UNEXPECTED_FRAME),
        (HEADER.pack(1 << 20, 1, FrameType.RECORD, 0, 0), ErrorCode.UNEXPECTED_FRAME),
        (HEADER.pack(4, 1, 0x7E, 0, 0) + b"abcd", ErrorCode.UNEXPECTED_FRAME),  # section 3.1: plaintext check first
        (HEADER.pack(4, 1, FrameType.SEND, 0, 0) + b"abcd", ErrorCode.UNEXPECTED_FRAME),
        (HEADER.pack(3, 1, FrameType.CLIENT_HELLO, 0, 0) + b"abc", ErrorCode.MALFORMED_FRAME),
        (HEADER.pack(20, 1, FrameType.RECORD, 0, 0) + bytes(20), ErrorCode.UNEXPECTED_FRAME),
    ],
    ids=[
        "http",
        "oversize-hello",
        "oversize-send",
        "mib-send-header",
        "mib-record-header",
        "unknown-type",
        "send-before-handshake",
        "bad-hello",
        "record",
    ],
)
async def test_garbage_gets_a_specific_code_and_a_clean_close(server: ServerProcess, payload: bytes, code: int) -> None:
    reader, writer = await raw(server)
    writer.write(payload)
    await writer.drain()
    assert await error_then_close(reader) == code
    await shut(writer)
    await healthy_exchange(server, 1)


async def test_random_noise_never_crashes_the_server(server: ServerProcess) -> None:
    for _ in range(30):
        reader, writer = await raw(server)
        writer.write(os.urandom(int.from_bytes(os.urandom(1), "big") + 1))
        await writer.drain()
        writer.write_eof()
        await asyncio.wait_for(reader.read(), READ_TIMEOUT)
        await shut(writer)
    assert server.proc is not None and server.proc.poll() is None
    await healthy_exchange(server, 2)


async def test_truncated_handshake_times_out(quick_server: ServerProcess) -> None:
    server = quick_server
    loop = asyncio.get_running_loop()
    hello = frames.encode(frames.ClientHello(bytes(32), (0x00C6,), (), 30000, 0, b"", 0, b""))
    reader, writer = await raw(server)
    writer.write(hello[: len(hello) // 2])
    await writer.drain()
    started = loop.time()
    assert await error_then_close(reader) == ErrorCode.HANDSHAKE_TIMEOUT
    assert loop.time() - started < 5
    await shut(writer)
    await healthy_exchange(server, 3)


async def test_slow_writer_trickling_a_valid_handshake_succeeds(server: ServerProcess) -> None:
    """One byte at a time is legal: only the deadline bounds it."""
    peer = Peer(Peer.connect.__self__ and _config(server))  # type: ignore[attr-defined]
    loop = asyncio.get_running_loop()
    reader, writer = await raw(server)
    peer.conn.connect(now=loop.time())
    hello = peer.conn.data_to_send()
    for i in range(0, len(hello), 7):
        writer.write(hello[i : i + 7])
        await writer.drain()
        await asyncio.sleep(0.005)
    data = await asyncio.wait_for(reader.read(2000), READ_TIMEOUT)
    peer.conn.receive_data(data)
    assert any(type(e).__name__ == "HandshakeComplete" for e in peer.conn.events_received())
    await shut(writer)


def _config(server: ServerProcess) -> object:
    from kefu.protocol.crypto import Suite  # noqa: PLC0415
    from kefu.protocol.handshake import ClientConfig  # noqa: PLC0415

    return ClientConfig("alice", server.pins, (Suite.NATIONAL,), app_secret=server.secrets["alice"])


async def test_slow_reader_is_bounded_and_isolated(loaded_server: ServerProcess) -> None:
    """A client that asks for much and never reads: the server stops reading it; others are unaffected."""
    server = loaded_server
    writer_peer = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins)
    big = os.urandom(60_000)
    for i in range(40):
        writer_peer.send(77, big, to=("bob",) if i == 0 else ())
    for _ in range(40):
        assert (await writer_peer.next(frames.SendAck)).status == 0
    hog = await Peer.connect(server.port, "bob", server.secrets["bob"], server.pins)
    assert hog.transport is not None
    hog.transport.pause_reading()  # never reads again
    for _ in range(50):
        hog.send_frame(frames.Sync(77, 0, 40, 40, request_id=1))  # each asks for 2.4 MB
    await asyncio.sleep(1.0)
    await healthy_exchange(server, 4)
    rss_kb = 0
    for pid in server.processes():  # every process of the server: supervisor, core, gateways
        status = Path(f"/proc/{pid}/status").read_text()
        rss_kb += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    assert rss_kb < 1_200_000, "the server did not buffer 120 MB for a client that does not read"


async def test_a_record_header_larger_than_a_handshake_ends_the_handshake_at_once(server: ServerProcess) -> None:
    """After CLIENT_HELLO, a RECORD declaring 1 MiB is refused from its header (section 8), not held until the
    handshake deadline."""
    from kefu.protocol.events import ConnectionTerminated  # noqa: PLC0415

    peer = Peer(_config(server))  # type: ignore[arg-type]
    loop = asyncio.get_running_loop()
    reader, writer = await raw(server)
    peer.conn.connect(now=loop.time())
    writer.write(peer.conn.data_to_send())
    writer.write(HEADER.pack(1 << 20, 1, FrameType.RECORD, 0, 0) + bytes(4096))
    await writer.drain()
    started = loop.time()
    data = await asyncio.wait_for(reader.read(), READ_TIMEOUT)  # the server's flight, its ERROR, then EOF
    assert loop.time() - started < 5
    peer.conn.receive_data(data)
    (ended,) = [e for e in peer.conn.events_received() if isinstance(e, ConnectionTerminated)]
    # FRAME_TOO_LARGE from the RECORD's header once the hello is handled; UNEXPECTED_FRAME if the bytes arrived while
    # the gateway still waited for the core's admission (more than a CLIENT_HELLO before the server's answer).
    assert ended.code in (ErrorCode.FRAME_TOO_LARGE, ErrorCode.UNEXPECTED_FRAME)
    await shut(writer)
    await healthy_exchange(server, 4)


async def _claim_app(server: ServerProcess, app_id: str) -> tuple[ConnectionTerminated, str]:
    """A full handshake claiming `app_id` with alice's secret: how the server ended it, and our "host:port"."""
    config = _config(server)
    assert isinstance(config, ClientConfig)
    peer = Peer(dataclasses.replace(config, app_id=app_id))
    loop = asyncio.get_running_loop()
    reader, writer = await raw(server)
    host, port = writer.get_extra_info("sockname")[:2]
    peer.conn.connect(now=loop.time())
    writer.write(peer.conn.data_to_send())
    peer.conn.receive_data(await asyncio.wait_for(reader.read(4096), READ_TIMEOUT))
    writer.write(peer.conn.data_to_send())
    peer.conn.receive_data(await asyncio.wait_for(reader.read(), READ_TIMEOUT))
    await shut(writer)
    (ended,) = [e for e in peer.conn.events_received() if isinstance(e, ConnectionTerminated)]
    return ended, f"{host}:{port}"


LOGFMT_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def logfmt_fields(line: str) -> dict[str, str]:
    """The key=value fields of a logfmt line, quoted values decoded."""
    return {k: json.loads(v) if v.startswith('"') else v for k, v in LOGFMT_FIELD.findall(line)}


@pytest.mark.parametrize(
    ("app_id", "logged", "why"),
    [
        ("", "", "malformed app id"),
        ("a\x00b", r"a\x00b", "malformed app id"),
        ("new\nline", r"new\nline", "malformed app id"),
        ("nobody", "nobody", "unknown app"),
        ("x" * 255, "x" * 64 + "...", "unknown app"),
    ],
    ids=["empty", "nul", "newline", "unknown", "longest"],
)
async def test_a_bad_app_id_is_an_authentication_failure_with_one_reason(
    server: ServerProcess, app_id: str, logged: str, why: str
) -> None:
    """Section 5.5: an empty, malformed or unknown app id is AUTH_FAILED with the one wire reason, never
    INTERNAL_ERROR; the server logs one conn.auth_failed line with the peer's address, the claimed id (control
    characters escaped, cut at 64 characters: the longest id, 255 bytes, would be most of the line) and why."""
    log_start = server.log_path.stat().st_size
    ended, address = await _claim_app(server, app_id)
    assert (ended.code, ended.reason) == (ErrorCode.AUTH_FAILED, AUTH_FAILED_REASON)
    await healthy_exchange(server, 5)
    log = log_since(server, log_start)
    (line,) = [logfmt_fields(line) for line in log.splitlines() if " conn.auth_failed " in line]
    shown = {name: line.get(name) for name in ("peer", "code", "claimed_app", "reason")}
    assert shown == {"peer": address, "code": "AUTH_FAILED", "claimed_app": logged, "reason": why}
    assert "internal_error" not in log


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server in one process (one allowance of conn.auth_failed lines) that lets any number of handshakes in."""
    yield from running_server(tmp_path, {"KEFU_SERVER_WORKERS": "0", "KEFU_LIMITS_HANDSHAKE_CPU_SHARE": "0"})


async def test_failed_authentications_are_logged_at_a_bounded_rate(auth_server: ServerProcess) -> None:
    """A peer guessing app ids costs the journal at most AUTH_LOG_BURST conn.auth_failed lines at once and
    AUTH_LOG_PER_S a second after that; the lines left out are counted in the next one written."""
    from kefu.server.edge.gateway import AUTH_LOG_BURST, AUTH_LOG_PER_S  # noqa: PLC0415

    server = auth_server
    guesses = 60
    loop = asyncio.get_running_loop()
    started = loop.time()
    ends = await asyncio.gather(*(_claim_app(server, f"guess-{i}") for i in range(guesses)))
    await asyncio.sleep(1.0)  # the allowance refills: the next line carries the count left out
    ends.append(await _claim_app(server, "guess-last"))
    elapsed = loop.time() - started
    assert all((ended.code, ended.reason) == (ErrorCode.AUTH_FAILED, AUTH_FAILED_REASON) for ended, _ in ends)
    lines = [logfmt_fields(line) for line in server.log_path.read_text().splitlines() if " conn.auth_failed " in line]
    assert AUTH_LOG_BURST <= len(lines) <= AUTH_LOG_BURST + AUTH_LOG_PER_S * elapsed, (len(lines), elapsed)
    assert len(lines) + sum(int(line.get("not_logged", 0)) for line in lines) == guesses + 1
    assert lines[-1]["claimed_app"] == "guess-last" and int(lines[-1]["not_logged"]) > 0
    assert all(line["reason"] == "unknown app" for line in lines)
    await healthy_exchange(server, 8)


@pytest.fixture
def thrifty_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose handshakes may use 1 % of the host's cores."""
    yield from running_server(tmp_path, {"KEFU_LIMITS_HANDSHAKE_CPU_SHARE": "0.01"})


async def _hello_answer(server: ServerProcess, host: str) -> frames.Frame:
    """Send a national CLIENT_HELLO from `host`; the server's first frame (SERVER_HELLO or GOAWAY)."""
    peer = Peer(_config(server))  # type: ignore[arg-type]
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, local_addr=(host, 0))
    peer.conn.connect(now=asyncio.get_running_loop().time())
    writer.write(peer.conn.data_to_send())
    await writer.drain()
    header = await asyncio.wait_for(reader.readexactly(frames.HEADER_LEN), READ_TIMEOUT)
    body = await asyncio.wait_for(reader.readexactly(HEADER.unpack(header)[0]), READ_TIMEOUT)
    await shut(writer)
    (raw_frame,) = frames.FrameDecoder().feed(header + body)
    answer = frames.decode_frame(raw_frame)
    assert answer is not None
    return answer


async def test_handshakes_past_the_budget_get_a_goaway_and_a_quiet_address_still_gets_in(
    thrifty_server: ServerProcess,
) -> None:
    """Section 5.9: one address asking for many full handshakes at once gets most of them refused with a plaintext
    GOAWAY (OVERLOADED, a retry delay) instead of SERVER_HELLO (until the delay is over, as soon as its connection is
    accepted); a client on another address is answered at once, and one that waits as told gets in."""
    server = thrifty_server
    answers = await asyncio.gather(*(_hello_answer(server, "127.0.0.1") for _ in range(30)))
    refusals = [a for a in answers if isinstance(a, frames.Goaway)]
    assert len(refusals) >= 20
    assert all(r.code == ErrorCode.OVERLOADED and 0 < r.reconnect_delay_ms <= 5000 for r in refusals)
    assert all(isinstance(a, frames.Goaway | frames.ServerHello) for a in answers)
    assert isinstance(await _hello_answer(server, "127.0.0.2"), frames.ServerHello)
    answer: object = max(refusals, key=lambda r: r.reconnect_delay_ms)
    for _ in range(3):  # a client that waits as told gets in
        assert isinstance(answer, frames.Goaway)
        await asyncio.sleep(answer.reconnect_delay_ms / 1000)
        answer = await _hello_answer(server, "127.0.0.1")
        if isinstance(answer, frames.ServerHello):
            break
    assert isinstance(answer, frames.ServerHello)


async def test_connection_errors_are_logged_at_a_bounded_rate(own_server: ServerProcess) -> None:
    """A peer that opens connection after connection and sends garbage costs the journal at most a burst of conn.error
    lines per gateway and a few a second after that; the lines left out are counted in the next one written."""
    from kefu.server.edge.gateway import ERROR_LOG_BURST, ERROR_LOG_PER_S  # noqa: PLC0415

    server = own_server  # its allowances untouched by other tests, and every line of its log its own

    async def garbage() -> None:
        reader, writer = await raw(server)
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        await writer.drain()
        assert await error_then_close(reader) == ErrorCode.UNSUPPORTED_VERSION
        await shut(writer)

    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(6):
        await asyncio.gather(*(garbage() for _ in range(25)))  # 150 in a burst, well past every gateway's allowance
    await asyncio.sleep(1.0)  # the allowance refills: the next lines carry the counts left out
    for _ in range(10):
        await garbage()
        await asyncio.sleep(0.1)
    elapsed = loop.time() - started
    lines = [line for line in server.log_path.read_text().splitlines() if " conn.error " in line]
    gateways = max(1, sum(1 for name in server.workers() if name.startswith("gateway")))
    allowed = gateways * (ERROR_LOG_BURST + ERROR_LOG_PER_S * elapsed) + 1
    assert 10 <= len(lines) <= allowed, (len(lines), allowed)
    left_out = sum(int(m.group(1)) for line in lines if (m := re.search(r"not_logged=(\d+)", line)))
    assert left_out > 0 and len(lines) + left_out <= 160
    assert all("code=UNSUPPORTED_VERSION" in line for line in lines)
    await healthy_exchange(server, 7)
