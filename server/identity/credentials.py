"""Session credentials: short-lived app secrets issued at sign-in (spec section 16).

Theory of operation: a sign-in (`kefu.server.web.signin`) issues a fresh random 32-byte secret for an app (a staff
member's, or a visitor's). The server keeps only its verifiers, the StoredKeys of spec 5.5 for both suites' hashes, and
an expiry, as one row of this layer's table ``app_sessions`` (key: app id, 0x00, the credential's 16-byte id; value a
sealed `SessionRecord`), beside the app's own record in ``apps``. The handshake's APP_SECRET check (unchanged on the
wire) accepts the app's own secret or any unexpired session credential: `AppDirectory` gives each `AppCredential` a
`session_keys` reader that reads these rows from the store at every handshake (one LMDB cursor over a few rows), so a
credential issued by the sign-in of one gateway process works at once on every other, and one revoked stops working at
once for new handshakes. A session that authenticated with one carries its id ("session:" + 32 hex digits) where a
client key's pin would be: resumption tickets are then refused once the credential is revoked or expired (and are
issued no longer than it lives), and revoking it appends a session order (`OrderKind.SIGNED_OUT`, its id as the pin)
in the same transaction, which ends the live sessions it opened within ORDER_POLL_S in every process.

An app holds at most MAX_SESSION_KEYS credentials: a sign-in beyond that revokes the oldest. Expired rows are dropped
when the app signs in again and by `purge_expired` (the sign-in routes call it from time to time).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import lmdb

from kefu.protocol import crypto
from kefu.protocol.handshake import MAX_SESSION_KEYS, SESSION_KEY_PREFIX, AppCredential, SessionKey, stored_key
from kefu.protocol.wire import U64, Bytes8, Truncated, WireStruct, wire_struct

from ..storage.schema import id_key
from ..storage.sealing import Damaged
from ..storage.store import APP_ORDERS_KEY, Store
from .orders import OrderKind, noted

__all__ = [
    "BEARER_SCHEME",
    "SESSIONS_TABLE",
    "Issued",
    "SessionRecord",
    "check_secret",
    "drop_all",
    "issue",
    "parse_bearer",
    "purge_expired",
    "read_session_keys",
    "revoke",
    "revoke_all",
    "sessions_store",
]

SESSIONS_TABLE: Final = "app_sessions"
"""This layer's table of session credentials (registered by `kefu.server.wiring.open_store`)."""
SECRET_LEN: Final = 32
"""256-bit secrets, like the apps' own (`keys.APP_SECRET_LEN`)."""
ID_LEN: Final = 16
"""A credential's id: random, names it in session orders and tickets, says nothing of the secret."""
BEARER_SCHEME: Final = "Kefu-Session"
"""The HTTP API's Authorization scheme for a session credential: ``Kefu-Session <app_id>:<base64url secret>``."""
_HASHES: Final = ("sm3", "sha256")


@wire_struct
@dataclass(frozen=True, slots=True)
class SessionRecord(WireStruct):
    """A session credential as stored in ``app_sessions``. Later versions append fields."""

    created_ms: U64
    expires_ms: U64
    stored_key_sm3: Bytes8
    stored_key_sha256: Bytes8

    def encode(self) -> bytes:
        """The stored bytes."""
        data: bytes = self._wire_build(self)
        return data

    @classmethod
    def decode(cls, raw: bytes) -> SessionRecord:
        """Parse stored bytes; ValueError if they are not a session record."""
        try:
            record: SessionRecord = cls._wire_parse(raw, 0, len(raw))[0]
        except Truncated:
            raise ValueError("corrupt session credential record") from None
        return record

    def key(self, credential_id: bytes) -> SessionKey:
        """What the handshake checks."""
        stored = {"sm3": self.stored_key_sm3, "sha256": self.stored_key_sha256}
        return SessionKey(SESSION_KEY_PREFIX + credential_id.hex(), stored, self.expires_ms / 1000)


@dataclass(frozen=True, slots=True)
class Issued:
    """A new session credential: the secret (shown once, to the one who signed in) and when it expires."""

    app_id: str
    secret: bytes
    credential_id: str
    expires_at: float


