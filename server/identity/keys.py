"""The server's long-term keys, its ticket keys, and app credentials.

Theory of operation — files under data_dir/keys (directory 0700, every file 0600, written to a temporary
file, fsync'd, then linked into place so that a key is never overwritten nor half-written)::

    sm2-1.key, sm2-2.key, ...          raw 32-byte SM2 private keys; the highest number signs
    ed25519-1.key, ...                 raw 32-byte Ed25519 private keys; likewise
    ticket.key, ticket-previous.key    ticket-sealing secrets, rotated at every server start
    dev-app.secret                     the development app's secret (first start only)

Rotation: `kefu keygen` adds key n+1 and prints its pin. Clients must pin it before the server restarts,
because from then on it signs; every key on disk stays pinned (`Keyring.pins`) until its file is removed.
Once every client pins the new key, `kefu key retire PIN` (`retire_key`) deletes the old one and rewrites
pins.txt. It refuses the newest key of a type (it signs), and a key that a running server started before the
newest existed still signs with (restart the server first).

Apps live in the store's `apps` database as `AppRecord`s: verifiers derived from the secret (one per suite
hash, as `AppCredential.from_secret` computes them), never the secret itself, which is shown once.
`AppDirectory` is the `Mapping[str, AppCredential]` the handshake consults, with a bounded cache that
`invalidate()` clears (on SIGHUP) and `forget()` trims (when a session order names an app). Revoking an app, retiring
one of its client keys and ending its sessions leave a session order for the running server (`.orders`).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Annotated, Protocol, TextIO

from kefu.protocol.crypto import KeyType, SigningKey
from kefu.protocol.handshake import AppCredential, SessionKey
from kefu.protocol.tickets import TicketKeys
from kefu.protocol.wire import U64, Bytes8, Seq, Str8, Truncated, WireStruct, wire_struct

from .. import log
from ..engine.identity import NOBODY, ROLES, Profile, Role
from ..storage.files import disk_full, fsync_path
from ..storage.modes import private_dir
from .credentials import drop_all, read_session_keys, sessions_store
from .orders import OrderKind, noted

__all__ = [
    "DEV_APP_ID",
    "AppDirectory",
    "AppError",
    "AppRecord",
    "AppStore",
    "KeyFile",
    "KeyRetireError",
    "Keyring",
    "add_key",
    "create_app",
    "decode_secret",
    "encode_secret",
    "end_sessions",
    "ensure_dev_app",
    "list_app_records",
    "load",
    "load_keys",
    "load_or_create",
    "pins_of",
    "retire_client_key",
    "retire_key",
    "revoke_app",
    "write_pins",
]

KEYS_DIR = "keys"
KEY_NAMES = {KeyType.SM2: "sm2", KeyType.ED25519: "ed25519"}
_KEY_FILE = re.compile(r"^(sm2|ed25519)-([1-9][0-9]{0,8})\.key$")
PRIVATE_KEY_LEN = 32
TICKET_FILE, PREVIOUS_TICKET_FILE = "ticket.key", "ticket-previous.key"
PINS_FILE = "pins.txt"
TICKET_SECRET_LEN = 32
DEV_APP_ID = "dev"
DEV_SECRET_FILE = "dev-app.secret"  # noqa: S105 - a file name, not a password
APP_SECRET_LEN = 32
"""256-bit app secrets: the verifiers are hashes of HKDF outputs, so the secret alone carries the strength."""
APP_CACHE_SIZE = 4096
"""Apps kept decoded in memory; past it the oldest entry is dropped (a lookup is then one LMDB read)."""
APP_CACHE_TTL_S = 30.0
"""How long a cached app is trusted: a bound on changes made to the store without a session order."""
_PIN = re.compile(r"^(sm2|ed25519):[0-9a-f]{64}$")

DEV_WARNING = (
    "DEVELOPMENT {what} generated on this machine: fine for a trial, not for production. "
    "In production, generate keys under your key-management procedure and give clients the pins out of band."
)
DEV_APP_WARNING = (
    "DEVELOPMENT app 'dev' created because the store has no app: fine for a trial, not for production. In "
    "production, register apps with `kefu app add` before the first start (then none is created); once real apps "
    "exist, `kefu app revoke dev` and delete its secret's file."
)


# --- files ----------------------------------------------------------------------------------------------


def write_private_file(path: Path, data: bytes, *, replace: bool = False) -> None:
    """Write `data` to `path` with mode 0600, durably. Without `replace`, FileExistsError if it exists."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic and never clobbers: two concurrent keygens cannot lose a key
    finally:
        tmp.unlink(missing_ok=True)
    fsync_path(path.parent)


