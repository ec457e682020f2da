"""Fixtures shared by the server's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An empty store on disk under tmp_path/db, its values sealed under a data key in tmp_path/keys as the server's
    are (SM4-GCM), closed after the test."""
    s = Store(tmp_path / "db", sealer=sealer_of(tmp_path, "sm4-gcm"))
    yield s
    s.close()