def _prefix(app_id: str) -> bytes:
    key = id_key(app_id)
    if key is None:
        raise ValueError(f"invalid app id {app_id!r}")
    return key + b"\0"


def _rows(txn: lmdb.Transaction[bytes], store: Store, prefix: bytes) -> list[tuple[bytes, SessionRecord]]:
    """Every readable row of the app with key prefix `prefix`, as (credential id, record)."""
    rows: list[tuple[bytes, SessionRecord]] = []
    with txn.cursor(store.handle(SESSIONS_TABLE)) as cur:
        if not cur.set_range(prefix):
            return rows
        for key, value in cur:
            if not key.startswith(prefix):
                break
            try:
                record = SessionRecord.decode(store.values.open(SESSIONS_TABLE, key, value))
            except (Damaged, ValueError):  # damaged (reported by the store) or not a record: never authenticates
                continue
            rows.append((key[len(prefix) :], record))
    return rows


def _order(txn: lmdb.Transaction[bytes], store: Store, app_id: str, credential_id: str, now_ms: int) -> None:
    """Append a SIGNED_OUT order for the credential's live sessions ("": all the app's), in the caller's transaction."""
    meta = store.handle("meta")
    book = noted(txn.get(APP_ORDERS_KEY, db=meta), OrderKind.SIGNED_OUT, app_id, credential_id, now_ms=now_ms)
    txn.put(APP_ORDERS_KEY, book, db=meta)


def issue(store: Store, app_id: str, *, ttl_s: float, now: float) -> Issued:
    """A new session credential for `app_id`, valid `ttl_s` from `now`; the app's expired ones are dropped, and its
    oldest revoked (with an order that ends its sessions) if it already holds MAX_SESSION_KEYS."""
    prefix = _prefix(app_id)
    secret, credential_id = secrets.token_bytes(SECRET_LEN), secrets.token_bytes(ID_LEN)
    now_ms = int(now * 1000)
    stored = {h: stored_key(h, app_id, secret) for h in _HASHES}
    record = SessionRecord(now_ms, now_ms + int(ttl_s * 1000), stored["sm3"], stored["sha256"])
    key = prefix + credential_id
    sealed = store.values.seal(SESSIONS_TABLE, key, record.encode())

    def work(txn: lmdb.Transaction[bytes]) -> None:
        table = store.handle(SESSIONS_TABLE)
        live = []
        for cid, old in _rows(txn, store, prefix):
            if old.expires_ms <= now_ms:
                txn.delete(prefix + cid, db=table)
            else:
                live.append((old.created_ms, cid))
        for _, cid in sorted(live)[: max(0, len(live) - MAX_SESSION_KEYS + 1)]:
            txn.delete(prefix + cid, db=table)
            _order(txn, store, app_id, SESSION_KEY_PREFIX + cid.hex(), now_ms)
        txn.put(key, sealed, db=table)

    store.writing(work)
    return Issued(app_id, secret, SESSION_KEY_PREFIX + credential_id.hex(), record.expires_ms / 1000)


def sessions_store(store: object) -> Store | None:
    """`store` when it holds session credentials (a `Store` with SESSIONS_TABLE registered), else None."""
    return store if isinstance(store, Store) and SESSIONS_TABLE in dict(store.handles()) else None


def read_session_keys(store: Store, app_id: str) -> Sequence[SessionKey]:
    """The app's session credentials as the handshake checks them (expired ones included: it checks the expiry)."""
    key = id_key(app_id)
    if key is None:
        return ()
    prefix = key + b"\0"
    with store.reading() as txn:
        return [record.key(cid) for cid, record in _rows(txn, store, prefix)]


def _matches(record: SessionRecord, app_id: str, secret: bytes) -> bool:
    return hmac.compare_digest(stored_key("sha256", app_id, secret), record.stored_key_sha256)


