"""Property-based fuzzing: only documented errors ever escape the decoder, the records and both roles.

Connections never raise for peer input; they turn it into a ConnectionTerminated event whose code must be
one of spec/errors.toml's, and never INTERNAL_ERROR (which says the receiver has a bug, section 9). The
lower-level functions may raise, but only RemoteProtocolError with such a code. A handshake flight that was
altered never authenticates.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kefu.protocol import frames
from kefu.protocol.codes import ErrorCode
from kefu.protocol.connection import Connection
from kefu.protocol.crypto import SUITES, Suite
from kefu.protocol.errors import RemoteProtocolError
from kefu.protocol.events import (
    ConnectionClosed,
    ConnectionTerminated,
    HandshakeComplete,
    TicketReceived,
)
from kefu.protocol.records import Direction

from ..protocol.pairs import Pair, client_config, server_config
from ..protocol.strategies import any_frame

ERRORS_TOML = Path(__file__).resolve().parents[2] / "spec" / "errors.toml"
DOCUMENTED = {entry["code"] for entry in tomllib.loads(ERRORS_TOML.read_text()).values()}
"""The codes spec/errors.toml lists (read from the spec itself, not from the module generated from it)."""
FROM_PEER_INPUT = DOCUMENTED - {ErrorCode.OK, ErrorCode.INTERNAL_ERROR}
"""What a receiver may end a connection with, on its own account, for anything a peer sends."""
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutation(draw: st.DrawFn) -> Callable[[bytes], bytes]:
    """A random flip, cut, insertion, splice or replacement by noise, applicable to any input.

    Positions are drawn independently of the input's length (and reduced modulo it), because the inputs
    come from handshakes with fresh randomness and vary in length from one example to the next.
    """
    kind = draw(st.sampled_from(["flip", "cut", "insert", "noise", "splice"]))
    spots = draw(st.lists(st.integers(0, 1 << 20), min_size=1, max_size=4))
    bits = draw(st.lists(st.integers(0, 7), min_size=len(spots), max_size=len(spots)))
    extra = draw(st.binary(min_size=1, max_size=64))

    def apply(data: bytes) -> bytes:
        buf = bytearray(data)
        if kind == "flip" and buf:
            for spot, bit in zip(spots, bits, strict=True):
                buf[spot % len(buf)] ^= 1 << bit
        elif kind == "cut":
            del buf[spots[0] % (len(buf) + 1) :]
        elif kind == "insert":
            at = spots[0] % (len(buf) + 1)
            buf[at:at] = extra[:16]
        elif kind == "noise":
            buf = bytearray(extra)
        else:
            buf += extra
        return bytes(buf)

    return apply


def only_documented(conn: Connection, feed: bytes, chunks: list[int], *, original: bytes | None = None) -> None:
    """Feed `feed` in chunks; the connection must not raise and may only terminate with a documented code, never
    INTERNAL_ERROR of its own. When `feed` is a handshake flight `original` altered (not merely followed by more
    bytes), the handshake must not complete."""
    pos = 0
    for size in [*chunks, len(feed)]:
        conn.receive_data(feed[pos : pos + size])
        pos += size
    conn.receive_data(b"")
    altered = original is not None and not feed.startswith(original)
    for event in conn.events_received():
        if isinstance(event, ConnectionTerminated) and not event.by_peer:
            assert event.code in FROM_PEER_INPUT, event
        elif isinstance(event, ConnectionTerminated | ConnectionClosed):
            assert event.code in DOCUMENTED, event
        elif isinstance(event, HandshakeComplete):
            assert not altered, "an altered handshake flight authenticated"
        else:
            assert isinstance(event, TicketReceived | frames.Frame)
    conn.data_to_send()


chunking = st.lists(st.integers(1, 64), max_size=6)


@FUZZ
@given(st.binary(max_size=300), chunking)
def test_decoder_raises_only_documented_errors(data: bytes, chunks: list[int]) -> None:
    decoder = frames.FrameDecoder()
    pos = 0
    try:
        for size in [*chunks, len(data)]:
            for raw in decoder.feed(data[pos : pos + size]):
                frames.decode_frame(raw)
            pos += size
    except RemoteProtocolError as exc:
        assert exc.code in FROM_PEER_INPUT


@FUZZ
@given(st.binary(max_size=400))
def test_record_open_raises_only_documented_errors(data: bytes) -> None:
    for suite in Suite:
        receiver = Direction(SUITES[suite], b"\x07" * 32)
        try:
            frames.decode_inner(receiver.open(frames.HEADER.pack(len(data), 1, 0x0F, 0, 0), data))
        except RemoteProtocolError as exc:
            assert exc.code in FROM_PEER_INPUT


def client_hello(suite: Suite) -> bytes:
    pair = Pair(client_config(suite), server_config())
    pair.start()
    return pair.client.data_to_send()


HELLOS = {suite: client_hello(suite) for suite in Suite}


@FUZZ
@given(st.sampled_from(list(Suite)), st.data(), chunking)
def test_server_fed_mutated_client_hellos(suite: Suite, data: st.DataObject, chunks: list[int]) -> None:
    pair = Pair(client_config(suite), server_config())
    only_documented(pair.server, data.draw(mutation())(HELLOS[suite]), chunks, original=HELLOS[suite])


def second_flight(suite: Suite) -> tuple[Pair, bytes]:
    pair = Pair(client_config(suite), server_config())
    pair.start()
    pair.server.receive_data(pair.client.data_to_send())
    pair.client.receive_data(pair.server.data_to_send())
    return pair, pair.client.data_to_send()


def server_flight(suite: Suite) -> tuple[Pair, bytes]:
    pair = Pair(client_config(suite), server_config())
    pair.start()
    pair.server.receive_data(pair.client.data_to_send())
    return pair, pair.server.data_to_send()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(list(Suite)),
    st.sampled_from(["server-flight", "client-flight"]),
    st.data(),
    chunking,
)
def test_both_roles_fed_mutated_handshake_flights(
    suite: Suite, which: str, data: st.DataObject, chunks: list[int]
) -> None:
    make: Callable[[Suite], tuple[Pair, bytes]] = server_flight if which == "server-flight" else second_flight
    pair, flight = make(suite)
    target = pair.client if which == "server-flight" else pair.server
    only_documented(target, data.draw(mutation())(flight), chunks, original=flight)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(list(Suite)), st.lists(any_frame, min_size=1, max_size=3), st.data(), chunking)
def test_connected_server_fed_mutated_records(
    suite: Suite, frame_list: list[frames.Frame], data: st.DataObject, chunks: list[int]
) -> None:
    pair = Pair(client_config(suite), server_config()).handshake()
    pair.server.events_received()
    for frame in frame_list:  # arbitrary frames, legal or not for a client to send, sealed correctly
        pair.client._queue(frames.encode(frame))
    sealed = pair.client.data_to_send()
    feed = sealed if data.draw(st.booleans()) else data.draw(mutation())(sealed)
    only_documented(pair.server, feed, chunks)


@FUZZ
@given(st.sampled_from(list(Suite)), st.binary(max_size=300), chunking)
def test_fresh_roles_fed_noise(suite: Suite, noise: bytes, chunks: list[int]) -> None:
    pair = Pair(client_config(suite), server_config())
    pair.start()
    pair.client.data_to_send()
    only_documented(pair.server, noise, chunks)
    only_documented(pair.client, noise, chunks)
