"""Framing: header, every frame type, the construct declaration agreement, chunking and limits."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kefu.protocol import frames
from kefu.protocol.errors import ErrorCode, RemoteProtocolError
from kefu.protocol.frames import HEADER, FrameDecoder, FrameType
from kefu.protocol.wire import wire_fields

from .strategies import any_frame, for_frame

ALL_TYPES = sorted(frames.FRAME_CLASSES.values(), key=lambda c: c.TYPE)


def as_construct_dict(obj: Any) -> Any:
    """A frame or nested structure as the dict construct builds from."""
    if dataclasses.is_dataclass(obj):
        return {name: as_construct_dict(getattr(obj, name)) for name, _ in wire_fields(type(obj))}
    if isinstance(obj, tuple):
        return [as_construct_dict(x) for x in obj]
    return obj


def from_construct(cls: type, container: Any, **header: int) -> Any:
    """Rebuild a dataclass from what construct parsed."""
    values = []
    for name, kind in wire_fields(cls):
        value = container[name]
        item = getattr(kind, "item", None)
        if isinstance(item, type):
            value = tuple(from_construct(item, v) for v in value)
        elif item is not None:
            value = tuple(value)
        values.append(value)
    return cls(*values, **header)


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_fast_codec_agrees_with_construct_declaration(cls: type[frames.Frame], data: st.DataObject) -> None:
    frame = data.draw(for_frame(cls))
    body = frames.encode_body(frame)
    assert cls.CONSTRUCT.build(as_construct_dict(frame)) == body
    parsed = cls.CONSTRUCT.parse(body)
    assert from_construct(cls, parsed, request_id=frame.request_id, flags=frame.flags) == frame
    assert frames.parse_body(cls.TYPE, body, request_id=frame.request_id, flags=frame.flags) == frame


def test_every_frame_type_has_a_structure_except_record() -> None:
    assert set(FrameType) - set(frames.FRAME_CLASSES) == {FrameType.RECORD}


def test_header_layout() -> None:
    ping = frames.Ping(0x0102030405060708, request_id=0xAABBCCDD, flags=0x1234)
    wire = frames.encode(ping)
    assert wire[:12] == bytes.fromhex("0000000801201234aabbccdd")
    assert wire[12:] == bytes.fromhex("0102030405060708")


@settings(max_examples=200, deadline=None)
@given(st.lists(any_frame, min_size=1, max_size=6), st.data())
def test_decoder_accepts_any_chunking(frame_list: list[frames.Frame], data: st.DataObject) -> None:
    stream = b"".join(frames.encode(f) for f in frame_list)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    decoder = FrameDecoder()
    out: list[frames.Frame | None] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out.extend(frames.decode_frame(raw) for raw in decoder.feed(stream[start:cut]))
        start = cut
    assert out == frame_list
    assert decoder.buffered == 0


def test_one_chunk_returns_every_complete_frame_in_one_call() -> None:
    pings = [frames.Ping(i) for i in range(50)]
    stream = b"".join(frames.encode(p) for p in pings)
    decoder = FrameDecoder()
    raws = decoder.feed(stream + frames.encode(frames.Ping(99))[:5])
    assert [frames.decode_frame(r) for r in raws] == pings
    assert decoder.buffered == 5


def test_one_byte_at_a_time_and_one_mebibyte_at_a_time() -> None:
    big = frames.Send(b"k" * 16, 7, 1, b"x" * (frames.MAX_BODY - 100))
    small = frames.Ping(1)
    stream = frames.encode(small) + frames.encode(big) + frames.encode(small)
    for step in (1, 1 << 20):
        decoder = FrameDecoder()
        got = []
        for i in range(0, len(stream), step):
            got.extend(decoder.feed(stream[i : i + step]))
        assert [frames.decode_frame(r) for r in got] == [small, big, small]


def test_feeding_one_byte_at_a_time_is_linear() -> None:
    """Each byte of a large frame costs O(1): the buffer is appended to, not rebuilt.

    Not a timing test: it counts how many bytes the decoder copies, through the size of what it buffers.
    """
    decoder = FrameDecoder()
    wire = frames.encode(frames.Send(b"k" * 16, 1, 1, b"y" * 200_000))
    peak = 0
    for i in range(len(wire) - 1):
        assert decoder.feed(wire[i : i + 1]) == []
        peak = max(peak, decoder.buffered)
    assert peak == len(wire) - 1
    assert len(decoder.feed(wire[-1:])) == 1


@pytest.mark.parametrize(
    ("frame_type", "limit"),
    [
        (FrameType.SEND, frames.MAX_BODY),
        (FrameType.CLIENT_HELLO, frames.MAX_HANDSHAKE_BODY),
        (FrameType.RECORD, frames.MAX_RECORD_BODY),
        (0x7E, frames.MAX_BODY),
    ],
)
def test_oversize_rejected_from_the_header_alone(frame_type: int, limit: int) -> None:
    decoder = FrameDecoder()
    decoder.feed(HEADER.pack(limit, 1, frame_type, 0, 0)[:11])  # at the limit: accepted, waits for body
    assert decoder.feed(HEADER.pack(limit, 1, frame_type, 0, 0)[11:]) == []
    decoder = FrameDecoder()
    with pytest.raises(RemoteProtocolError) as info:
        decoder.feed(HEADER.pack(limit + 1, 1, frame_type, 0, 0))
    assert info.value.code is ErrorCode.FRAME_TOO_LARGE
    assert decoder.buffered == 0


def test_wrong_version_rejected() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        FrameDecoder().feed(HEADER.pack(0, 2, FrameType.PING, 0, 0))
    assert info.value.code is ErrorCode.UNSUPPORTED_VERSION


def test_unknown_types_critical_and_ignorable() -> None:
    (critical,) = FrameDecoder().feed(HEADER.pack(1, 1, 0x7F, 0, 0) + b"z")
    with pytest.raises(RemoteProtocolError) as info:
        frames.decode_frame(critical)
    assert info.value.code is ErrorCode.UNKNOWN_FRAME_TYPE
    (ignorable,) = FrameDecoder().feed(HEADER.pack(3, 1, 0x80, 0, 0) + b"abc")
    assert frames.decode_frame(ignorable) is None


def test_trailing_optional_fields_are_ignored() -> None:
    """Section 3.5: a v1.x peer may append fields; a v1 receiver skips them."""
    ping = frames.Ping(5)
    body = frames.encode_body(ping) + b"future field"
    assert frames.parse_body(FrameType.PING, body) == ping


@pytest.mark.parametrize("cls", ALL_TYPES, ids=lambda c: c.__name__)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_every_truncation_of_a_body_is_malformed(cls: type[frames.Frame], data: st.DataObject) -> None:
    frame = data.draw(for_frame(cls))
    body = frames.encode_body(frame)
    for cut in range(len(body)):
        with pytest.raises(RemoteProtocolError) as info:
            frames.parse_body(cls.TYPE, body[:cut])
        assert info.value.code is ErrorCode.MALFORMED_FRAME


def test_invalid_utf8_is_malformed() -> None:
    body = frames.encode_body(frames.Error(400, "ab"))
    with pytest.raises(RemoteProtocolError) as info:
        frames.parse_body(FrameType.ERROR, body[:-2] + b"\xff\xfe")
    assert info.value.code is ErrorCode.MALFORMED_FRAME


def test_decode_inner_rejects_fragments_nesting_and_empty() -> None:
    ping = frames.encode(frames.Ping(1))
    for bad in (b"", ping[:-1], ping + HEADER.pack(0, 1, FrameType.RECORD, 0, 0)):
        with pytest.raises(RemoteProtocolError) as info:
            frames.decode_inner(bad)
        assert info.value.code is ErrorCode.RECORD_FRAGMENT
