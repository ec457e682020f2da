"""The record layer: sealing batches, nonces, tampering, replay, and key updates at the real limits."""

from __future__ import annotations

import pytest

from kefu.protocol import frames, records
from kefu.protocol.crypto import SUITES, Suite
from kefu.protocol.errors import CryptoError, ErrorCode, RemoteProtocolError
from kefu.protocol.events import ConnectionTerminated
from kefu.protocol.frames import FrameDecoder, FrameType

from .pairs import Pair, client_config, server_config

SUITE_LIST = [Suite.NATIONAL, Suite.INTERNATIONAL]


def connected(suite: Suite) -> Pair:
    pair = Pair(client_config(suite), server_config()).handshake()
    pair.client_events.clear()
    pair.server_events.clear()
    return pair


def records_in(data: bytes) -> list[frames.RawFrame]:
    return [r for r in FrameDecoder().feed(data) if r.frame_type == FrameType.RECORD]


@pytest.mark.parametrize("suite", SUITE_LIST, ids=lambda s: s.name)
def test_a_batch_of_frames_is_one_record(suite: Suite) -> None:
    pair = connected(suite)
    sends = [frames.Send(bytes([i]) * 16, 1, 1, b"x" * 200) for i in range(32)]
    for send in sends:
        pair.client.send(send)
    data = pair.client.data_to_send()
    assert len(records_in(data)) == 1
    pair.server.receive_data(data)
    assert pair.server.events_received() == sends


def test_records_are_split_at_the_plaintext_limit() -> None:
    pair = connected(Suite.INTERNATIONAL)
    big = frames.Send(b"b" * 16, 1, 1, b"x" * (frames.MAX_BODY - 64))
    pair.client.send(big)
    pair.client.send(big)
    data = pair.client.data_to_send()
    assert len(records_in(data)) == 2
    pair.server.receive_data(data)
    assert pair.server.events_received() == [big, big]


def test_nonce_is_iv_xor_sequence() -> None:
    spec = SUITES[Suite.INTERNATIONAL]
    direction = records.Direction(spec, b"\x01" * 32)
    iv = records.expand_label("sha256", b"\x01" * 32, b"iv", b"", 12)
    direction.seq = 0x0102
    assert direction._nonce() == (int.from_bytes(iv, "big") ^ 0x0102).to_bytes(12, "big")


@pytest.mark.parametrize("suite", SUITE_LIST, ids=lambda s: s.name)
def test_tampered_record_closes_the_connection(suite: Suite) -> None:
    pair = connected(suite)
    pair.client.send(frames.Ping(1))
    data = bytearray(pair.client.data_to_send())
    data[-3] ^= 0x40
    pair.server.receive_data(bytes(data))
    (event,) = pair.server.events_received()
    assert isinstance(event, ConnectionTerminated)
    assert event.code is ErrorCode.BAD_RECORD_MAC
    assert pair.server.state.value == "closed"


def test_tampered_record_header_fails_authentication() -> None:
    """The 12-byte RECORD header is the AAD: changing its request id or flags is detected."""
    pair = connected(Suite.NATIONAL)
    pair.client.send(frames.Ping(1))
    data = bytearray(pair.client.data_to_send())
    data[7] ^= 1  # a flag bit of the RECORD header
    pair.server.receive_data(bytes(data))
    assert pair.server.events_received()[0].code is ErrorCode.BAD_RECORD_MAC


@pytest.mark.parametrize("suite", SUITE_LIST, ids=lambda s: s.name)
def test_replayed_record_is_rejected(suite: Suite) -> None:
    pair = connected(suite)
    pair.client.send(frames.Send(b"r" * 16, 1, 1, b"pay me"))
    data = pair.client.data_to_send()
    pair.server.receive_data(data)
    assert len(pair.server.events_received()) == 1
    pair.server.receive_data(data)
    (event,) = pair.server.events_received()
    assert event.code is ErrorCode.BAD_RECORD_MAC


