"""`kefu app add-bulk`: deterministic secrets that the server's verifiers accept, idempotent re-runs."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

pytest.importorskip("lmdb")

from kefu.protocol.handshake import AppCredential
from kefu.server.identity.bulk import add_bulk, bulk_app_id, derive_secret
from kefu.server.identity.keys import AppRecord
from kefu.server.storage.store import Store


def test_secret_is_hmac_of_the_id() -> None:
    assert derive_secret(b"seed", "bench7") == hmac.new(b"seed", b"bench7", hashlib.sha256).digest()
    assert bulk_app_id("bench", 7) == "bench7"


def test_add_bulk_stores_verifiers_of_the_derived_secrets(tmp_path: Path) -> None:
    store = Store(tmp_path / "wal")
    try:
        assert add_bulk(store, "u", 5, b"seed") == 5
        assert add_bulk(store, "u", 6, b"seed") == 1  # existing apps are left alone
        assert store.list_apps() == sorted(f"u{i}" for i in range(6))
        raw = store.get_app("u3")
        assert raw is not None
        expected = AppCredential.from_secret("u3", derive_secret(b"seed", "u3"))
        assert AppRecord.decode(raw).credential().stored_keys == expected.stored_keys
        with pytest.raises(ValueError, match="seed"):
            add_bulk(store, "v", 1, b"")
    finally:
        store.close()