def revoke(store: Store, app_id: str, secret: bytes, *, now: float) -> bool:
    """Revoke the session credential of `app_id` whose secret is `secret` (sign-out) and order the sessions it opened
    ended; False if there is none (never issued, expired and purged, or revoked already)."""
    try:
        prefix = _prefix(app_id)
    except ValueError:
        return False

    def work(txn: lmdb.Transaction[bytes]) -> bool:
        for cid, record in _rows(txn, store, prefix):
            if _matches(record, app_id, secret):
                txn.delete(prefix + cid, db=store.handle(SESSIONS_TABLE))
                _order(txn, store, app_id, SESSION_KEY_PREFIX + cid.hex(), int(now * 1000))
                return True
        return False

    return store.writing(work)


def revoke_all(store: Store, app_id: str, *, now: float) -> int:
    """Revoke every session credential of `app_id` and order all its live sessions ended; how many there were."""
    prefix = _prefix(app_id)

    def work(txn: lmdb.Transaction[bytes]) -> int:
        _order(txn, store, app_id, "", int(now * 1000))
        return _delete_all(txn, store, prefix)

    return store.writing(work)


def drop_all(store: Store, app_id: str) -> int:
    """Delete every session credential of `app_id` without an order (its app was revoked: that order ends its
    sessions); how many there were."""
    prefix = _prefix(app_id)

    return store.writing(lambda txn: _delete_all(txn, store, prefix))


def _delete_all(txn: lmdb.Transaction[bytes], store: Store, prefix: bytes) -> int:
    """Delete every row of the app with key prefix `prefix`; how many there were."""
    rows = _rows(txn, store, prefix)
    for cid, _ in rows:
        txn.delete(prefix + cid, db=store.handle(SESSIONS_TABLE))
    return len(rows)


def purge_expired(store: Store, *, now: float) -> set[str]:
    """Drop every expired session credential; the apps that were left with none."""
    now_ms = int(now * 1000)

    def work(txn: lmdb.Transaction[bytes]) -> set[str]:
        table = store.handle(SESSIONS_TABLE)
        expired, kept = [], set()
        with txn.cursor(table) as cur:
            for key, value in cur:
                app = key[: -ID_LEN - 1]  # the app id, NUL, the credential id (random: it may hold a NUL itself)
                try:
                    record = SessionRecord.decode(store.values.open(SESSIONS_TABLE, key, value))
                except (Damaged, ValueError):
                    expired.append((app, key))
                    continue
                if record.expires_ms <= now_ms:
                    expired.append((app, key))
                else:
                    kept.add(app)
        for _, key in expired:
            txn.delete(key, db=table)
        return {app.decode() for app, _ in expired if app not in kept}

    return store.writing(work)


def check_secret(apps: Mapping[str, AppCredential], app_id: str, secret: bytes, *, now: float) -> bool:
    """Whether `secret` is one of `app_id`'s unexpired, unrevoked session credentials (the HTTP API's
    ``Kefu-Session`` bearer). The app's own long-lived secret is never accepted here: a bearer travels whole with
    every request, and an app's own secret is for signing (spec 17.2), which sends no secret at all. Every verifier
    is compared in constant time (the own one too, its result unused, so the time does not tell which matched); an
    unknown app costs one comparison."""
    try:
        credential = apps.get(app_id)
    except ValueError:
        credential = None
    if credential is None or len(secret) != SECRET_LEN:
        return False
    mine = stored_key("sha256", app_id, secret)
    hmac.compare_digest(mine, credential.stored_keys.get("sha256", bytes(crypto.HASH_LEN)))
    valid = False
    for key in credential.session_keys():
        match = hmac.compare_digest(mine, key.stored_keys.get("sha256", bytes(crypto.HASH_LEN)))
        valid |= match and key.expires_at > now
    return valid


def parse_bearer(value: str) -> tuple[str, bytes] | None:
    """``Kefu-Session <app_id>:<base64url secret>`` -> (app_id, secret); None if it is not that."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != BEARER_SCHEME.lower():
        return None
    app_id, sep, text = rest.strip().rpartition(":")
    if not sep or not app_id:
        return None
    try:
        secret = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return (app_id, secret) if len(secret) == SECRET_LEN else None
