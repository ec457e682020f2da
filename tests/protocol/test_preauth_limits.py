"""What a peer can make a connection hold before the handshake completes (spec section 8): the header alone decides."""

from __future__ import annotations

from functools import cache

import pytest
from hypothesis import event, given, settings, target
from hypothesis import strategies as st

from kefu.protocol import frames
from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.connection import HANDSHAKE_RECORD_LIMIT, Role, State, outer_limits
from kefu.protocol.crypto import Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionTerminated, HandshakeComplete
from kefu.protocol.frames import HEADER, HEADER_LEN, MAX_BODY, MAX_HANDSHAKE_BODY, MAX_RECORD_BODY, FrameType, Send
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


# What the server accepts before the handshake completes, as section 8 lists it (written out here, not read from
# `outer_limits`): the largest body of each outer frame type the state accepts; any other type is refused.
ACCEPTED: dict[State, dict[int, int]] = {
    State.START: {FrameType.CLIENT_HELLO: MAX_HANDSHAKE_BODY, FrameType.ERROR: MAX_HANDSHAKE_BODY},
    State.WAIT_CLIENT_FINISHED: {FrameType.RECORD: HANDSHAKE_RECORD_LIMIT, FrameType.ERROR: MAX_HANDSHAKE_BODY},
}

frame_types = st.one_of(
    st.sampled_from(
        [FrameType.CLIENT_HELLO, FrameType.ERROR, FrameType.RECORD, FrameType.SEND, FrameType.SERVER_HELLO]
    ),
    st.integers(0, 255),
)
declared_lengths = st.one_of(
    st.integers(MAX_HANDSHAKE_BODY - 64, HANDSHAKE_RECORD_LIMIT + 64),  # around both handshake limits
    st.integers(1, MAX_HANDSHAKE_BODY),
    st.sampled_from([MAX_BODY, MAX_RECORD_BODY, MAX_RECORD_BODY + 1, (1 << 32) - 1]),
    st.integers(HANDSHAKE_RECORD_LIMIT + 1, (1 << 32) - 1),  # up to the largest the header can declare
)


@cache
def client_hello() -> bytes:
    client = ClientConnection(client_config(Suite.INTERNATIONAL), now=0.0)
    client.connect(now=0.0)
    return client.data_to_send()


@settings(max_examples=300, deadline=None)
@given(frame_types, declared_lengths, st.booleans(), st.booleans(), st.data())
def test_an_unauthenticated_peer_never_makes_the_server_hold_more_than_a_handshake(
    frame_type: int, length: int, hello_first: bool, hello_in_same_chunk: bool, data: st.DataObject
) -> None:
    """A right-version header of a type the state accepts or not, declaring up to 4 GiB, then part of its body, in
    pieces: the server holds the incomplete frame only when the state accepts it at that length, and never more
    than a handshake's worth; otherwise it refuses as soon as it has the header."""
    server = fresh_server()
    prefix = b""
    if hello_first:
        prefix = client_hello()
        if not hello_in_same_chunk:  # else the state changes inside the chunk that carries the header
            server.receive_data(prefix)
            prefix = b""
    state = State.WAIT_CLIENT_FINISHED if hello_first else State.START
    limit = ACCEPTED[state].get(frame_type)
    sent = data.draw(st.integers(0, min(length - 1, HEADER_LEN + HANDSHAKE_RECORD_LIMIT)), label="body bytes sent")
    stream = HEADER.pack(length, frames.PROTOCOL_VERSION, frame_type, 0, 0) + bytes(sent)
    cuts = sorted(data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=6, unique=True), label="cuts"))
    fed, most_held = 0, 0
    for start, stop in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        server.receive_data(prefix + stream[start:stop])
        prefix, fed = b"", stop
        most_held = max(most_held, server.buffered_incomplete)
        assert server.buffered_incomplete <= HEADER_LEN + max(ACCEPTED[state].values())
        assert server.closed is (fed >= HEADER_LEN and (limit is None or length > limit))  # from the header alone
    target(float(most_held))
    if limit is not None and length <= limit:
        event("held")
        assert server.state is state and server.buffered_incomplete == len(stream)
    else:
        code = ErrorCode.UNEXPECTED_FRAME if limit is None else ErrorCode.FRAME_TOO_LARGE
        event(f"refused: {code.name}")
        assert terminated(server).code == code
        assert server.buffered_incomplete == 0


def test_a_header_behind_the_frame_that_changes_the_state_is_judged_under_the_new_state() -> None:
    """A second CLIENT_HELLO's header in the chunk that carries the first: the state it arrives in (waiting for
    CLIENT_FINISHED) does not accept it, so it is refused from its header, not held until its body is in."""
    server = fresh_server()
    server.receive_data(client_hello() + HEADER.pack(MAX_HANDSHAKE_BODY - 64, 1, FrameType.CLIENT_HELLO, 0, 0))
    assert server.closed
    assert terminated(server).code == ErrorCode.UNEXPECTED_FRAME
    assert server.buffered_incomplete == 0


def test_a_closed_connection_holds_nothing_more() -> None:
    server = fresh_server()
    server.receive_data(HEADER.pack(MIB, 1, FrameType.SEND, 0, 0))
    assert server.closed
    # Its decoder now takes any frame up to the largest (nothing narrows the limits of a connection that is over):
    # it is the closed state that keeps a 1 MiB RECORD's first kilobyte out of it.
    assert server._decoder.limits == frames.BODY_LIMITS
    server.receive_data(HEADER.pack(MIB, 1, FrameType.RECORD, 0, 0) + bytes(1000))
    assert server.buffered_incomplete == 0


def test_a_connection_that_fails_drops_the_rest_of_the_chunk_it_was_reading() -> None:
    """A CLIENT_HELLO, then a RECORD header declaring 1 MiB and 64 KiB of its body in the same chunk: the RECORD is
    refused, and the 64 KiB are not kept by the closed connection (an adapter may keep it until the socket closes)."""
    pair = Pair(client_config(Suite.INTERNATIONAL), server_config())
    pair.start()
    pair.server.receive_data(pair.client.data_to_send() + HEADER.pack(MIB, 1, FrameType.RECORD, 0, 0) + bytes(65536))
    assert terminated(pair.server).code == ErrorCode.FRAME_TOO_LARGE
    assert pair.server.buffered_incomplete == 0
