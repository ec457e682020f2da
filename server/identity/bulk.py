"""Apps in bulk with derivable secrets: a benchmarking aid (`kefu app add-bulk`), never for real credentials.

A load test needs thousands of distinct users, and `kefu app add` prints one random secret per run. Here each
app's secret is HMAC-SHA256(seed, app_id), so the load harness derives every secret from the seed it passed
instead of collecting them. Anyone who knows the seed can log in as every one of these apps: use bulk apps
only on a benchmark server, and revoke them (or throw the data directory away) afterwards.
"""

from __future__ import annotations

import hashlib
import hmac

from .keys import AppStore, create_app

__all__ = ["MAX_BULK_APPS", "add_bulk", "bulk_app_id", "derive_secret"]

MAX_BULK_APPS = 1_000_000
"""Bound on one call: each app is one durable LMDB write (about 0.3 ms), so a million takes minutes."""


def derive_secret(seed: bytes, app_id: str) -> bytes:
    """The 32-byte secret of bulk app `app_id`: HMAC-SHA256(seed, app_id)."""
    return hmac.new(seed, app_id.encode(), hashlib.sha256).digest()


def bulk_app_id(prefix: str, index: int) -> str:
    """The id of the `index`-th bulk app: PREFIX followed by the decimal index (bench0, bench1, ...)."""
    return f"{prefix}{index}"


def add_bulk(store: AppStore, prefix: str, count: int, seed: bytes, *, role: str = "app") -> int:
    """Register PREFIX0 .. PREFIX{count-1} with derived secrets; returns how many were new.

    Apps that already exist are left alone, so a benchmark can run this again on the same data directory;
    a running server finds the new apps at once (only misses are looked up, and misses are not cached).
    """
    if not 0 <= count <= MAX_BULK_APPS:
        raise ValueError(f"count must be between 0 and {MAX_BULK_APPS}")
    if not seed:
        raise ValueError("the secret seed must not be empty")
    created = 0
    for index in range(count):
        app_id = bulk_app_id(prefix, index)
        if store.get_app(app_id) is None:
            create_app(store, app_id, role=role, secret=derive_secret(seed, app_id))
            created += 1
    return created
