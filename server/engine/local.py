"""The core, as a gateway in the same process sees it: every request is a direct call (``[server] workers = 0``)."""

from __future__ import annotations

from kefu.protocol.frames import Frame, Send, Sync

from .core import Core
from .ports import Endpoint

__all__ = ["LocalCore"]


class LocalCore:
    """A `CorePort` that calls `core` with this gateway's `endpoint`."""

    __slots__ = ("_core", "_endpoint")

    def __init__(self, core: Core, endpoint: Endpoint) -> None:
        self._core, self._endpoint = core, endpoint

    def admit(self, ticket: int, address: str) -> None:
        """See `CorePort.admit`."""
        self._core.admit(self._endpoint, ticket, address)

    def opened(self, sid: int, user: str) -> None:
        """See `CorePort.opened`."""
        self._core.opened(self._endpoint, sid, user)

    def closed(self, sid: int) -> None:
        """See `CorePort.closed`."""
        self._core.closed(self._endpoint, sid)

    def submit(self, sid: int, send: Send, t0: float) -> None:
        """See `CorePort.submit`."""
        self._core.submit(self._endpoint, sid, send, t0)

    def cursor(self, user: str, conversation_id: int, seq: int) -> None:
        """See `CorePort.cursor`."""
        self._core.cursor(user, conversation_id, seq)

    def sync(self, sid: int, sync: Sync, room: int) -> None:
        """See `CorePort.sync`."""
        self._core.sync(self._endpoint, sid, sync, room)

    def fetch(self, ticket: int, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> None:
        """See `CorePort.fetch`."""
        self._core.fetch(self._endpoint, ticket, conversation_id, after=after_seq, until=until_seq, limit=limit)

    def service(self, sid: int, frame: Frame) -> None:
        """See `CorePort.service`."""
        self._core.service(self._endpoint, sid, frame)
