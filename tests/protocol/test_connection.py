"""The connection state machine: its table, closing, truncation, timers, and misuse."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kefu.protocol import frames
from kefu.protocol.connection import KEEPALIVE_TICKS, TRANSITIONS, Role, State
from kefu.protocol.crypto import SUITES, Suite
from kefu.protocol.errors import ErrorCode, LocalProtocolError
from kefu.protocol.events import ConnectionClosed, ConnectionTerminated
from kefu.protocol.frames import FrameType
from kefu.protocol.records import Direction

from .pairs import Pair, client_config, server_config


def connected(suite: Suite = Suite.INTERNATIONAL) -> Pair:
    pair = Pair(client_config(suite), server_config()).handshake()
    pair.client_events.clear()
    pair.server_events.clear()
    return pair


def test_core_does_no_io() -> None:
    code = (
        "import sys, kefu.protocol.clientconn, kefu.protocol.serverconn, kefu.protocol.frames\n"
        "bad = {'asyncio', 'socket', 'lmdb', 'prometheus_client', 'uvloop', 'ssl'} & set(sys.modules)\n"
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_table_covers_both_directions_of_every_application_frame() -> None:
    assert TRANSITIONS[(Role.SERVER, State.CONNECTED, FrameType.SEND)] == "_on_app_frame"
    assert TRANSITIONS[(Role.CLIENT, State.CONNECTED, FrameType.DELIVER)] == "_on_app_frame"
    assert (Role.CLIENT, State.CONNECTED, FrameType.SEND) not in TRANSITIONS
    assert (Role.SERVER, State.CONNECTED, FrameType.DELIVER) not in TRANSITIONS


def test_service_frames_travel_one_way_each() -> None:
    for cls in frames.SERVICE_REQUESTS:
        assert TRANSITIONS[(Role.SERVER, State.CONNECTED, cls.TYPE)] == "_on_app_frame"
        assert (Role.CLIENT, State.CONNECTED, cls.TYPE) not in TRANSITIONS
    for cls in frames.SERVICE_PUSHES:
        assert TRANSITIONS[(Role.CLIENT, State.CONNECTED, cls.TYPE)] == "_on_app_frame"
        assert (Role.SERVER, State.CONNECTED, cls.TYPE) not in TRANSITIONS


def test_a_client_sending_a_server_push_is_refused_and_a_request_reaches_the_server() -> None:
    pair = connected()
    pair.client.send(frames.OpenConversation(b"r" * 16, "", "", (), "你好".encode(), request_id=5))
    pair.server.receive_data(pair.client.data_to_send())
    (request,) = pair.server.events_received()
    assert isinstance(request, frames.OpenConversation) and request.first_message == "你好".encode()
    pair.client._queue(frames.encode(frames.Result(0, 1, 0, b"{}")))
    pair.server.receive_data(pair.client.data_to_send())
    (event,) = pair.server.events_received()
    assert isinstance(event, ConnectionTerminated) and event.code is ErrorCode.UNEXPECTED_FRAME
    assert "RESULT" in event.reason


def test_an_illegal_frame_names_role_state_and_type() -> None:
    pair = connected()
    # A server may not receive DELIVER: smuggle one into a client record.
    pair.client._queue(frames.encode(frames.Deliver(1, 1, 1, 0, b"x" * 16, 1, "a", b"")))
    pair.server.receive_data(pair.client.data_to_send())
    (event,) = pair.server.events_received()
    assert isinstance(event, ConnectionTerminated)
    assert event.code is ErrorCode.UNEXPECTED_FRAME
    assert "server" in event.reason and "DELIVER" in event.reason and "connected" in event.reason


def test_plaintext_frames_after_the_handshake_are_refused() -> None:
    pair = connected()
    pair.server.receive_data(frames.encode(frames.Ping(1)))
    assert pair.server.events_received()[0].code is ErrorCode.UNEXPECTED_FRAME
    pair = connected()
    pair.client.receive_data(frames.encode(frames.Error(400, "plaintext error after keys")))
    assert pair.client.events_received()[0].code is ErrorCode.UNEXPECTED_FRAME


def test_record_before_keys_and_hello_inside_a_record_are_refused() -> None:
    pair = Pair(client_config(), server_config())
    pair.server.receive_data(frames.HEADER.pack(20, 1, FrameType.RECORD, 0, 0) + bytes(20))
    assert pair.server.events_received()[0].code is ErrorCode.UNEXPECTED_FRAME
    pair = connected()
    pair.client._queue(frames.encode(frames.ServerHello(b"r" * 32, 1, b"", 0, 1000)))
    pair.server.receive_data(pair.client.data_to_send())
    assert pair.server.events_received()[0].code is ErrorCode.UNEXPECTED_FRAME


def test_replayed_server_hello_is_refused() -> None:
    pair = connected(Suite.NATIONAL)
    pair.client.receive_data(pair.wire_to_client[0])
    (event,) = pair.client.events_received()
    assert event.code is ErrorCode.UNEXPECTED_FRAME


def test_key_change_must_end_its_record() -> None:
    pair = Pair(client_config(Suite.NATIONAL), server_config())
    pair.start()
    pair.server.receive_data(pair.client.data_to_send())
    pair.client.receive_data(pair.server.data_to_send())
    (record, *_) = frames.FrameDecoder().feed(pair.client.data_to_send())
    # Re-seal CLIENT_FINISHED under the client handshake key with a PING after it in the same record:
    # that PING would be read under a key the client had already left.
    assert pair.server._recv is not None
    secret = pair.server._recv.secret
    plaintext = Direction(SUITES[Suite.NATIONAL], secret).open(record.header, record.body)
    ((_, start, stop),) = frames.decode_inner(plaintext)
    resealed = Direction(SUITES[Suite.NATIONAL], secret).seal(plaintext[start:stop] + frames.encode(frames.Ping(1)))
    pair.server.receive_data(resealed)
    assert pair.server.events_received()[-1].code is ErrorCode.UNEXPECTED_FRAME


def test_clean_close_both_ways() -> None:
    pair = connected()
    pair.client.close()
    assert pair.client.state is State.CLOSING
    pair.pump()
    assert pair.of("server", ConnectionClosed) == [ConnectionClosed(ErrorCode.OK, "")]
    assert pair.of("client", ConnectionClosed) == [ConnectionClosed(ErrorCode.OK, "")]
    assert pair.client.state is pair.server.state is State.CLOSED


def test_end_of_stream_without_close_is_truncation() -> None:
    pair = connected()
    pair.server.receive_data(b"")
    (event,) = pair.server.events_received()
    assert event == ConnectionTerminated(ErrorCode.TRUNCATED, event.reason, True)


def test_fatal_error_from_peer_terminates_and_a_request_error_does_not() -> None:
    pair = connected()
    pair.server.send(frames.Error(ErrorCode.RATE_LIMITED, "slow down", request_id=5))
    pair.pump()
    assert pair.of("client", frames.Error) == [frames.Error(429, "slow down", request_id=5)]
    assert pair.client.state is State.CONNECTED
    pair.server.send(frames.Error(ErrorCode.INTERNAL_ERROR, "boom"))
    pair.pump()
    assert pair.of("client", ConnectionTerminated)[0].code is ErrorCode.INTERNAL_ERROR
    assert pair.client.state is State.CLOSED


def test_misuse_is_a_local_error() -> None:
    pair = Pair(client_config(), server_config())
    with pytest.raises(LocalProtocolError):
        pair.client.send(frames.Ping(1))
    pair = connected()
    with pytest.raises(LocalProtocolError, match="never sends DELIVER"):
        pair.client.send(frames.Deliver(1, 1, 1, 0, b"x" * 16, 1, "a", b""))
    with pytest.raises(LocalProtocolError):
        pair.client.connect(now=0)


def test_keepalive_pings_then_times_out() -> None:
    pair = connected()
    client = pair.client
    interval = 30.0
    tick = interval / KEEPALIVE_TICKS
    now = client.get_timer()
    assert now is not None
    client.handle_timer(now)  # right after the handshake: keepalive ticks start from here
    client.data_to_send()
    for _ in range(KEEPALIVE_TICKS - 2):
        now += tick
        client.handle_timer(now)
        assert client.data_to_send() == b"", "less than one interval without sending: no PING yet"
    now += tick
    client.handle_timer(now)
    ping = client.data_to_send()
    assert ping, "one interval without sending: the client pings"
    pair.server.receive_data(ping)
    client.receive_data(pair.server.data_to_send())  # the PONG resets the receive side
    for _ in range(KEEPALIVE_TICKS * 3 // 2 - 1):
        now += tick
        client.handle_timer(now)
        client.data_to_send()
    assert client.state is State.CONNECTED
    now += tick
    client.handle_timer(now)
    assert client.state is State.CLOSED, "1.5 intervals without hearing anything"
    assert client.events_received()[-1].code is ErrorCode.KEEPALIVE_TIMEOUT


def test_server_times_out_a_silent_client_but_never_pings() -> None:
    pair = connected()
    server = pair.server
    now = server.get_timer()
    assert now is not None
    for _ in range(KEEPALIVE_TICKS * 3 // 2 - 1):
        server.handle_timer(now)
        assert FrameType.PING not in [r.frame_type for r in frames.FrameDecoder().feed(server.data_to_send())]
        now += 30.0 / KEEPALIVE_TICKS
    server.handle_timer(now)
    assert server.state is State.CLOSED


def test_client_failing_before_it_has_keys_reports_in_plaintext() -> None:
    pair = Pair(client_config(server_pins=frozenset({"sm2:00"})), server_config())
    pair.handshake()
    (event,) = pair.of("server", ConnectionTerminated)
    assert event.code is ErrorCode.SERVER_KEY_NOT_PINNED and event.by_peer


def test_key_update_must_end_its_record() -> None:
    pair = connected()
    pair.client._queue(frames.encode(frames.KeyUpdate(0)) + frames.encode(frames.Ping(1)))
    pair.server.receive_data(pair.client.data_to_send())
    assert pair.server.events_received()[-1].code is ErrorCode.UNEXPECTED_FRAME


def test_update_keys_both_ways() -> None:
    pair = connected()
    assert pair.client._send is not None and pair.server._send is not None
    client_secret, server_secret = pair.client._send.secret, pair.server._send.secret
    pair.client.update_keys(request_peer=True)
    pair.pump()
    assert pair.client._send.secret != client_secret and pair.server._send.secret != server_secret
    send = frames.Send(b"u" * 16, 1, 1, b"after")
    pair.client.send(send)
    pair.pump()
    assert pair.of("server", frames.Send) == [send]
    with pytest.raises(LocalProtocolError):
        pair.client.send(frames.KeyUpdate(0))


def test_oversize_send_is_a_local_error() -> None:
    pair = connected()
    with pytest.raises(LocalProtocolError):
        pair.client.send(frames.Send(b"o" * 16, 1, 1, b"x" * frames.MAX_BODY))


def test_server_hello_keepalive_is_validated() -> None:
    pair = Pair(client_config(), server_config(min_keepalive_ms=0))
    pair.client = type(pair.client)(client_config(keepalive_ms=0), now=0.0)
    pair.handshake()
    assert pair.of("client", ConnectionTerminated)[0].code is ErrorCode.HANDSHAKE_FAILURE


def test_unknown_request_error_code_is_not_fatal() -> None:
    pair = connected()
    pair.server.send(frames.Error(499, "future request error"))
    pair.server.send(frames.Error(777, "future fatal error"))
    pair.pump()
    assert pair.of("client", frames.Error) == [frames.Error(499, "future request error")]
    assert pair.of("client", ConnectionTerminated)[0].code is ErrorCode.INTERNAL_ERROR


def test_keepalive_is_negotiated_within_server_bounds() -> None:
    pair = Pair(client_config(keepalive_ms=1), server_config()).handshake()
    assert pair.client_events[0].keepalive_ms == 5000
    pair = Pair(client_config(keepalive_ms=10**9), server_config()).handshake()
    assert pair.client_events[0].keepalive_ms == 300_000


def test_nothing_is_processed_after_a_failure() -> None:
    pair = connected()
    pair.client.send(frames.Send(b"a" * 16, 1, 1, b"1"))
    good = pair.client.data_to_send()
    pair.server.receive_data(b"\x00\x00\x00\x00\x09" + bytes(7) + good)
    events = pair.server.events_received()
    assert [type(e) for e in events] == [ConnectionTerminated]
    pair.server.receive_data(good)
    assert pair.server.events_received() == []
