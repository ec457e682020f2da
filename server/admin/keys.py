"""The server's signing keys: generate (rotation), list, retire."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kefu.protocol.crypto import KeyType

from ..identity.keys import KeyFile, KeyRetireError, add_key, load_keys, retire_key
from ..storage.datadir import holder
from .errors import AdminError

__all__ = ["generate", "list_keys", "retire"]


def generate(config: Any, types: Sequence[KeyType]) -> list[KeyFile]:
    """A new key of each type; it signs from the server's next start (give clients its pin first)."""
    return [add_key(config.data_path, key_type) for key_type in types]


def list_keys(config: Any) -> list[tuple[KeyFile, bool]]:
    """Every key on disk, oldest first per type, and whether it is the one that signs."""
    return [(f, f is files[-1]) for files in load_keys(config.data_path).values() for f in files]


def retire(config: Any, pin: str) -> KeyFile:
    """Delete an old key once every client pins its successor; refused for a key that still signs."""
    running = holder(config.data_path)
    try:
        return retire_key(config.data_path, pin, server_started=running[1] if running else None)
    except KeyRetireError as exc:
        raise AdminError(str(exc)) from None