def keys_dir(data_dir: Path) -> Path:
    """data_dir/keys, created 0700 when missing."""
    path = Path(data_dir) / KEYS_DIR
    if not path.is_dir():
        private_dir(path)
    elif path.stat().st_mode & 0o077:
        log.warning("keys.dir_permissions", path=str(path), mode=oct(path.stat().st_mode & 0o777), want="0700")
    return path


# --- long-term signing keys -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyFile:
    """One long-term key on disk."""

    key_type: KeyType
    index: int
    path: Path
    key: SigningKey

    @property
    def pin(self) -> str:
        """The fingerprint clients pin."""
        return self.key.verify_key.fingerprint()


def _read_key(path: Path, key_type: KeyType, index: int) -> KeyFile:
    if path.stat().st_mode & 0o077:
        log.warning("keys.file_permissions", path=str(path), mode=oct(path.stat().st_mode & 0o777), want="0600")
    raw = path.read_bytes()
    if len(raw) != PRIVATE_KEY_LEN:
        raise ValueError(f"{path}: expected a {PRIVATE_KEY_LEN}-byte private key, found {len(raw)} bytes")
    return KeyFile(key_type, index, path, SigningKey(key_type, raw))


def load_keys(data_dir: Path) -> dict[KeyType, list[KeyFile]]:
    """Every key in data_dir/keys, per type, oldest first (the last one signs)."""
    found: dict[KeyType, list[KeyFile]] = {t: [] for t in KEY_NAMES}
    directory = Path(data_dir) / KEYS_DIR
    if not directory.is_dir():
        return found
    by_name = {name: t for t, name in KEY_NAMES.items()}
    for path in directory.iterdir():
        m = _KEY_FILE.match(path.name)
        if m:
            key_type = by_name[m.group(1)]
            found[key_type].append(_read_key(path, key_type, int(m.group(2))))
    for files in found.values():
        files.sort(key=lambda f: f.index)
    return found


def add_key(data_dir: Path, key_type: KeyType) -> KeyFile:
    """Generate a key of `key_type` as the next numbered file; from the next start it is the one that signs."""
    directory = keys_dir(data_dir)
    existing = load_keys(data_dir)[key_type]
    index = existing[-1].index + 1 if existing else 1
    key = SigningKey.generate(key_type)
    while True:
        path = directory / f"{KEY_NAMES[key_type]}-{index}.key"
        try:
            write_private_file(path, key.private_bytes())
        except FileExistsError:
            index += 1
            continue
        return KeyFile(key_type, index, path, key)


class KeyRetireError(ValueError):
    """`kefu key retire` was refused: no such key, or the key still signs."""


def pins_of(keys: Mapping[KeyType, Sequence[KeyFile]]) -> list[str]:
    """Every key's pin, newest first per type."""
    return [f.pin for files in keys.values() for f in reversed(files)]


def write_pins(data_dir: Path) -> Path:
    """Rewrite keys/pins.txt (public: what clients pin) from the keys on disk, unless it already says that."""
    path = keys_dir(data_dir) / PINS_FILE
    text = "".join(f"{pin}\n" for pin in pins_of(load_keys(data_dir))).encode()
    try:
        if path.read_bytes() == text:
            return path
    except FileNotFoundError:
        pass
    write_private_file(path, text, replace=True)
    return path


def retire_key(data_dir: Path, pin: str, *, server_started: float | None = None) -> KeyFile:
    """Delete the key with this pin after a rotation's overlap, and rewrite pins.txt; returns what was removed.

    Refused (KeyRetireError) for the newest key of its type, which signs, and while a server that started at
    `server_started` (the data directory lock's holder) predates that newest key: it still signs with an older.
    """
    for files in load_keys(data_dir).values():
        for f in files:
            if f.pin != pin:
                continue
            newest = files[-1]
            if f is newest:
                why = "add its successor first (kefu keygen), restart, then retire this one"
                raise KeyRetireError(f"{f.path.name} is the newest {KEY_NAMES[f.key_type]} key and signs: {why}")
            if server_started is not None and newest.path.stat().st_mtime > server_started:
                why = "still signs with an older key: restart it first (systemctl restart kefu)"
                raise KeyRetireError(f"the running server started before {newest.path.name} was added and {why}")
            f.path.unlink()
            fsync_path(f.path.parent)
            write_pins(data_dir)
            log.event("keys.retired", pin=pin, file=f.path.name)
            return f
    raise KeyRetireError(f"no server key with pin {pin!r} in {Path(data_dir) / KEYS_DIR}")


