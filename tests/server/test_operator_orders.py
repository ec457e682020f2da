"""What an operator's command learns of its session order (kefu.server.edge.operator.SessionOrders): the sessions it
ended, whether the command's poke applied it or the process's own periodic check got there first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kefu.server.edge.operator import SessionOrders
from kefu.server.identity.orders import OrderBook, OrderKind, noted


@dataclass
class Held:
    """A ready session as the orders see it (the `Holder` protocol's sessions)."""

    user: str
    client_key: str = ""
    peer: str = "127.0.0.1:1"
    ready: bool = True
    ended: list[Any] = field(default_factory=list)

    def end(self, code: Any, reason: str) -> None:
        self.ended.append((code, reason))
        self.ready = False


class Apps:
    def record(self, app_id: str) -> None:
        return None

    def forget(self, app_id: str) -> None:
        pass

    def invalidate(self) -> None:
        pass


def test_a_command_counts_what_its_order_ended_even_when_the_periodic_check_applied_it() -> None:
    book: list[bytes | None] = [None]
    sessions = {1: Held("alice"), 2: Held("alice"), 3: Held("bob")}
    holder = type("Holder", (), {"sessions": sessions})()
    orders = SessionOrders(holder, lambda: book[0], Apps(), name="gateway-0")
    before = OrderBook.decode(book[0]).generation
    book[0] = noted(book[0], OrderKind.REVOKED, "alice", "", now_ms=1)
    assert orders.check() == 2, "the periodic check comes first"
    assert orders.check() == 0
    assert orders.ended_after(before) == 2, "the command's poke still learns what its order did"
    later = OrderBook.decode(book[0]).generation
    book[0] = noted(book[0], OrderKind.ENDED, "bob", "", now_ms=2)
    assert orders.ended_after(later) == 1 and orders.ended_after(before) == 3
    assert [len(s.ended) for s in sessions.values()] == [1, 1, 1]
