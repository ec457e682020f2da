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

A cursor (a seq, whose user and conversation are its key) needs integrity, not secrecy, so it is *tagged* rather
than sealed (about 1.6 us rather than 4.9 with SM4: the national cipher has no hardware help here)::

    version u8 (2) | key_id u32 | value | tag[16]                            (21 bytes more than the value)

where tag is the first 16 bytes of HMAC-SM3 (HMAC-SHA256 for an AES data key) under a key derived from the data key
(HMAC of "kefu-tag/1" under it), over the same associated data and then the value.

An idempotency entry (the conversation, seq, server_msg_id and time of the message a sender's client_msg_id was
stored as, written once per message) is an *index* entry: every field of it repeats a record that is authenticated
elsewhere, so it carries no tag of its own and no key id::

    version u8 (3) | value                                                   (1 byte more than the value)

Its reader checks it against those records instead (`kefu.server.storage.index.TxnSource.idempotency`, and
`kefu verify`): the sealed message it names must be that sender's message with that client_msg_id and
server_msg_id, and its ``idem_expiry`` key must carry its time; if retention has deleted the message, the
conversation must exist and reach that seq. A tag would cost a second MAC per durable message (about 2.7 us of
HMAC-SM3, a third of what sealing costs each message) to prove what these reads prove at the rare idempotency hit.
Entries written tagged (version 2) by earlier releases still open with their tag checked; a reseal rewrites them
in this form.

Which form a table takes is fixed (`TAGGED_TABLES`, `INDEXED_TABLES`); a value of another form where one belongs
does not open.

Nonces are never drawn per record: each `Sealer` takes 8 random bytes (from the OS) when it first seals in a process and
counts the other 4, drawing a fresh prefix when the count wraps or the process forks (`os.register_at_fork`). Two
prefixes collide with probability about n^2 / 2^65 for n sealers ever made under one key, so a key may seal far more
than the 2^32 records that random 96-bit nonces allow, with one system call per 2^32 seals rather than one per record.

