"""App credentials: register, register in bulk (benchmarks), list, revoke."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..engine.identity import Role
from ..identity.bulk import add_bulk
from ..identity.keys import APP_CACHE_TTL_S, AppError, AppRecord, create_app, list_app_records, revoke_app
from ..storage.store import Store
from ..wiring import open_store
from .errors import AdminError

__all__ = ["APP_CACHE_TTL_S", "add_app", "add_apps_in_bulk", "list_apps", "revoke", "store_of"]


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
    with store_of(config) as store:
        try:
            return create_app(store, name, client_key_pins=client_key_pins, role=role.value, tenant=tenant)
        except AppError as exc:
            raise AdminError(str(exc)) from None


def add_apps_in_bulk(config: Any, prefix: str, count: int, seed: bytes, *, role: Role = Role.APP) -> int:
    """Register PREFIX0..PREFIX{count-1} with secrets derived from `seed` (a benchmarking aid); how many were new."""
    with store_of(config) as store:
        try:
            return add_bulk(store, prefix, count, seed, role=role.value)
        except (AppError, ValueError) as exc:
            raise AdminError(str(exc)) from None


def list_apps(config: Any) -> list[AppRecord]:
    """Every app, by id."""
    with store_of(config) as store:
        return list_app_records(store)


def revoke(config: Any, name: str) -> None:
    """Delete an app's credentials; a running server refuses new handshakes for it within APP_CACHE_TTL_S."""
    with store_of(config) as store:
        if not revoke_app(store, name):
            raise AdminError(f"no app {name!r}")
