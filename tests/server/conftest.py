"""Fixtures shared by the server's unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.server.storage.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """An empty store on disk under tmp_path/db, closed after the test."""
    s = Store(tmp_path / "db")
    yield s
    s.close()
