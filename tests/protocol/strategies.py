"""Hypothesis strategies that build any frame from its wire declaration."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from kefu.protocol import frames
from kefu.protocol.wire import Fixed, Int, Seq, Text, Var, wire_fields


def for_kind(kind: Any) -> st.SearchStrategy[Any]:
    """Values of one wire kind, spanning its whole range."""
    match kind:
        case Int(size):
            return st.integers(0, (1 << (8 * size)) - 1)
        case Fixed(size):
            return st.binary(min_size=size, max_size=size)
        case Var(prefix):
            return st.binary(max_size=min(300, (1 << (8 * prefix)) - 1))
        case Text(prefix):
            return st.text(max_size=min(60, (1 << (8 * prefix)) - 1)).filter(
                lambda s: len(s.encode()) < (1 << (8 * prefix))
            )
        case Seq(_, item):
            return st.lists(for_kind(item), max_size=4).map(tuple)
        case type():
            return for_struct(kind)
    raise TypeError(kind)


def for_struct(cls: type) -> st.SearchStrategy[Any]:
    """Instances of a wire_struct class with arbitrary field values."""
    fields = wire_fields(cls)
    return st.builds(cls, *(for_kind(kind) for _, kind in fields))


def for_frame(cls: type[frames.Frame]) -> st.SearchStrategy[frames.Frame]:
    """Frames of `cls` with arbitrary header fields too."""
    fields = wire_fields(cls)
    return st.builds(
        cls,
        *(for_kind(kind) for _, kind in fields),
        request_id=st.integers(0, 2**32 - 1),
        flags=st.integers(0, 2**16 - 1),
    )


any_frame = st.sampled_from(sorted(frames.FRAME_CLASSES.values(), key=lambda c: c.TYPE)).flatmap(for_frame)
