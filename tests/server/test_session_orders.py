"""Session orders (kefu.server.identity.orders): written with the app change in one transaction, read by gateways."""

from __future__ import annotations

import pytest

from kefu.server.identity import keys
from kefu.server.identity.orders import MAX_ORDERS, OrderBook, OrderKind, noted
from kefu.server.storage.store import Store

PIN = "sm2:" + "ab" * 32


def test_each_change_appends_one_order_with_the_change(store: Store) -> None:
    keys.create_app(store, "bank-app", client_key_pins=[PIN])
    keys.retire_client_key(store, "bank-app", PIN)
    keys.end_sessions(store, "bank-app")
    assert keys.revoke_app(store, "bank-app") is True
    book = OrderBook.decode(store.app_orders())
    assert [(o.generation, OrderKind(o.kind), o.app_id, o.pin) for o in book.orders] == [
        (1, OrderKind.KEY_RETIRED, "bank-app", PIN),
        (2, OrderKind.ENDED, "bank-app", ""),
        (3, OrderKind.REVOKED, "bank-app", ""),
    ]
    assert store.get_app("bank-app") is None


def test_a_refused_change_leaves_no_order(store: Store) -> None:
    keys.create_app(store, "bank-app")
    with pytest.raises(keys.AppError, match="not registered"):
        keys.retire_client_key(store, "bank-app", PIN)
    with pytest.raises(keys.AppError, match="no app"):
        keys.end_sessions(store, "nobody")
    assert keys.revoke_app(store, "nobody") is False
    assert store.app_orders() is None


def test_retiring_a_key_keeps_the_others(store: Store) -> None:
    other = "ed25519:" + "cd" * 32
    keys.create_app(store, "bank-app", client_key_pins=[PIN, other])
    assert keys.retire_client_key(store, "bank-app", PIN).pins == (other,)


def test_the_book_keeps_the_newest_orders_and_says_when_some_were_missed() -> None:
    raw = None
    for _ in range(MAX_ORDERS + 10):
        raw = noted(raw, OrderKind.ENDED, "a", "", now_ms=0)
    book = OrderBook.decode(raw)
    assert len(book.orders) == MAX_ORDERS and book.generation == MAX_ORDERS + 10
    assert book.complete_after(book.generation - MAX_ORDERS)
    assert not book.complete_after(5)
    assert [o.generation for o in book.after(book.generation - 2)] == [book.generation - 1, book.generation]


def test_an_order_matches_the_app_and_its_key() -> None:
    book = OrderBook.decode(noted(None, OrderKind.KEY_RETIRED, "a", PIN, now_ms=0))
    order = book.orders[0]
    assert order.matches("a", PIN) and not order.matches("a", "") and not order.matches("b", PIN)
    every = OrderBook.decode(noted(None, OrderKind.REVOKED, "a", "", now_ms=0)).orders[0]
    assert every.matches("a", "") and every.matches("a", PIN)
