"""Sealed records at rest: every value the store and its log keep is AEAD-sealed under a data key, bound to its key.

Theory of operation
-------------------
A sealed value is::

    version u8 (1) | key_id u32 | nonce[12] | ciphertext | tag[16]          (33 bytes more than the value)

sealed with SM4-GCM or AES-256-GCM (the data key's cipher) under the data key `key_id`, with the associated data

    "kefu-seal/1" | version | key_id | table_len u8 | table | key

so that the tag both hides the value and proves that it is the value last sealed for that (table, key): a value
copied under another key, into another table, truncated or with any bit flipped fails to open (`Damaged`), and
so does a value sealed under a key this store no longer has. The same tag is how damage is found
(spec/PROTOCOL.md section 12).

Nonces are never drawn per record: each `Sealer` takes 8 random bytes (from the OS) when it first seals in a process
and counts the other 4, drawing a fresh prefix when the count wraps or the process forks. Two prefixes collide with
probability about n^2 / 2^65 for n sealers ever made under one key, so a key may seal far more than the 2^32 records
that random 96-bit nonces allow, with one system call per 2^32 seals rather than one per record.

Keys are handed in (`DataKey`): reading and writing key files is `kefu.server.identity.datakeys`'s part, so the
storage layer never reads a key file. The newest key (highest id) seals; every key given opens. Rotation: a new key
seals new records at once, and the records under older keys stay readable until they are sealed again
(`kefu.server.storage.reseal`) and the old key is retired.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from kefu.protocol.crypto import aead_ciphers, aead_open, aead_seal
from kefu.protocol.errors import CryptoError

__all__ = [
    "CIPHERS",
    "KEY_BYTES",
    "OVERHEAD",
    "Damaged",
    "DataKey",
    "Sealer",
    "key_id_of",
]

VERSION: Final = 1
CIPHERS: Final = ("sm4-gcm", "aes-gcm")
"""The ciphers a data key may name: SM4-GCM (the national suite, the default) or AES-256-GCM."""
KEY_BYTES: Final = {"sm4-gcm": 16, "aes-gcm": 32}
_HEADER: Final = struct.Struct("!BI")
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
OVERHEAD: Final = _HEADER.size + NONCE_BYTES + TAG_BYTES
_AD_LABEL: Final = b"kefu-seal/1"
_COUNTER_LIMIT: Final = 1 << 32
_PREFIX_BYTES: Final = NONCE_BYTES - 4
RELOAD_INTERVAL_S: Final = 1.0
"""How often, at most, a `Sealer` with a `reload` looks for keys it does not know (one file listing per second at
worst, however many values name an unknown key)."""


class Damaged(Exception):
    """A stored value that does not open: its (table, key) and why. Reported and skipped, never served."""

    def __init__(self, table: str, key: bytes, reason: str) -> None:
        super().__init__(f"{table}[{key.hex()}]: {reason}")
        self.table, self.key, self.reason = table, key, reason


@dataclass(frozen=True, slots=True)
class DataKey:
    """One data key: its id (1, 2, ...: the highest seals), cipher ("sm4-gcm" or "aes-gcm") and secret bytes."""

    key_id: int
    cipher: str
    secret: bytes = b""

    def __post_init__(self) -> None:
        if self.cipher not in KEY_BYTES:
            raise ValueError(f"data key {self.key_id}: unknown cipher {self.cipher!r} (one of {', '.join(CIPHERS)})")
        if len(self.secret) != KEY_BYTES[self.cipher]:
            raise ValueError(f"data key {self.key_id}: {self.cipher} keys are {KEY_BYTES[self.cipher]} bytes")
        if not 0 < self.key_id < 1 << 32:
            raise ValueError(f"data key id {self.key_id} out of range")

    def __repr__(self) -> str:  # never print the secret
        return f"DataKey({self.key_id}, {self.cipher!r})"


def key_id_of(sealed: bytes) -> int | None:
    """The id of the data key a sealed value names, or None if it is too short to be one."""
    if len(sealed) < OVERHEAD or sealed[0] != VERSION:
        return None
    return int(_HEADER.unpack_from(sealed)[1])


def _associated(header: bytes, table: str, key: bytes) -> bytes:
    name = table.encode()
    return b"".join((_AD_LABEL, header, bytes((len(name),)), name, key))


class Sealer:
    """Seals with the newest of `keys` and opens with any of them; thread-safe (a nonce is one `next` on a C
    iterator, which the interpreter lock makes atomic, paired with its prefix in one tuple)."""

    __slots__ = ("_ciphers", "_lock", "_nonces", "_reload", "_reloaded", "active", "key_ids")

    def __init__(self, keys: Iterable[DataKey], *, reload: Callable[[], Iterable[DataKey]] | None = None) -> None:
        """`reload`: the keys as they are now (the data directory's files). A value that names a key this sealer
        does not know makes it look once more (at most every `RELOAD_INTERVAL_S`) before calling the value damaged:
        another process (`kefu app add`, a restarted indexer) may seal under a key rotated in after this one
        started. Keys found that way only open; the active key changes only with a new `Sealer`."""
        keys = sorted(keys, key=lambda k: k.key_id)
        if not keys:
            raise ValueError("a Sealer needs at least one data key")
        if len({k.key_id for k in keys}) != len(keys):
            raise ValueError("data key ids must be distinct")
        self._ciphers = {k.key_id: aead_ciphers(k.cipher, k.secret) for k in keys}
        self.active = keys[-1].key_id
        """The id of the key that seals."""
        self.key_ids = frozenset(self._ciphers)
        """Every key id this sealer opens."""
        self._reload, self._reloaded = reload, 0.0
        self._lock = threading.Lock()
        self._nonces: tuple[int, bytes, Iterator[int]] = (0, b"", iter(()))  # (pid, prefix, counter)

    def _nonce(self) -> bytes:
        pid, prefix, counter = self._nonces
        if pid == os.getpid():
            n = next(counter, _COUNTER_LIMIT)
            if n < _COUNTER_LIMIT:
                return prefix + n.to_bytes(4, "big")
        with self._lock:  # a new process, or the count ran out: a fresh prefix (once, whoever gets here first)
            if self._nonces[2] is counter:
                self._nonces = (os.getpid(), os.urandom(_PREFIX_BYTES), iter(range(_COUNTER_LIMIT)))
        return self._nonce()

    def seal(self, table: str, key: bytes, value: bytes) -> bytes:
        """`value` sealed under the active key, bound to (`table`, `key`)."""
        header = _HEADER.pack(VERSION, self.active)
        nonce = self._nonce()
        aes, sm4 = self._ciphers[self.active]
        return header + nonce + aead_seal(aes, sm4, nonce, value, _associated(header, table, key))

    def open(self, table: str, key: bytes, sealed: bytes) -> bytes:
        """The value sealed for (`table`, `key`); raises `Damaged` if `sealed` does not open as exactly that."""
        if len(sealed) < OVERHEAD:
            raise Damaged(table, key, f"{len(sealed)} bytes, shorter than a sealed value")
        version, key_id = _HEADER.unpack_from(sealed)
        if version != VERSION:
            raise Damaged(table, key, f"unknown sealed-value version {version}")
        ciphers = self._ciphers.get(key_id) or self._look_again(key_id)
        if ciphers is None:
            raise Damaged(table, key, f"sealed under data key {key_id}, which this store does not have")
        header, nonce = sealed[: _HEADER.size], sealed[_HEADER.size : _HEADER.size + NONCE_BYTES]
        try:
            return aead_open(*ciphers, nonce, sealed[_HEADER.size + NONCE_BYTES :], _associated(header, table, key))
        except CryptoError:
            raise Damaged(table, key, "authentication tag does not match") from None

    def _look_again(self, key_id: int) -> Any:
        """The ciphers of `key_id` after reading the keys again, if `reload` was given and it is time to."""
        if self._reload is None:
            return None
        with self._lock:
            now = time.monotonic()
            if key_id not in self._ciphers and now - self._reloaded >= RELOAD_INTERVAL_S:
                self._reloaded = now
                found = {k.key_id: k for k in self._reload() if k.key_id not in self._ciphers}
                if found:
                    ciphers = dict(self._ciphers)
                    ciphers.update((i, aead_ciphers(k.cipher, k.secret)) for i, k in found.items())
                    self._ciphers, self.key_ids = ciphers, frozenset(ciphers)
            return self._ciphers.get(key_id)

    def needs_reseal(self, sealed: bytes) -> bool:
        """True if `sealed` names a key other than the active one (rotation reseals it)."""
        return key_id_of(sealed) != self.active
