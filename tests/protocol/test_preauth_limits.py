"""What a peer can make a connection hold before the handshake completes (spec section 8): the header alone decides."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kefu.protocol import frames
from kefu.protocol.connection import HANDSHAKE_RECORD_LIMIT, Role, State, outer_limits
from kefu.protocol.crypto import Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionTerminated, HandshakeComplete
from kefu.protocol.frames import HEADER, HEADER_LEN, MAX_BODY, MAX_HANDSHAKE_BODY, FrameType, Send
from kefu.protocol.serverconn import ServerConnection

from .pairs import Pair, client_config, server_config

MIB = 1 << 20


def fresh_server() -> ServerConnection:
    return ServerConnection(server_config(), now=0.0)


def terminated(conn: ServerConnection) -> ConnectionTerminated:
    (event,) = [e for e in conn.events_received() if isinstance(e, ConnectionTerminated)]
    return event


@pytest.mark.parametrize(
    ("frame_type", "length", "code"),
    [
        (FrameType.SEND, MIB, ErrorCode.UNEXPECTED_FRAME),
        (FrameType.RECORD, MIB, ErrorCode.UNEXPECTED_FRAME),
        (FrameType.DELIVER_ACK, 8, ErrorCode.UNEXPECTED_FRAME),
        (FrameType.CLIENT_HELLO, MAX_HANDSHAKE_BODY + 1, ErrorCode.FRAME_TOO_LARGE),
        (FrameType.ERROR, MAX_HANDSHAKE_BODY + 1, ErrorCode.FRAME_TOO_LARGE),
    ],
)
def test_a_new_connection_refuses_from_the_header_alone(frame_type: int, length: int, code: ErrorCode) -> None:
    server = fresh_server()
    server.receive_data(HEADER.pack(length, 1, frame_type, 0, 0))  # the header, and not one byte of body
    assert server.closed
    assert terminated(server).code == code
    assert server.buffered_incomplete == 0


def test_after_client_hello_a_record_larger_than_a_handshake_is_refused_from_its_header() -> None:
    pair = Pair(client_config(Suite.NATIONAL), server_config())
    pair.start()
    pair.server.receive_data(pair.client.data_to_send())
    assert pair.server.state is State.WAIT_CLIENT_FINISHED
    pair.server.receive_data(HEADER.pack(MIB, 1, FrameType.RECORD, 0, 0))
    assert terminated(pair.server).code == ErrorCode.FRAME_TOO_LARGE
    assert pair.server.buffered_incomplete == 0


def test_after_client_hello_a_plaintext_application_frame_is_refused_from_its_header() -> None:
    pair = Pair(client_config(Suite.INTERNATIONAL), server_config())
    pair.start()
    pair.server.receive_data(pair.client.data_to_send())
    pair.server.receive_data(HEADER.pack(MIB, 1, FrameType.SEND, 0, 0))
    assert terminated(pair.server).code == ErrorCode.UNEXPECTED_FRAME


def test_a_full_size_message_right_behind_client_finished_in_one_chunk_is_accepted() -> None:
    """The limits change with the state inside one chunk: CLIENT_FINISHED's record, then a 1 MiB SEND's."""
    pair = Pair(client_config(Suite.INTERNATIONAL), server_config())
    pair.start()
    pair.server.receive_data(pair.client.data_to_send())
    pair.client.receive_data(pair.server.data_to_send())
    assert any(isinstance(e, HandshakeComplete) for e in pair.client.events_received())
    finished = pair.client.data_to_send()
    pair.client.send(Send(b"m" * 16, 7, 1, b"x" * (MAX_BODY - 64)))
    chunk = finished + pair.client.data_to_send()
    assert len(chunk) > HANDSHAKE_RECORD_LIMIT
    pair.server.receive_data(chunk)
    events = pair.server.events_received()
    assert isinstance(events[0], HandshakeComplete)
    (send,) = [e for e in events if isinstance(e, Send)]
    assert len(send.body) == MAX_BODY - 64
    assert not pair.server.closed


def test_limits_open_to_the_largest_record_only_once_connected() -> None:
    for role in Role:
        for state in (State.START, State.WAIT_SERVER_HELLO, State.WAIT_SERVER_FINISHED, State.WAIT_CLIENT_FINISHED):
            assert max(outer_limits(role, state)) <= HANDSHAKE_RECORD_LIMIT
        connected = outer_limits(role, State.CONNECTED)
        assert [t for t, limit in enumerate(connected) if limit >= 0] == [FrameType.RECORD]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=5000), min_size=1, max_size=40), st.booleans())
def test_an_unauthenticated_peer_never_makes_the_server_hold_more_than_a_handshake(
    chunks: list[bytes], hello_first: bool
) -> None:
    pair = Pair(client_config(Suite.INTERNATIONAL), server_config())
    if hello_first:
        pair.start()
        pair.server.receive_data(pair.client.data_to_send())
    for chunk in chunks:
        pair.server.receive_data(chunk)
        assert pair.server.buffered_incomplete <= HEADER_LEN + HANDSHAKE_RECORD_LIMIT
        if pair.server.closed:
            break
    assert pair.server.state is not State.CONNECTED


def test_a_closed_connection_holds_nothing_more() -> None:
    server = fresh_server()
    server.receive_data(HEADER.pack(MIB, 1, FrameType.SEND, 0, 0))
    server.receive_data(b"\0" * 1000)
    assert server.buffered_incomplete == 0
    assert frames.FrameDecoder().limits == frames.BODY_LIMITS


def test_a_connection_that_fails_drops_the_rest_of_the_chunk_it_was_reading() -> None:
    """A CLIENT_HELLO, then a RECORD header declaring 1 MiB and 64 KiB of its body in the same chunk: the RECORD is
    refused, and the 64 KiB are not kept by the closed connection (an adapter may keep it until the socket closes)."""
    pair = Pair(client_config(Suite.INTERNATIONAL), server_config())
    pair.start()
    pair.server.receive_data(pair.client.data_to_send() + HEADER.pack(MIB, 1, FrameType.RECORD, 0, 0) + bytes(65536))
    assert terminated(pair.server).code == ErrorCode.FRAME_TOO_LARGE
    assert pair.server.buffered_incomplete == 0