def _rotate_ticket_keys(directory: Path) -> TicketKeys:
    """A new current ticket secret; the old current becomes previous, so tickets survive one restart.

    On a full disk (`disk_full`) the keys are not rotated: the ones on disk stay in use, read back as they are (the
    gateway processes read the same files), and a warning says so. The current key then seals tickets for one more
    run: tickets still expire with their lifetime, but a copy of ticket.key taken before this start keeps opening
    new tickets until the next rotation, one restart longer than usual. Without a ticket key on disk at all (a first
    start) the error propagates: there is nothing to keep."""
    current = directory / TICKET_FILE
    previous: bytes | None = None
    try:
        if current.exists():
            previous = current.read_bytes()
            write_private_file(directory / PREVIOUS_TICKET_FILE, previous, replace=True)
        secret = secrets.token_bytes(TICKET_SECRET_LEN)
        write_private_file(current, secret, replace=True)
    except OSError as exc:
        if not disk_full(exc) or not current.exists():
            raise
        note = "the disk is full: the ticket key on disk stays in use until a start can rotate it"
        log.warning("keys.ticket_key_not_rotated", reason=exc.strerror, path=str(current), note=note)
        return _read_ticket_keys(directory)
    return TicketKeys(secret, previous if previous and len(previous) == TICKET_SECRET_LEN else None)


def _read_ticket_keys(directory: Path) -> TicketKeys:
    """The ticket keys as the last `_rotate_ticket_keys` left them (worker processes of a running server)."""
    current = (directory / TICKET_FILE).read_bytes()
    previous_path = directory / PREVIOUS_TICKET_FILE
    previous = previous_path.read_bytes() if previous_path.exists() else None
    return TicketKeys(current, previous if previous and len(previous) == TICKET_SECRET_LEN else None)


# --- app records ----------------------------------------------------------------------------------------


@wire_struct
@dataclass(frozen=True, slots=True)
class PinEntry(WireStruct):
    """One client key pin; a Seq of these is byte for byte a Seq of Str8."""

    pin: Str8


PinList = Annotated[tuple[PinEntry, ...], Seq(1, PinEntry)]


@wire_struct
@dataclass(frozen=True, slots=True)
class AppRecord(WireStruct):
    """An app as stored in the `apps` database. Later versions append fields (older readers ignore them)."""

    app_id: Str8
    created_ms: U64
    stored_key_sm3: Bytes8
    stored_key_sha256: Bytes8
    client_key_pins: PinList
    role: Str8 = "app"
    tenant: Str8 = ""

    @property
    def pins(self) -> tuple[str, ...]:
        """The client key pins as strings."""
        return tuple(p.pin for p in self.client_key_pins)

    @property
    def profile(self) -> Profile:
        """The app's role and tenant (a role this build does not know gives no rights: a plain app)."""
        try:
            return Profile(Role(self.role), self.tenant)
        except ValueError:
            return Profile(Role.APP, self.tenant)

    def credential(self, session_keys: Callable[[], Sequence[SessionKey]] | None = None) -> AppCredential:
        """What the handshake needs of this app (`session_keys`: reads its session credentials, spec section 16)."""
        keys = {"sm3": self.stored_key_sm3, "sha256": self.stored_key_sha256}
        if session_keys is None:
            return AppCredential(self.app_id, keys, frozenset(self.pins))
        return AppCredential(self.app_id, keys, frozenset(self.pins), session_keys)

    def encode(self) -> bytes:
        """The stored bytes."""
        data: bytes = self._wire_build(self)
        return data

    @classmethod
    def decode(cls, raw: bytes) -> AppRecord:
        """Parse stored bytes; ValueError if they are not an app record."""
        try:
            record: AppRecord = cls._wire_parse(raw, 0, len(raw))[0]
        except Truncated:
            raise ValueError("corrupt app record") from None
        return record


