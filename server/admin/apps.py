"""App credentials: register, register in bulk (benchmarks), list, revoke, retire a client key.

Revoking an app and retiring one of its client keys also end the live sessions they authenticated (a session order,
`kefu.server.identity.orders`, then a poke of the running server: `kefu.server.admin.operator`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..engine.audit import Action
from ..engine.identity import Role
from ..identity.bulk import add_bulk
from ..identity.keys import AppError, AppRecord, create_app, list_app_records, retire_client_key, revoke_app
from ..storage.store import Store
from ..wiring import open_store
from .audit import audited
from .errors import AdminError
from .operator import Poke, orders_generation, poke

__all__ = ["add_app", "add_apps_in_bulk", "list_apps", "retire_key", "revoke", "revoke_in", "store_of"]


@contextmanager
def store_of(config: Any) -> Iterator[Store]:
    """The store of the configured data directory, open for the duration (a running server may use it too)."""
    config.data_path.mkdir(parents=True, exist_ok=True)
    store = open_store(config)
    try:
        yield store
    finally:
        store.close()


def add_app(
    config: Any, name: str, *, client_key_pins: Sequence[str] = (), role: Role = Role.APP, tenant: str = ""
) -> tuple[AppRecord, bytes]:
    """Register an app; returns its record and its secret (shown once: the server keeps only verifiers)."""
    details = {"role": role.value, "tenant": tenant, "client_key_pins": list(client_key_pins)}
    with store_of(config) as store, audited(store, Action.APP_ADD, name, details):
        try:
            return create_app(store, name, client_key_pins=client_key_pins, role=role.value, tenant=tenant)
        except AppError as exc:
            raise AdminError(str(exc)) from None


def add_apps_in_bulk(config: Any, prefix: str, count: int, seed: bytes, *, role: Role = Role.APP) -> int:
    """Register PREFIX0..PREFIX{count-1} with secrets derived from `seed` (a benchmarking aid); how many were new."""
    with store_of(config) as store, audited(store, Action.APP_ADD_BULK, prefix, {"count": count}) as details:
        try:
            details["created"] = created = add_bulk(store, prefix, count, seed, role=role.value)
            return created
        except (AppError, ValueError) as exc:
            raise AdminError(str(exc)) from None


def list_apps(config: Any) -> list[AppRecord]:
    """Every app, by id."""
    with store_of(config) as store:
        return list_app_records(store)


def revoke(config: Any, name: str) -> Poke:
    """Delete an app's credentials and end its live sessions; what the running server's processes said."""
    with store_of(config) as store, audited(store, Action.APP_REVOKE, name):
        try:
            result = revoke_in(store, config, name)
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        if result is None:
            raise AdminError(f"no app {name!r}")
        return result


def revoke_in(store: Store, config: Any, name: str) -> Poke | None:
    """`revoke` on a store already open (the HTTP API's process holds it), without the audit entry (the caller
    records it with its actor); None if there is no such app, ValueError for an id the store cannot hold."""
    before = orders_generation(store)
    if not revoke_app(store, name):
        return None
    return poke(config, after=before)


def retire_key(config: Any, name: str, pin: str) -> tuple[AppRecord, Poke]:
    """Remove client key `pin` from app `name` and end the live sessions that authenticated with it."""
    with store_of(config) as store, audited(store, Action.APP_RETIRE_KEY, name, {"pin": pin}):
        before = orders_generation(store)
        try:
            record = retire_client_key(store, name, pin)
        except (AppError, ValueError) as exc:
            raise AdminError(str(exc)) from None
    return record, poke(config, after=before)
