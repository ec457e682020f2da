"""One WebSocket connection seen by a `Session` as the asyncio transport it drives over TCP (spec section 15).

Theory of operation: the gateway's `Session` is an asyncio.Protocol; over TCP the event loop calls it and it calls
the transport. Here `WebSocketTransport` stands in for the transport and drives the same calls from an aiohttp
`WebSocketResponse`, so that admission, the handshake budget, rate limits, timers, delivery windows and
backpressure are the TCP ones, by construction:

- **Reading**: `run` (the request's handler task) receives one WebSocket message at a time and hands a binary
  message's payload to `Session.data_received`, exactly as a TCP read. A client's message is at most
  `MAX_CLIENT_MESSAGE_BYTES`, one handshake frame (spec section 15.2): aiohttp refuses a longer one from its header
  (1009), before buffering any of it, so a peer that has not authenticated makes the server hold no more than the
  handshake limit here, as over TCP (section 8; a 1 MiB message used to be held whole before the session saw a
  byte of it). Until the session's handshake is complete (`ready`), every message is handed on even while the session
  has paused reading: the session keeps at most a CLIENT_HELLO of what arrives early and refuses the rest, as it
  does with what uvloop reads early over TCP, so nothing waits in aiohttp's queue either. Once it is ready, while
  the session has paused reading, no message is received: aiohttp then stops reading the socket once its own queue
  holds `DEFAULT_CHUNK_SIZE`-ish bytes, so what a paused client can make the server hold stays bounded.
- **Writing**: `write` only queues (it must not block, and sending a WebSocket message is a coroutine); one writer
  task per connection sends what is queued as binary messages of at most `MAX_MESSAGE_BYTES` (a record may span
  two). aiohttp's writer is
  made to wait for the socket to drain below the session's low-water mark after every message (its `writer_limit`
  of 1 with the socket's limits set to that mark), so `get_write_buffer_size` (queued here plus the socket's buffer)
  passing the high-water mark calls `Session.pause_writing`, and the queue running dry with the socket below the
  low-water mark calls `resume_writing`: the same contract asyncio gives the session over TCP.
- **Closing**: `close` sends what is queued, then a WebSocket close 1000; `abort` (a connection refused by a limit,
  dropped unread over TCP) discards what is queued and closes with 1013 (try again later). A text message closes
  with 1003; aiohttp closes an oversized message with 1009 and a malformed frame with 1002. The peer's close ends
  the stream (`eof_received`). `connection_lost` is called once, when the handler ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from kefu.protocol.frames import HEADER_LEN, MAX_HANDSHAKE_BODY, MAX_RECORD_BODY

__all__ = [
    "CLOSE_TIMEOUT_S", "MAX_CLIENT_MESSAGE_BYTES", "MAX_MESSAGE_BYTES", "SUBPROTOCOL", "WebSocketTransport",
    "websocket_response",
]  # fmt: skip

SUBPROTOCOL = "kefu.v1"
"""The WebSocket subprotocol of the kefu byte stream (spec section 15.1)."""
MAX_MESSAGE_BYTES = HEADER_LEN + MAX_RECORD_BODY
"""The largest message the server sends: one record of the largest frame (spec section 15.2); it cuts its output into
messages no larger."""
MAX_CLIENT_MESSAGE_BYTES = HEADER_LEN + MAX_HANDSHAKE_BODY
"""The largest message a client may send (spec section 15.2): one handshake frame. A larger record goes out as several
messages (the stream is what counts), so that what a peer can make the server buffer before it authenticates is the
handshake limit, as over TCP."""
CLOSE_TIMEOUT_S = 2.0
"""How long a close waits for the peer's close frame before dropping the TCP connection (a peer that never answers
must not hold a handler)."""


def websocket_response() -> web.WebSocketResponse:
    """The server side of one /ws connection: subprotocol kefu.v1, a client's messages up to MAX_CLIENT_MESSAGE_BYTES,
    no compression, no WebSocket heartbeat (the protocol has its own keepalive), and aiohttp's writer waiting for the
    socket to drain after every message (`writer_limit` 1: see the module docstring)."""
    return web.WebSocketResponse(
        protocols=(SUBPROTOCOL,),
        max_msg_size=MAX_CLIENT_MESSAGE_BYTES + 1,  # aiohttp refuses a message whose size reaches max_msg_size
        compress=False,
        heartbeat=None,
        autoping=True,
        timeout=CLOSE_TIMEOUT_S,
        writer_limit=1,
    )


class WebSocketTransport(asyncio.Transport):
    """The transport a `Session` sees for one WebSocket connection (see the module docstring)."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        request: web.Request,
        *,
        count_in: Callable[[int], None],
        count_out: Callable[[int], None],
    ) -> None:
        super().__init__()
        self._ws = ws
        self._socket = request.transport
        self._peername = self._socket.get_extra_info("peername") if self._socket is not None else None
        self._count_in = count_in
        self._count_out = count_out
        self._protocol: asyncio.Protocol | None = None
        self._queue: list[bytes] = []
        self._queued = 0
        self._high, self._low = 64 * 1024, 16 * 1024  # until the session sets its own ([limits] write_*_water)
        self._write_paused = False
        self._reading = True
        self._reading_again: asyncio.Future[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._close_code: int | None = None
        self._close_reason = b""
        self._lost = False
        self._writer: asyncio.Task[None] | None = None

    # --- what the session asks (asyncio.Transport) ----------------------------------------------------------

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peername
        return self._socket.get_extra_info(name, default) if self._socket is not None else default

    def is_closing(self) -> bool:
        return self._close_code is not None or self._ws.closed

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.is_closing() or not data:
            return
        self._queue.append(bytes(data))
        self._queued += len(data)
        self._wake_writer()
        if not self._write_paused and self.get_write_buffer_size() > self._high:
            self._write_paused = True
            if self._protocol is not None:
                self._protocol.pause_writing()

    def get_write_buffer_size(self) -> int:
        socket = self._socket
        return self._queued + (socket.get_write_buffer_size() if socket is not None and not socket.is_closing() else 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = high if high is not None else 64 * 1024
        self._low = low if low is not None else self._high // 4
        if self._socket is not None and not self._socket.is_closing():
            # aiohttp's writer waits after each message until the socket's buffer is below its low mark
            self._socket.set_write_buffer_limits(high=self._low, low=self._low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        self._reading = True
        self._wake_reader()

    def is_reading(self) -> bool:
        return self._reading

    def close(self) -> None:
        """Send what is queued, then the WebSocket close (1000)."""
        self._begin_close(WSCloseCode.OK, b"")

    def abort(self) -> None:
        """Drop the connection without a word of the protocol: what is queued is discarded; close 1013."""
        self._queue.clear()
        self._queued = 0
        self._begin_close(WSCloseCode.TRY_AGAIN_LATER, b"")

    # --- the connection's life ------------------------------------------------------------------------------

    async def run(self, protocol: asyncio.Protocol) -> None:
        """Serve the connection with `protocol` (a `Session`) until it is closed by either side."""
        self._protocol = protocol
        self._writer = asyncio.get_running_loop().create_task(self._write_forever())
        try:
            protocol.connection_made(self)
            await self._read_forever(protocol)
        finally:
            if self._close_code is None:
                self._begin_close(WSCloseCode.OK, b"")
            try:
                with contextlib.suppress(Exception):
                    await self._writer
            finally:  # even when the handler is cancelled (a stop past its timeout): the session must be forgotten
                self._lost = True
                protocol.connection_lost(None)

    async def _read_forever(self, protocol: asyncio.Protocol) -> None:
        ws = self._ws
        while self._close_code is None:
            if not self._reading and getattr(protocol, "ready", True):  # before: see the module docstring
                self._reading_again = asyncio.get_running_loop().create_future()
                await self._reading_again
                continue
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.BINARY:
                self._count_in(len(msg.data))
                protocol.data_received(msg.data)
            elif kind is WSMsgType.TEXT:
                self._begin_close(WSCloseCode.UNSUPPORTED_DATA, b"binary messages only")
            else:  # CLOSE, CLOSING, CLOSED, ERROR: the stream has ended
                if kind is not WSMsgType.ERROR and self._close_code is None:
                    protocol.eof_received()
                return

    async def _write_forever(self) -> None:
        ws = self._ws
        try:
            while True:
                if not self._queue:
                    self._resume_writing_if_drained()  # the session may write at once, from resume_writing
                    if self._queue:
                        continue
                    if self._close_code is not None:
                        break
                    self._wake = asyncio.get_running_loop().create_future()
                    await self._wake
                    continue
                data = b"".join(self._queue) if len(self._queue) > 1 else self._queue[0]
                self._queue.clear()
                self._queued = 0
                for start in range(0, len(data), MAX_MESSAGE_BYTES):
                    await ws.send_bytes(data[start : start + MAX_MESSAGE_BYTES])
                self._count_out(len(data))
            if not ws.closed:
                await ws.close(code=self._close_code or WSCloseCode.OK, message=self._close_reason)
        except (ConnectionError, RuntimeError):  # the peer went away, or the response closed under us
            self._queue.clear()
            self._queued = 0
            if self._socket is not None:
                self._socket.abort()
            if self._close_code is None:  # a reader paused by the session would not see the end: end it here
                self._close_code = WSCloseCode.ABNORMAL_CLOSURE
            self._wake_reader()

    def _resume_writing_if_drained(self) -> None:
        if self._write_paused and self.get_write_buffer_size() <= self._low and not self._lost:
            self._write_paused = False
            if self._protocol is not None:
                self._protocol.resume_writing()

    def _begin_close(self, code: int, reason: bytes) -> None:
        if self._close_code is not None:
            return
        self._close_code, self._close_reason = code, reason
        # A peer that reads nothing would keep the writer waiting for the socket to drain, and the close with it.
        with contextlib.suppress(RuntimeError):  # no running loop: the handler is being destroyed with its loop
            asyncio.get_running_loop().call_later(2 * CLOSE_TIMEOUT_S, self._drop)
        self._wake_writer()
        self._wake_reader()

    def _drop(self) -> None:
        if not self._lost and self._socket is not None:
            self._socket.abort()

    def _wake_writer(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None and not wake.done():
            wake.set_result(None)

    def _wake_reader(self) -> None:
        waiting, self._reading_again = self._reading_again, None
        if waiting is not None and not waiting.done():
            waiting.set_result(None)
