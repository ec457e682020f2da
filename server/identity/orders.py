"""Session orders: what an operator's change to an app asks of its live sessions (issue #13, point 6).

Theory of operation: `kefu app revoke`, `kefu app retire-key` and `kefu session end` change the store (the app's record
deleted or narrowed, or nothing) and, in the same transaction, append a `SessionOrder` to the `OrderBook` kept under
one key of the store's ``meta`` table (`Store.change_app`). Every process that holds client connections (each gateway
worker, or the single-process server) keeps the generation it has applied and reads the book every ORDER_POLL_S; the
command also pokes each of them over its operator socket (`kefu.server.runtime.operator`), so an order usually takes
effect within milliseconds and at worst within ORDER_POLL_S, signal or not. Applying an order forgets the app's
cached credential (so the next handshake reads the store) and ends the matching sessions with ERROR(AUTH_FAILED).

Nothing is missed across processes: the store's change and the order are one transaction, and a gateway applies only
orders newer than the generation it saw at its start (older ones concerned sessions that died with the process
before it). The book keeps the MAX_ORDERS newest orders; a gateway that finds a gap (it was stalled through more than
that many) checks every one of its sessions against the store instead.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Annotated, Final

from kefu.protocol.errors import ErrorCode
from kefu.protocol.wire import U8, U64, Seq, Str8, Truncated, WireStruct, wire_struct

__all__ = ["MAX_ORDERS", "ORDER_CODE", "ORDER_POLL_S", "OrderBook", "OrderKind", "SessionOrder", "noted"]

MAX_ORDERS: Final = 256
"""Orders kept in the book: far more than operators issue within one ORDER_POLL_S, so a gap means a stalled gateway."""
ORDER_POLL_S: Final = 0.25
"""How often a gateway reads the book (one LMDB read): the bound on an order's delay when no poke arrives."""
ORDER_CODE: Final = ErrorCode.AUTH_FAILED
"""The code of the ERROR that ends a session on an order (spec section 9: "... unregistered client key, or revoked
app"): fatal, and a client that then fails to authenticate again must stop reconnecting."""


class OrderKind(enum.IntEnum):
    """Why sessions end; the ERROR's reason says it to the client."""

    REVOKED = 1
    """The app was revoked: every session of it ends."""
    KEY_RETIRED = 2
    """One client key of the app was retired: the sessions that authenticated with it end."""
    ENDED = 3
    """An operator ended the app's sessions (`kefu session end`); it may connect again."""
    SIGNED_OUT = 4
    """A session credential was revoked (sign-out, `kefu staff signout`, spec section 16): the sessions that
    authenticated with it end (every session of the app when `pin` is empty)."""

    @property
    def reason(self) -> str:
        """The ERROR's reason."""
        return _REASONS[self]


_REASONS: Final = {
    OrderKind.REVOKED: "app revoked",
    OrderKind.KEY_RETIRED: "client key retired",
    OrderKind.ENDED: "session ended by the operator",
    OrderKind.SIGNED_OUT: "signed out",
}


@wire_struct
@dataclass(frozen=True, slots=True)
class SessionOrder(WireStruct):
    """End the sessions of `app_id` (only those authenticated with client key `pin`, when set)."""

    generation: U64
    at_ms: U64
    kind: U8
    app_id: Str8
    pin: Str8

    def matches(self, app_id: str, client_key: str) -> bool:
        """Whether a session of `app_id` that authenticated with `client_key` ("" for the secret) must end."""
        return app_id == self.app_id and (not self.pin or client_key == self.pin)


@wire_struct
@dataclass(frozen=True, slots=True)
class OrderBook(WireStruct):
    """The newest orders, oldest first; `generation` is the last one's (0: none ever)."""

    generation: U64
    orders: Annotated[tuple[SessionOrder, ...], Seq(2, SessionOrder)]

    def after(self, generation: int) -> tuple[SessionOrder, ...]:
        """The orders newer than `generation`."""
        return tuple(order for order in self.orders if order.generation > generation)

    def complete_after(self, generation: int) -> bool:
        """Whether the book still holds every order newer than `generation`."""
        return not self.orders or self.orders[0].generation <= generation + 1

    def encode(self) -> bytes:
        """The stored bytes."""
        data: bytes = self._wire_build(self)
        return data

    @classmethod
    def decode(cls, raw: bytes | None) -> OrderBook:
        """Parse stored bytes (None: the empty book); ValueError if they are not a book."""
        if raw is None:
            return EMPTY
        try:
            book: OrderBook = cls._wire_parse(raw, 0, len(raw))[0]
        except Truncated:
            raise ValueError("corrupt session order book") from None
        return book


EMPTY: Final = OrderBook(0, ())


def noted(raw: bytes | None, kind: OrderKind, app_id: str, pin: str, *, now_ms: int) -> bytes:
    """The stored book `raw` with one more order (the oldest dropped past MAX_ORDERS)."""
    book = OrderBook.decode(raw)
    order = SessionOrder(book.generation + 1, now_ms, int(kind), app_id, pin)
    return OrderBook(order.generation, (*book.orders[-(MAX_ORDERS - 1) :], order)).encode()