class AppStore(Protocol):
    """The part of kefu.server.storage.store.Store that apps use."""

    def put_app(self, app_id: str, record: bytes) -> None: ...
    def get_app(self, app_id: str) -> bytes | None: ...
    def change_app(
        self, app_id: str, change: Callable[[bytes | None], bytes | None], note: Callable[[bytes | None], bytes]
    ) -> None: ...
    def delete_app(self, app_id: str) -> bool: ...
    def list_apps(self) -> list[str]: ...


class AppError(ValueError):
    """An app operation was refused: bad name, bad pin, already exists."""


def encode_secret(secret: bytes) -> str:
    """An app secret as shown to people: base64url without padding."""
    return base64.urlsafe_b64encode(secret).rstrip(b"=").decode()


def decode_secret(text: str) -> bytes:
    """The inverse of encode_secret (surrounding whitespace and padding tolerated)."""
    text = text.strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_app_id(app_id: str) -> None:
    if not app_id or len(app_id.encode()) > 255 or not app_id.isprintable() or any(c.isspace() for c in app_id):
        raise AppError(f"invalid app id {app_id!r}: 1-255 bytes of printable UTF-8 without spaces")
    if app_id.startswith("#"):
        raise AppError(f"invalid app id {app_id!r}: ids starting with '#' are the server's (system messages)")


def create_app(
    store: AppStore,
    app_id: str,
    *,
    client_key_pins: Sequence[str] = (),
    role: str = "app",
    tenant: str = "",
    secret: bytes | None = None,
) -> tuple[AppRecord, bytes]:
    """Register `app_id` with a fresh random secret; returns the record and the secret (show it once)."""
    _check_app_id(app_id)
    bad = [p for p in client_key_pins if not _PIN.match(p)]
    if bad:
        raise AppError(f"invalid client key pin {bad[0]!r}: expected sm2:<64 hex> or ed25519:<64 hex>")
    if role not in ROLES:
        raise AppError(f"invalid role {role!r}: one of {', '.join(ROLES)}")
    if len(tenant.encode()) > 255 or not tenant.isprintable():
        raise AppError(f"invalid tenant {tenant!r}")
    if store.get_app(app_id) is not None:
        raise AppError(f"app {app_id!r} already exists (revoke it first to issue a new secret)")
    secret = secret if secret is not None else secrets.token_bytes(APP_SECRET_LEN)
    cred = AppCredential.from_secret(app_id, secret)
    pins = tuple(PinEntry(p) for p in dict.fromkeys(client_key_pins))
    record = AppRecord(
        app_id, time.time_ns() // 1_000_000, cred.stored_keys["sm3"], cred.stored_keys["sha256"], pins, role, tenant
    )
    store.put_app(app_id, record.encode())
    log.event("app.created", app=app_id, role=role, tenant=tenant, client_pins=len(pins))
    return record, secret


def revoke_app(store: AppStore, app_id: str) -> bool:
    """Delete `app_id` and its session credentials, and order its live sessions ended (`kefu.server.identity.orders`);
    False if there was no such app. A running server refuses it and ends its sessions within ORDER_POLL_S."""
    try:
        _order(store, app_id, OrderKind.REVOKED, lambda record: None)
    except AppError:
        return False
    sessions = sessions_store(store)
    if sessions is not None:
        drop_all(sessions, app_id)  # an app registered again under this id must not inherit them
    log.event("app.revoked", app=app_id)
    return True


def retire_client_key(store: AppStore, app_id: str, pin: str) -> AppRecord:
    """Remove client key `pin` from `app_id` and order the sessions that authenticated with it ended; the app's new
    record. AppError if there is no such app or the key is not registered for it."""

    def without(record: AppRecord) -> bytes:
        if pin not in record.pins:
            raise AppError(f"client key {pin!r} is not registered for app {app_id!r}")
        return replace(record, client_key_pins=tuple(p for p in record.client_key_pins if p.pin != pin)).encode()

    raw = _order(store, app_id, OrderKind.KEY_RETIRED, without, pin)
    log.event("app.client_key_retired", app=app_id, pin=pin)
    return AppRecord.decode(raw)


def end_sessions(store: AppStore, app_id: str) -> None:
    """Order every live session of `app_id` ended (the app stays registered and may connect again). AppError if there
    is no such app."""
    _order(store, app_id, OrderKind.ENDED, AppRecord.encode)
    log.event("app.sessions_ended", app=app_id)


