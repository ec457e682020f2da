"""Staff accounts: agents and supervisors who sign in with a password (spec section 16).

Theory of operation: a staff account is a name (= the app id its sessions authenticate as: an app record with role
agent or supervisor and a tenant, in ``apps``), a password hash and an enabled flag, kept as one sealed `StaffRecord`
in this layer's table ``staff`` (key: the name). The hash is scrypt (RFC 7914, `hashlib.scrypt`) with a random 16-byte
salt per account; its parameters are stored with it, so that raising DEFAULT_PARAMS later re-hashes each password at
its next sign-in (`needs_rehash`). One scrypt costs about 32 MiB and 0.1 s of CPU: callers run `authenticate` off the
event loop (`run_in_executor`), a bounded number at a time. An unknown name costs the same scrypt (against a dummy
account) as a known one, and fails alike, so the time of a refusal does not say whether the name exists.

A successful sign-in is turned into a session credential by `kefu.server.identity.credentials` (the password is never
a protocol secret). This module only registers its tables; `wiring.open_store` opens them with the store.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass, replace
from typing import Final

import lmdb

from kefu.protocol.wire import U8, U32, U64, Bytes8, Str8, Truncated, WireStruct, wire_struct

from ..storage.schema import id_key
from ..storage.sealing import Damaged
from ..storage.store import Store
from .credentials import SESSIONS_TABLE

__all__ = [
    "DEFAULT_PARAMS",
    "STAFF_TABLE",
    "TABLES",
    "ScryptParams",
    "StaffError",
    "StaffRecord",
    "add_staff",
    "authenticate",
    "get_staff",
    "hash_password",
    "list_staff",
    "remove_staff",
    "set_enabled",
    "set_password",
]

STAFF_TABLE: Final = "staff"
TABLES: Final = (STAFF_TABLE, SESSIONS_TABLE)
"""The tables of the identity layer the store registers (`Store(tables=...)`)."""
KDF: Final = "scrypt"
SALT_LEN: Final = 16
HASH_LEN: Final = 32
MIN_PASSWORD_CHARS: Final = 10
"""Shorter passwords are refused when set (NIST SP 800-63B asks for 8 at least; banks ask for more)."""
MAX_PASSWORD_BYTES: Final = 1024
"""Longer ones are refused: scrypt's cost does not grow with it, but a request body must stay small."""


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt's cost: N = 2**log2_n, r, p (memory about 128 * N * r bytes)."""

    log2_n: int
    r: int
    p: int

    @property
    def maxmem(self) -> int:
        """hashlib's memory cap for these parameters (its default, 32 MiB, is exactly too small for N=2**15, r=8)."""
        return 129 * (1 << self.log2_n) * self.r * self.p + (1 << 20)


DEFAULT_PARAMS: Final = ScryptParams(15, 8, 1)
"""N=2**15, r=8, p=1: OWASP's scrypt minimum (32 MiB, about 0.1 s on this machine's cores)."""


@wire_struct
@dataclass(frozen=True, slots=True)
class StaffRecord(WireStruct):
    """A staff account as stored in ``staff`` (under its name). Later versions append fields."""

    created_ms: U64
    enabled: U8
    kdf: Str8
    log2_n: U8
    r: U32
    p: U32
    salt: Bytes8
    password_hash: Bytes8

    @property
    def params(self) -> ScryptParams:
        """The parameters its hash was made with."""
        return ScryptParams(self.log2_n, self.r, self.p)

    def needs_rehash(self) -> bool:
        """Whether the hash was made with weaker parameters than DEFAULT_PARAMS."""
        p, d = self.params, DEFAULT_PARAMS
        return (p.log2_n, p.r, p.p) < (d.log2_n, d.r, d.p)

    def encode(self) -> bytes:
        """The stored bytes."""
        data: bytes = self._wire_build(self)
        return data

    @classmethod
    def decode(cls, raw: bytes) -> StaffRecord:
        """Parse stored bytes; ValueError if they are not a staff record."""
        try:
            record: StaffRecord = cls._wire_parse(raw, 0, len(raw))[0]
        except Truncated:
            raise ValueError("corrupt staff record") from None
        return record


class StaffError(ValueError):
    """A staff operation was refused: no such account, it exists, a password that is too short."""


def _scrypt(password: str, salt: bytes, params: ScryptParams) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=1 << params.log2_n, r=params.r, p=params.p, maxmem=params.maxmem, dklen=HASH_LEN
    )