def test_reordered_records_are_rejected() -> None:
    pair = connected(Suite.INTERNATIONAL)
    pair.client.send(frames.Ping(1))
    first = pair.client.data_to_send()
    pair.client.send(frames.Ping(2))
    second = pair.client.data_to_send()
    pair.server.receive_data(second + first)
    assert pair.server.events_received()[0].code is ErrorCode.BAD_RECORD_MAC


@pytest.mark.parametrize("suite", SUITE_LIST, ids=lambda s: s.name)
def test_key_update_before_the_record_limit(suite: Suite) -> None:
    """Cross 2^20 records under one key: the sender updates first, the receiver follows."""
    pair = connected(suite)
    assert pair.client._send is not None and pair.server._recv is not None
    pair.client._send.seq = pair.server._recv.seq = records.RECORD_LIMIT - 3
    old_secret = pair.client._send.secret
    for i in range(6):
        pair.client.send(frames.Sync(i, 0, 0, 1))
        pair.server.receive_data(pair.client.data_to_send())
    assert [e.conversation_id for e in pair.server.events_received()] == list(range(6))
    assert pair.client._send.secret != old_secret
    assert pair.client._send.secret == pair.server._recv.secret
    assert pair.client._send.seq < 10


def test_key_update_before_the_byte_limit() -> None:
    pair = connected(Suite.NATIONAL)
    assert pair.client._send is not None and pair.server._recv is not None
    pair.client._send.bytes = pair.server._recv.bytes = records.BYTE_LIMIT - 5000
    old_secret = pair.client._send.secret
    for _ in range(3):
        pair.client.send(frames.Send(b"s" * 16, 1, 1, b"z" * 3000))
        pair.server.receive_data(pair.client.data_to_send())
    assert len(pair.server.events_received()) == 3
    assert pair.client._send.secret != old_secret
    assert pair.server._recv.bytes < 10_000


def test_receiver_enforces_the_limits() -> None:
    pair = connected(Suite.INTERNATIONAL)
    assert pair.client._send is not None and pair.server._recv is not None
    # A peer that never updates: seal record number 2^20 under the same key, bypassing needs_update().
    rogue = records.Direction(SUITES[Suite.INTERNATIONAL], pair.client._send.secret)
    rogue.seq = pair.server._recv.seq = records.RECORD_LIMIT
    pair.server.receive_data(rogue.seal(frames.encode(frames.Ping(1))))
    assert pair.server.events_received()[0].code is ErrorCode.KEY_LIMIT_EXCEEDED
    rogue = records.Direction(SUITES[Suite.INTERNATIONAL], b"\x09" * 32)
    receiver = records.Direction(SUITES[Suite.INTERNATIONAL], b"\x09" * 32)
    rogue.bytes = receiver.bytes = records.BYTE_LIMIT - 10
    record = rogue.seal(frames.encode(frames.Ping(1)))
    with pytest.raises(RemoteProtocolError) as info:
        receiver.open(record[:12], record[12:])
    assert info.value.code is ErrorCode.KEY_LIMIT_EXCEEDED


def test_requested_key_update_is_answered() -> None:
    pair = connected(Suite.NATIONAL)
    assert pair.server._send is not None
    old = pair.server._send.secret
    pair.client._queue(frames.encode(frames.KeyUpdate(1)))
    pair.client._flush()
    assert pair.client._send is not None
    pair.client._send.update()
    pair.pump()
    assert pair.server._send.secret != old
    deliver = frames.Deliver(1, 1, 1, 0, b"d" * 16, 1, "agent", b"after update")
    pair.server.send(deliver)
    pair.pump()
    assert pair.of("client", frames.Deliver) == [deliver]


def test_direction_open_rejects_short_and_wrong() -> None:
    spec = SUITES[Suite.NATIONAL]
    sender, receiver = records.Direction(spec, b"\x05" * 32), records.Direction(spec, b"\x05" * 32)
    record = sender.seal(frames.encode(frames.Ping(1)))
    with pytest.raises(CryptoError):
        receiver.open(record[:12], b"short")
    assert isinstance(CryptoError(ErrorCode.BAD_RECORD_MAC, "x"), RemoteProtocolError)
    assert isinstance(frames.decode_inner(receiver.open(record[:12], record[12:]))[0][0], frames.Ping)