def _order(
    store: AppStore, app_id: str, kind: OrderKind, change: Callable[[AppRecord], bytes | None], pin: str = ""
) -> bytes:
    """Change the app's record with `change` and append an order of `kind`, in one transaction; the new record."""
    new: list[bytes] = []

    def checked(raw: bytes | None) -> bytes | None:
        if raw is None:
            raise AppError(f"no app {app_id!r}")
        record = change(AppRecord.decode(raw))
        new.append(record if record is not None else b"")
        return record

    now_ms = time.time_ns() // 1_000_000
    store.change_app(app_id, checked, lambda book: noted(book, kind, app_id, pin, now_ms=now_ms))
    return new[-1]


def list_app_records(store: AppStore) -> list[AppRecord]:
    """Every app, by id."""
    records = (store.get_app(app_id) for app_id in sorted(store.list_apps()))
    return [AppRecord.decode(raw) for raw in records if raw is not None]


class AppDirectory(Mapping[str, AppCredential]):
    """The apps in the store, as the handshake's `ServerConfig.apps` mapping, with a bounded cache.

    A new app is found at once (misses are not cached). A revoked app is refused once its cache entry is
    older than `ttl_s`, or at once after `invalidate()` (SIGHUP). Session credentials (spec section 16) are never
    cached: each credential reads them from the store when asked (`kefu.server.identity.credentials`), so one issued
    or revoked by any process counts at the next handshake.
    """

    def __init__(
        self,
        store: AppStore,
        *,
        cache_size: int = APP_CACHE_SIZE,
        ttl_s: float = APP_CACHE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._cache: dict[str, tuple[AppRecord, AppCredential, float]] = {}
        self._cache_size = cache_size
        self._ttl_s = ttl_s
        self._clock = clock
        self._sessions_store = sessions_store(store)
        """The store to read session credentials from (None: a store without that table has none)."""

    def record(self, app_id: str) -> AppRecord | None:
        """The full record of `app_id` (role, tenant, ...), or None."""
        hit = self._lookup(app_id) if app_id else None
        return hit[0] if hit else None

    def profile(self, user: str) -> Profile:
        """The user's role and tenant (`Profiles`); apps without a record are plain apps of tenant ""."""
        record = self.record(user)
        return record.profile if record is not None else NOBODY

    def _lookup(self, app_id: str) -> tuple[AppRecord, AppCredential, float] | None:
        now = self._clock()
        hit = self._cache.get(app_id)
        if hit is not None and hit[2] > now:
            return hit
        try:
            raw = self._store.get_app(app_id)
        except ValueError:  # not an id the store can hold ("", 0x00): no such app, whoever asks
            raw = None
        if raw is None:
            self._cache.pop(app_id, None)
            return None
        record = AppRecord.decode(raw)
        if len(self._cache) >= self._cache_size:
            del self._cache[next(iter(self._cache))]
        sessions_store = self._sessions_store
        sessions = partial(read_session_keys, sessions_store, app_id) if sessions_store is not None else None
        hit = self._cache[app_id] = (record, record.credential(sessions), now + self._ttl_s)
        return hit

    def allows(self, app_id: str, client_key: str, *, now: float) -> bool:
        """Whether a session of `app_id` that authenticated with `client_key` may go on (`AppCredential.allows`)."""
        hit = self._lookup(app_id)
        return hit is not None and hit[1].allows(client_key, now=now)

    def __getitem__(self, app_id: str) -> AppCredential:
        hit = self._lookup(app_id)
        if hit is None:
            raise KeyError(app_id)
        return hit[1]

    def __iter__(self) -> Iterator[str]:
        return iter(self._store.list_apps())

    def __len__(self) -> int:
        return len(self._store.list_apps())

    def forget(self, app_id: str) -> None:
        """Forget one cached app (a session order named it): its next lookup reads the store."""
        self._cache.pop(app_id, None)

    def invalidate(self) -> None:
        """Forget every cached app (SIGHUP, or after apps were added or revoked)."""
        self._cache.clear()


def ensure_dev_app(store: AppStore, data_dir: Path, *, out: TextIO | None = None) -> bytes | None:
    """With no apps at all, create app "dev", save its secret to keys/dev-app.secret and print it once."""
    if store.list_apps():
        return None
    path = keys_dir(data_dir) / DEV_SECRET_FILE
    _, secret = create_app(store, DEV_APP_ID)
    write_private_file(path, (encode_secret(secret) + "\n").encode(), replace=True)
    log.warning("keys.dev_app_created", app=DEV_APP_ID, path=str(path), note=DEV_APP_WARNING)
    print(f"kefu: {DEV_APP_WARNING}", file=out or sys.stdout)
    print(f"kefu: app {DEV_APP_ID!r} secret (kept in {path}, readable by this user only):", file=out or sys.stdout)
    print(f"  {encode_secret(secret)}", file=out or sys.stdout, flush=True)
    return secret


# --- everything a starting server needs -----------------------------------------------------------------


@dataclass(slots=True)
class Keyring:
    """The server's keys (every one on disk, oldest first per type), ticket keys and app directory."""

    keys: Mapping[KeyType, Sequence[KeyFile]]
    ticket_keys: TicketKeys
    apps: AppDirectory

    def signing_keys(self) -> dict[KeyType, SigningKey]:
        """The newest key of each type: the one that signs (ServerConfig.keys)."""
        return {t: files[-1].key for t, files in self.keys.items() if files}

    @property
    def pins(self) -> list[str]:
        """Every key's pin, newest first per type: what clients should accept."""
        return pins_of(self.keys)

    @property
    def newest(self) -> str:
        """The index of each type's signing key, as `load(..., newest=)` takes it ("sm2:2,ed25519:1")."""
        return ",".join(f"{KEY_NAMES[t]}:{files[-1].index}" for t, files in self.keys.items() if files)


def load_or_create(data_dir: Path, store: AppStore, *, out: TextIO | None = None) -> Keyring:
    """Load the keys under data_dir/keys, generating any missing key type (and the dev app) on first start.

    A first start logs a WARNING that these are development keys and prints the pins (and the dev app's
    secret) to `out` (default stdout), for clients to pin. Ticket keys rotate on every call.
    """
    data_dir = Path(data_dir)
    directory = keys_dir(data_dir)
    keys = load_keys(data_dir)
    created = [add_key(data_dir, t) for t, files in keys.items() if not files]
    if created:
        keys = load_keys(data_dir)
        pins = [f.pin for f in created]
        log.warning("keys.generated", path=str(directory), pins=",".join(pins), note=DEV_WARNING.format(what="keys"))
        stream = out or sys.stdout
        print(f"kefu: {DEV_WARNING.format(what='server keys')}", file=stream)
        print(f"kefu: new server keys in {directory}; clients pin:", file=stream)
        for pin in pins:
            print(f"  {pin}", file=stream, flush=True)
    try:
        ensure_dev_app(store, data_dir, out=out)
    except Exception as exc:  # the store's write (lmdb.DiskError) or the secret's file
        if not disk_full(exc):
            raise
        log.warning("keys.dev_app_not_created", reason=str(exc), note="the disk is full: no app can log in yet")
    return Keyring(keys, _rotate_ticket_keys(directory), AppDirectory(store))


def load(data_dir: Path, store: AppStore, *, newest: str = "") -> Keyring:
    """The keys a running server's `load_or_create` left under data_dir/keys, read without changing anything (the
    gateway processes: every one signs with the same keys and opens the same tickets).

    `newest` ("sm2:2,ed25519:1", `Keyring.newest` of the server's start) leaves out keys added since: a gateway the
    supervisor restarts after `kefu keygen` signs with the key the others sign with, not the new one, which only a
    restart of the whole server puts to use (as the documentation of keygen says)."""
    data_dir = Path(data_dir)
    keys = load_keys(data_dir)
    if newest:
        by_name = {name: t for t, name in KEY_NAMES.items()}
        limits = {by_name[name]: int(index) for name, index in (item.split(":") for item in newest.split(","))}
        keys = {t: [f for f in files if f.index <= limits.get(t, f.index)] for t, files in keys.items()}
    missing = [KEY_NAMES[t] for t, files in keys.items() if not files]
    if missing:
        raise FileNotFoundError(f"{keys_dir(data_dir)}: no {', '.join(missing)} key")
    return Keyring(keys, _read_ticket_keys(keys_dir(data_dir)), AppDirectory(store))