Keys are handed in (`DataKey`): reading and writing key files is `kefu.server.identity.datakeys`'s part, so the
storage layer never reads a key file. The newest key (highest id) seals; every key given opens. Rotation: a new key
seals new records at once, and the records under older keys stay readable until they are sealed again
(`kefu.server.storage.reseal`) and the old key is retired.
"""

from __future__ import annotations

import functools
import hmac
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from kefu.protocol.crypto import aead_ciphers, aead_open, aead_seal, hmac_digest
from kefu.protocol.errors import CryptoError

__all__ = [
    "CIPHERS",
    "INDEXED_TABLES",
    "KEY_BYTES",
    "OVERHEAD",
    "TAGGED_TABLES",
    "Damaged",
    "DataKey",
    "Sealer",
    "index_entry",
    "key_id_of",
]

VERSION: Final = 1
TAGGED: Final = 2
"""The version byte of a tagged (not encrypted) value."""
INDEXED: Final = 3
"""The version byte of an index entry: neither encrypted nor tagged, checked against the records it repeats."""
TAGGED_TABLES: Final = frozenset({"cursors"})
"""The tables whose values are tagged, not sealed (see the module docstring)."""
INDEXED_TABLES: Final = frozenset({"idempotency"})
"""The tables whose values are index entries (see the module docstring); entries of them tagged by earlier releases
(version 2) still open, their tags checked."""
_INDEXED_HEADER: Final = bytes((INDEXED,))
_TAG_HASH: Final = {"sm4-gcm": "sm3", "aes-gcm": "sha256"}
_TAG_KEY_LABEL: Final = b"kefu-tag/1"
CIPHERS: Final = ("sm4-gcm", "aes-gcm")
"""The ciphers a data key may name: SM4-GCM (the national suite, the default) or AES-256-GCM."""
KEY_BYTES: Final = {"sm4-gcm": 16, "aes-gcm": 32}
_HEADER: Final = struct.Struct("!BI")
NONCE_BYTES: Final = 12
TAG_BYTES: Final = 16
OVERHEAD: Final = _HEADER.size + NONCE_BYTES + TAG_BYTES
_AD_LABEL: Final = b"kefu-seal/1"
TAGGED_OVERHEAD: Final = _HEADER.size + TAG_BYTES
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
    if len(sealed) < (OVERHEAD if sealed[:1] == b"\x01" else TAGGED_OVERHEAD) or sealed[0] not in (VERSION, TAGGED):
        return None
    return int(_HEADER.unpack_from(sealed)[1])


def index_entry(table: str, sealed: bytes) -> bytes | None:
    """The value of an index entry of `table` (`INDEXED_TABLES`: it needs no key to read), or None if `sealed` is
    not one."""
    return sealed[1:] if table in INDEXED_TABLES and sealed[:1] == _INDEXED_HEADER else None


def _associated(header: bytes, table: str, key: bytes) -> bytes:
    return _ad_prefix(header, table) + key


@functools.lru_cache(maxsize=1024)
def _ad_prefix(header: bytes, table: str) -> bytes:
    """The associated data before the key: a few (header, table) pairs per store, so made once each (half the cost
    of building it per value, which is about 1 us)."""
    name = table.encode()
    return b"".join((_AD_LABEL, header, bytes((len(name),)), name))


class _Key:
    """What one data key seals, opens and tags with."""

    __slots__ = ("aes", "sm4", "tag_hash", "tag_key")

    def __init__(self, key: DataKey) -> None:
        self.aes, self.sm4 = aead_ciphers(key.cipher, key.secret)
        self.tag_hash = _TAG_HASH[key.cipher]
        self.tag_key = hmac_digest(self.tag_hash, key.secret, _TAG_KEY_LABEL)


_forks = 0
"""Counts forks in this process's ancestry: a child must not go on with its parent's nonce prefix."""


def _forked() -> None:
    global _forks  # noqa: PLW0603 - one counter per process, bumped in the child after a fork
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class Sealer:
    """Seals (or tags, `TAGGED_TABLES`) with the newest of `keys` and opens with any of them; thread-safe (a nonce
    is one `next` on a C iterator, which the interpreter lock makes atomic, paired with its prefix in one tuple)."""

    __slots__ = ("_keys", "_lock", "_nonces", "_reload", "_reloaded", "active", "key_ids")

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
        self._keys = {k.key_id: _Key(k) for k in keys}
        self.active = keys[-1].key_id
        """The id of the key that seals."""
        self.key_ids = frozenset(self._keys)
        """Every key id this sealer opens."""
        self._reload, self._reloaded = reload, 0.0
        self._lock = threading.Lock()
        self._nonces: tuple[int, bytes, Iterator[int]] = (-1, b"", iter(()))  # (forks, prefix, counter)

    def _nonce(self) -> bytes:
        forks, prefix, counter = self._nonces
        if forks == _forks:
            n = next(counter, _COUNTER_LIMIT)
            if n < _COUNTER_LIMIT:
                return prefix + n.to_bytes(4, "big")
        with self._lock:  # a new process, or the count ran out: a fresh prefix (once, whoever gets here first)
            if self._nonces[2] is counter:
                self._nonces = (_forks, os.urandom(_PREFIX_BYTES), iter(range(_COUNTER_LIMIT)))
        return self._nonce()

    def seal(self, table: str, key: bytes, value: bytes) -> bytes:
        """`value` sealed under the active key, bound to (`table`, `key`); tagged instead in `TAGGED_TABLES`, an index
        entry in `INDEXED_TABLES`."""
        if table in INDEXED_TABLES:
            return _INDEXED_HEADER + value
        k = self._keys[self.active]
        if table in TAGGED_TABLES:
            header = _HEADER.pack(TAGGED, self.active)
            mac = hmac_digest(k.tag_hash, k.tag_key, _associated(header, table, key) + value)
            return header + value + mac[:TAG_BYTES]
        header = _HEADER.pack(VERSION, self.active)
        nonce = self._nonce()
        return header + nonce + aead_seal(k.aes, k.sm4, nonce, value, _associated(header, table, key))

    def open(self, table: str, key: bytes, sealed: bytes) -> bytes:
        """The value sealed (or tagged) for (`table`, `key`); raises `Damaged` if `sealed` is not exactly that. An
        index entry (`INDEXED_TABLES`) comes back as it is stored: its reader checks it against what it repeats."""
        entry = index_entry(table, sealed)
        if entry is not None:
            return entry
        tagged = table in TAGGED_TABLES or table in INDEXED_TABLES
        if len(sealed) < (TAGGED_OVERHEAD if tagged else OVERHEAD):
            raise Damaged(table, key, f"{len(sealed)} bytes, shorter than a {'tagged' if tagged else 'sealed'} value")
        version, key_id = _HEADER.unpack_from(sealed)
        if version != (TAGGED if tagged else VERSION):
            raise Damaged(table, key, f"value version {version}, not the {'tagged' if tagged else 'sealed'} form")
        k = self._keys.get(key_id) or self._look_again(key_id)
        if k is None:
            raise Damaged(table, key, f"sealed under data key {key_id}, which this store does not have")
        header = sealed[: _HEADER.size]
        if tagged:
            value, tag = sealed[_HEADER.size : -TAG_BYTES], sealed[-TAG_BYTES:]
            mac = hmac_digest(k.tag_hash, k.tag_key, _associated(header, table, key) + value)
            if not hmac.compare_digest(mac[:TAG_BYTES], tag):
                raise Damaged(table, key, "authentication tag does not match")
            return value
        nonce = sealed[_HEADER.size : _HEADER.size + NONCE_BYTES]
        try:
            return aead_open(k.aes, k.sm4, nonce, sealed[_HEADER.size + NONCE_BYTES :], _associated(header, table, key))
        except CryptoError:
            raise Damaged(table, key, "authentication tag does not match") from None

    def opens(self, table: str, key: bytes, sealed: bytes) -> bool:
        """Whether `sealed` opens as the value of (`table`, `key`) under one of the keys (an index entry, which names
        no key, does not: it proves nothing about them)."""
        if sealed[:1] == _INDEXED_HEADER:
            return False
        try:
            self.open(table, key, sealed)
        except Damaged:
            return False
        return True

    def _look_again(self, key_id: int) -> _Key | None:
        """`key_id`'s key after reading the keys again, if `reload` was given and it is time to."""
        if self._reload is None:
            return None
        with self._lock:
            now = time.monotonic()
            if key_id not in self._keys and now - self._reloaded >= RELOAD_INTERVAL_S:
                self._reloaded = now
                found = {k.key_id: _Key(k) for k in self._reload() if k.key_id not in self._keys}
                if found:
                    keys = {**self._keys, **found}
                    self._keys, self.key_ids = keys, frozenset(keys)
            return self._keys.get(key_id)

    def needs_reseal(self, sealed: bytes) -> bool:
        """True if `sealed` names a key other than the active one (rotation reseals it); an index entry names none."""
        return sealed[:1] != _INDEXED_HEADER and key_id_of(sealed) != self.active