def check_password_rules(password: str) -> None:
    """StaffError unless `password` is acceptable as a new password."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise StaffError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode()) > MAX_PASSWORD_BYTES:
        raise StaffError(f"the password must have at most {MAX_PASSWORD_BYTES} bytes")


def hash_password(password: str, *, now_ms: int, params: ScryptParams = DEFAULT_PARAMS) -> StaffRecord:
    """A new enabled account's record for `password` (slow: one scrypt; run it off the event loop)."""
    salt = os.urandom(SALT_LEN)
    digest = _scrypt(password, salt, params)
    return StaffRecord(now_ms, 1, KDF, params.log2_n, params.r, params.p, salt, digest)


_DUMMY: Final = StaffRecord(0, 0, KDF, DEFAULT_PARAMS.log2_n, DEFAULT_PARAMS.r, DEFAULT_PARAMS.p,
                            os.urandom(SALT_LEN), os.urandom(HASH_LEN))  # fmt: skip
"""What an unknown name's password is checked against: the same cost, and it never matches (a random hash)."""


def _key(name: str) -> bytes:
    key = id_key(name)
    if key is None:
        raise StaffError(f"invalid staff name {name!r}")
    return key


def get_staff(store: Store, name: str) -> StaffRecord | None:
    """The account `name`, or None (also when its record does not open: it then cannot sign in)."""
    key = id_key(name)
    raw = store.get_record(STAFF_TABLE, key) if key is not None else None
    if raw is None:
        return None
    try:
        return StaffRecord.decode(raw)
    except ValueError:
        return None


def _put(store: Store, name: str, record: StaffRecord, *, new: bool) -> None:
    key = _key(name)
    sealed = store.values.seal(STAFF_TABLE, key, record.encode())

    def work(txn: lmdb.Transaction[bytes]) -> None:
        table = store.handle(STAFF_TABLE)
        exists = txn.get(key, db=table) is not None
        if new and exists:
            raise StaffError(f"staff account {name!r} already exists (kefu staff passwd changes its password)")
        if not new and not exists:
            raise StaffError(f"no staff account {name!r}")
        txn.put(key, sealed, db=table)

    store.writing(work)


def add_staff(store: Store, name: str, password: str, *, now_ms: int) -> StaffRecord:
    """Create the account `name` (slow: one scrypt); StaffError if it exists or the password is refused."""
    check_password_rules(password)
    _key(name)
    record = hash_password(password, now_ms=now_ms)
    _put(store, name, record, new=True)
    return record


def set_password(store: Store, name: str, password: str) -> StaffRecord:
    """Give `name` a new password (slow: one scrypt); StaffError if there is no such account."""
    check_password_rules(password)
    old = get_staff(store, name)
    if old is None:
        raise StaffError(f"no staff account {name!r}")
    record = replace(hash_password(password, now_ms=old.created_ms), enabled=old.enabled)
    _put(store, name, record, new=False)
    return record


def set_enabled(store: Store, name: str, enabled: bool) -> StaffRecord:
    """Enable or disable `name` (a disabled account cannot sign in); StaffError if there is no such account."""
    old = get_staff(store, name)
    if old is None:
        raise StaffError(f"no staff account {name!r}")
    record = replace(old, enabled=int(enabled))
    _put(store, name, record, new=False)
    return record


def remove_staff(store: Store, name: str) -> bool:
    """Delete the account `name`; False if there was none."""
    key = _key(name)
    return store.writing(lambda txn: txn.delete(key, db=store.handle(STAFF_TABLE)))


def list_staff(store: Store) -> list[tuple[str, StaffRecord]]:
    """Every account, by name."""
    out = []
    for key, raw in store.scan(STAFF_TABLE):
        try:
            out.append((key.decode(), StaffRecord.decode(raw)))
        except (UnicodeDecodeError, ValueError, Damaged):
            continue
    return out


def authenticate(store: Store, name: str, password: str) -> bool:
    """Whether `name` is an enabled account whose password is `password`. Slow (one scrypt, whatever the name):
    call it off the event loop. A hash made with weaker parameters than DEFAULT_PARAMS is replaced on success."""
    record = get_staff(store, name) if len(password.encode()) <= MAX_PASSWORD_BYTES else None
    checked = record if record is not None and record.kdf == KDF else _DUMMY
    try:
        digest = _scrypt(password[:MAX_PASSWORD_BYTES], checked.salt, checked.params)
    except (ValueError, MemoryError):  # parameters this host cannot afford: the account cannot sign in
        return False
    valid = hmac.compare_digest(digest, checked.password_hash)
    if not (valid and checked is record and record.enabled):
        return False
    if record.needs_rehash():
        _put(store, name, replace(hash_password(password, now_ms=record.created_ms), enabled=record.enabled), new=False)
    return True
