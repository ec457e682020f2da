"""HTTP requests as the protocol's requests: each API call that the protocol also offers becomes the frame a client
would send, handled by the core (`Core.request`) and the desk exactly as a connection's, on behalf of a `CoreDevice`
of the calling app made for that one request. So roles, tenants, rate limits and idempotency are decided by the same
code for both paths.

`ApiEndpoint` is the core's `Endpoint` for those devices: it collects the frames answering a request (a SEND's
outcome, a fetch's DELIVERs up to SYNC_DONE, a RESULT, OPENED, SEARCH_RESULT or ERROR) and completes the request's
future. The devices are never admitted nor present: they count for no presence and receive no messages.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from kefu.protocol.frames import Deliver, Error, Frame, Opened, Result, SearchResult, Send, SyncDone

from ..engine.core import Core, CoreDevice
from ..engine.messages import Outgoing, SendResult
from ..engine.ports import ResumePlan

__all__ = ["ANSWER_TIMEOUT_S", "Answer", "ApiEndpoint", "ask"]

ANSWER_TIMEOUT_S = 30.0
"""How long a request waits for the core's answer (a SEND waits for its commit; a search for its worker thread)."""
_TERMINAL = (Error, Opened, Result, SearchResult, SyncDone)


@dataclass(slots=True)
class Answer:
    """What answered one request: the frames sent to its device (DELIVERs, then the final frame), or a SEND's
    outcome."""

    frames: list[Frame] = field(default_factory=list)
    send_result: SendResult | None = None

    @property
    def final(self) -> Frame | None:
        """The frame that ended the answer (None for a SEND's outcome)."""
        return self.frames[-1] if self.frames else None

    @property
    def delivered(self) -> list[Deliver]:
        """The DELIVERs of a fetch."""
        return [f for f in self.frames if isinstance(f, Deliver)]


class ApiEndpoint:
    """The core's `Endpoint` for the API's per-request devices."""

    def __init__(self) -> None:
        self._pending: dict[int, tuple[Answer, asyncio.Future[Answer]]] = {}
        self._sids = itertools.count(1)

    def open(self, user: str, loop: asyncio.AbstractEventLoop) -> tuple[CoreDevice, asyncio.Future[Answer]]:
        """A device of `user` for one request, and the future of its answer."""
        device = CoreDevice(self, next(self._sids))
        device.user, device.since = user, 0.0
        future: asyncio.Future[Answer] = loop.create_future()
        self._pending[device.sid] = (Answer(), future)
        return device, future

    def forget(self, sid: int) -> None:
        """The request gave up waiting."""
        self._pending.pop(sid, None)

    def _finish(self, sid: int) -> None:
        answer, future = self._pending.pop(sid)
        if not future.done():
            future.set_result(answer)

    # --- Endpoint ----------------------------------------------------------------------------------------------

    def submitted(self, sid: int, send: Send, result: SendResult, cursor: int) -> None:
        """See `Endpoint.submitted`."""
        if sid in self._pending:
            self._pending[sid][0].send_result = result
            self._finish(sid)

    def send(self, sid: int, frame: Frame) -> None:
        """See `Endpoint.send`."""
        pending = self._pending.get(sid)
        if pending is None:
            return  # a frame after the answer (QUEUE_POSITION after OPENED): the HTTP caller polls for those
        pending[0].frames.append(frame)
        if isinstance(frame, _TERMINAL):
            self._finish(sid)

    def publish(self, message: Outgoing, recipients: Sequence[tuple[str, int]], origin: int, t0: float) -> None:
        """See `Endpoint.publish` (never called: these devices are not present)."""

    def resume(self, sid: int, request_id: int, conversation_id: int, plans: Sequence[ResumePlan]) -> None:
        """See `Endpoint.resume` (never called: the API only fetches ranges)."""

    def admitted(self, ticket: int, code: object) -> None:
        """See `Endpoint.admitted` (never called: these devices are not admitted)."""

    def fetched(self, ticket: int, messages: Sequence[Outgoing]) -> None:
        """See `Endpoint.fetched` (never called)."""


async def ask(core: Core, endpoint: ApiEndpoint, user: str, frame: Frame) -> Answer:
    """Have the core handle `frame` as a request of `user`; its answer. TimeoutError after ANSWER_TIMEOUT_S."""
    device, future = endpoint.open(user, core.loop)
    try:
        core.request(device, frame, time.monotonic())
        async with asyncio.timeout(ANSWER_TIMEOUT_S):
            return await future
    finally:
        endpoint.forget(device.sid)
