"""What an operator asks of one gateway's sessions: apply the session orders, list the sessions.

Theory of operation: `SessionOrders` reads the order book (`kefu.server.identity.orders`) when poked and every
ORDER_POLL_S, and applies each order newer than the generation it applied last: it forgets the app's cached credential
(the next handshake reads the store, so a revoked app or a retired key is refused from then on) and ends every
matching ready session with ERROR(ORDER_CODE). A session still in its handshake cannot slip through: its credential is
looked up and its handshake completed in one step of the event loop, either before the order is applied (it is then
ready, and ended with the others) or after (it reads the store, and is refused). A book with a gap (more than
MAX_ORDERS orders since the last look) makes it check every session against the store instead.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

from kefu.protocol.errors import ErrorCode

from .. import log as logmod
from ..identity.orders import ORDER_CODE, ORDER_POLL_S, OrderBook, OrderKind, SessionOrder
from .session import Session

__all__ = ["MAX_LISTED", "SessionOrders"]

MAX_LISTED: Final = 10_000
"""Sessions one process lists at most (an answer of about 2 MB); past it the answer says it was truncated."""


class AppView(Protocol):
    """What the orders need of an app's record."""

    @property
    def role(self) -> str: ...
    @property
    def pins(self) -> tuple[str, ...]: ...


REMEMBERED: Final = 256
"""Orders whose effect a process remembers for the operator's commands (a few bytes each)."""


class AppCache(Protocol):
    """The gateway's cached app directory (`kefu.server.identity.keys.AppDirectory`)."""

    def record(self, app_id: str) -> AppView | None: ...
    def allows(self, app_id: str, client_key: str, *, now: float) -> bool: ...
    def forget(self, app_id: str) -> None: ...
    def invalidate(self) -> None: ...


class Holder(Protocol):
    """The gateway: its sessions by sid."""

    sessions: dict[int, Session]


class SessionOrders:
    """The session orders of one process that holds client connections, and its operator's view of them."""

    def __init__(self, holder: Holder, read: Callable[[], bytes | None], apps: AppCache, *, name: str) -> None:
        self._holder = holder
        self._read = read
        self._apps = apps
        self.name = name
        self._raw = read()
        self.generation = OrderBook.decode(self._raw).generation
        """The last order applied (orders before this process started concern no session of it)."""
        self._ended: collections.OrderedDict[int, int] = collections.OrderedDict()
        """Sessions each recent order ended (by generation, the last `REMEMBERED` orders): an operator's command asks
        what its order did, whether its poke or the periodic check applied it."""

    def check(self) -> int:
        """Apply the orders issued since the last check; how many sessions ended."""
        raw = self._read()
        if raw == self._raw:
            return 0
        self._raw = raw
        book = OrderBook.decode(raw)
        if book.complete_after(self.generation):
            ended = 0
            for order in book.after(self.generation):
                self._ended[order.generation] = n = self._apply(order)
                ended += n
        else:
            ended = self._recheck_all()
            self._ended[book.generation] = ended
        while len(self._ended) > REMEMBERED:
            self._ended.popitem(last=False)
        self.generation = book.generation
        return ended

    def ended_after(self, generation: int) -> int:
        """Apply what is new, then how many sessions the orders newer than `generation` ended (as far as the last
        `REMEMBERED` orders go)."""
        self.check()
        return sum(n for g, n in self._ended.items() if g > generation)

    def _apply(self, order: SessionOrder) -> int:
        self._apps.forget(order.app_id)
        kind = OrderKind(order.kind)
        doomed = [s for s in self._ready() if order.matches(s.user, s.client_key)]
        for session in doomed:
            self._end(session, kind)
        logmod.event("sessions.order", process=self.name, order=kind.name.lower(), app=order.app_id,
                     pin=order.pin or None, generation=order.generation, ended=len(doomed))  # fmt: skip
        return len(doomed)

    def _recheck_all(self) -> int:
        """Every session against the store (a gap in the book: some orders were never seen)."""
        self._apps.invalidate()
        ended = 0
        for session in list(self._ready()):
            record = self._apps.record(session.user)
            if record is None or not self._apps.allows(session.user, session.client_key, now=time.time()):
                self._end(session, OrderKind.REVOKED if record is None else OrderKind.KEY_RETIRED)
                ended += 1
        logmod.warning("sessions.orders_missed", process=self.name, generation=self.generation, ended=ended)
        return ended

    def _ready(self) -> Iterator[Session]:
        return (s for s in list(self._holder.sessions.values()) if s.ready)

    @staticmethod
    def _end(session: Session, kind: OrderKind) -> None:
        logmod.event("conn.ended", peer=session.peer, app=session.user, code=ORDER_CODE.name, reason=kind.reason)
        session.end(ErrorCode(ORDER_CODE), kind.reason)

    async def poll_forever(self) -> None:
        """`check` every ORDER_POLL_S (a failed read is logged and tried again)."""
        while True:
            await asyncio.sleep(ORDER_POLL_S)
            try:
                self.check()
            except Exception as exc:
                logmod.error("sessions.orders_failed", process=self.name, reason=repr(exc))

    def listing(self, app: str = "") -> dict[str, Any]:
        """The ready sessions (of `app` only, if given), at most MAX_LISTED, as the operator socket answers."""
        rows: list[dict[str, str]] = []
        for session in self._ready():
            if app and session.user != app:
                continue
            if len(rows) >= MAX_LISTED:
                return {"process": self.name, "sessions": rows, "truncated": True}
            record = self._apps.record(session.user)
            rows.append({
                "app": session.user,
                "role": record.role if record is not None else "-",
                "process": self.name,
                "address": session.peer,
                "since": dt.datetime.fromtimestamp(session.since, dt.UTC).isoformat(timespec="seconds"),
                "suite": session.suite_name,
                "client_key": session.client_key,
            })  # fmt: skip
        return {"process": self.name, "sessions": rows, "truncated": False}
