"""One end of a link: link frames in and out of a Unix-domain stream socket.

Theory of operation: `data_received` splits whole frames off the buffer and hands each to `on_frame(type, payload)`
in order; a frame whose declared length exceeds MAX_LINK_FRAME is a broken peer (`on_error`). `send` queues a frame's
bytes; the first frame queued in a loop iteration arms one callback that writes them all at the end of the iteration,
so a burst of frames costs one write. `before_flush`, if set, runs just before that write (and may still `send`): a
user of the channel that holds frames back to merge them (`CoreLink`'s cursor advances) queues them there. What waits
to be written is bounded: past `max_buffered` bytes the link is declared congested (`on_error`), so a peer that
stopped reading costs bounded memory and never blocks this side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from .frames import HEAD, MAX_LINK_FRAME, build

__all__ = ["MAX_BUFFERED", "Channel"]

MAX_BUFFERED = 256 << 20
"""Bytes queued for a peer that does not read, before the link is given up: about a minute of a busy gateway's
traffic, far more than a peer that is merely slow needs."""
HIGH_WATER = 8 << 20
"""Bytes queued at which the peer is considered slow (`congested`)."""


class Channel(asyncio.Protocol):
    """A link end. `on_frame(type, payload)` gets every frame; `on_lost(reason)` runs once when the link ends."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_frame: Callable[[int, bytes], None],
        on_lost: Callable[[str], None],
        *,
        max_buffered: int = MAX_BUFFERED,
    ) -> None:
        self._loop = loop
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._max_buffered = max_buffered
        self.transport: asyncio.Transport | None = None
        self._in = bytearray()
        self._need = HEAD.size
        """Bytes `_in` must hold before it is worth parsing again (a frame's head, or the whole frame it starts)."""
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._armed = False
        self._lost = False
        self.congested = False
        """True while the peer reads slower than this side writes (above HIGH_WATER)."""
        self.frames_in = self.frames_out = 0
        self.before_flush: Callable[[], None] | None = None
        """Called at the start of every flush (see the module docstring)."""

    # --- asyncio.Protocol -------------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.Transport", transport)
        self.transport.set_write_buffer_limits(high=HIGH_WATER, low=HIGH_WATER // 4)

    def data_received(self, data: bytes) -> None:
        # Frames are cut straight out of `data` (one copy each, as bytes); only the start of a frame that a later read
        # completes is kept, in `_in`, and joined once it is whole (`_need`: its length, for a frame of any size).
        buf = self._in
        if buf:
            buf += data
            if len(buf) < self._need:
                return
            view = bytes(buf)
            buf.clear()
        else:
            view = data
        pos, end = 0, len(view)
        head, unpack, on_frame = HEAD.size, HEAD.unpack_from, self._on_frame
        self._need = head
        while end - pos >= head:
            length, frame_type = unpack(view, pos)
            if not 1 <= length <= MAX_LINK_FRAME:
                self.close(f"link frame of {length} bytes")
                return
            stop = pos + 4 + length
            if stop > end:
                self._need = stop - pos
                break
            payload = view[pos + head : stop]
            pos = stop
            self.frames_in += 1
            on_frame(frame_type, payload)
            if self._lost:
                return
        if pos < end:
            buf += view[pos:]

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(f"link closed: {exc!r}" if exc else "link closed by the peer")

    def eof_received(self) -> bool | None:
        return None  # close our end too (connection_lost follows)

    def pause_writing(self) -> None:
        self.congested = True

    def resume_writing(self) -> None:
        self.congested = False

    # --- sending ----------------------------------------------------------------------------------------------

    def send(self, frame: Any) -> None:
        """Queue a link frame; written at the end of this loop iteration with every other one."""
        if self._lost:
            return
        data = build(frame)
        self._out.append(data)
        self._out_bytes += len(data)
        if not self._armed:
            self._armed = True
            self._loop.call_soon(self.flush)

    def arm(self) -> None:
        """Flush at the end of this loop iteration even if nothing is queued yet (for `before_flush`)."""
        if not self._armed and not self._lost:
            self._armed = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what is queued (at the end of the iteration, or at once)."""
        if self.before_flush is not None and not self._lost:
            self.before_flush()
        self._armed = False
        transport = self.transport
        if not self._out or transport is None or self._lost:
            return
        out, self._out, self._out_bytes = self._out, [], 0
        transport.write(b"".join(out))
        self.frames_out += len(out)
        if transport.get_write_buffer_size() > self._max_buffered:
            self.close(f"peer not reading: more than {self._max_buffered} bytes queued")

    @property
    def buffered(self) -> int:
        """Bytes waiting to be written (queued this iteration and in the transport)."""
        pending = self.transport.get_write_buffer_size() if self.transport is not None else 0
        return pending + self._out_bytes

    def close(self, reason: str) -> None:
        """End the link (both directions)."""
        if self.transport is not None:
            self.transport.abort()
        self._lose(reason)

    @property
    def lost(self) -> bool:
        """True once the link has ended."""
        return self._lost

    def _lose(self, reason: str) -> None:
        if self._lost:
            return
        self._lost = True
        self._out.clear()
        self._on_lost(reason)
