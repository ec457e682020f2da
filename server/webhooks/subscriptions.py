"""Webhook subscriptions and their durable cursors: the records, where the store keeps them, and their checks.

Two tables of the store's own (registered by the wiring, as the desk registers its tables; values sealed at rest like
every registered table's, so a subscription's signing secret is never on disk in clear):

- ``webhooks``: subscription id -> `Subscription` (JSON). Written by `kefu webhook add/remove` (another process, as
  `kefu app add` writes ``apps``) or by the HTTP API; a running server reads the table again every
  `dispatcher.RELOAD_S`, so a change needs no restart.
- ``webhook_cursors``: subscription id -> `Cursor` (JSON), written by the server only (`dispatcher`), at most
  [webhooks] cursor_save_ms after a delivery succeeds.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from ..identity.keys import encode_secret
from .events import ALGORITHMS, EventType

__all__ = [
    "CURSORS_TABLE",
    "MAX_URL_BYTES",
    "SUBSCRIPTIONS_TABLE",
    "TABLES",
    "Cursor",
    "Subscription",
    "SubscriptionError",
    "add",
    "check_algorithms",
    "check_events",
    "check_url",
    "list_all",
    "load_cursors",
    "new_secret",
    "new_subscription",
    "remove",
    "save_cursors",
]

SUBSCRIPTIONS_TABLE: Final = "webhooks"
CURSORS_TABLE: Final = "webhook_cursors"
TABLES: Final = (SUBSCRIPTIONS_TABLE, CURSORS_TABLE)
"""The store tables of the webhooks (`kefu.server.wiring.open_store` registers them)."""
MAX_URL_BYTES: Final = 2048
"""Longest endpoint URL: what common HTTP servers accept in a request line, with room to spare."""
SECRET_BYTES: Final = 32
"""Random bytes of a signing secret: 256 bits, the HMAC's own strength with SM3 or SHA-256."""
MAX_SUBSCRIPTIONS: Final = 1000
"""Subscriptions per store: each costs the dispatcher a queue table and the live path a filter test per event."""


class SubscriptionError(ValueError):
    """A subscription request that cannot be taken (its text says why)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription: where to POST which events of which tenant, and the secret that signs them."""

    id: str
    url: str
    events: tuple[str, ...]
    tenant: str
    secret: bytes
    algorithms: tuple[str, ...]
    created_ms: int

    def encode(self) -> bytes:
        """The stored JSON (sealed by the store)."""
        data = {**self.public(), "secret": self.secret.decode()}
        return json.dumps(data, separators=(",", ":")).encode()

    def public(self) -> dict[str, Any]:
        """What listings show: everything but the secret."""
        return {
            "id": self.id, "url": self.url, "events": list(self.events), "tenant": self.tenant,
            "algorithms": list(self.algorithms), "created_ms": self.created_ms,
        }  # fmt: skip

    @classmethod
    def decode(cls, raw: bytes) -> Subscription:
        """From the stored JSON."""
        data = json.loads(raw)
        return cls(
            str(data["id"]), str(data["url"]), tuple(data["events"]), str(data["tenant"]),
            str(data["secret"]).encode(), tuple(data["algorithms"]), int(data["created_ms"]),
        )  # fmt: skip


@dataclass(slots=True)
class Cursor:
    """A subscription's durable position (spec 18.3): every event stored at `since_ms` or later is looked at again
    after a restart, except those of a log conversation at or below its `done` seq. `done` maps a log conversation
    to (the highest seq handled, that event's timestamp_ms): an entry is kept while its timestamp is `since_ms` or
    later, since only those events are looked at again."""

    since_ms: int
    done: dict[int, tuple[int, int]] = field(default_factory=dict)

    def encode(self) -> bytes:
        done = {str(conv): [seq, ts] for conv, (seq, ts) in self.done.items()}
        return json.dumps({"since_ms": self.since_ms, "done": done}, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Cursor:
        data = json.loads(raw)
        return cls(int(data["since_ms"]), {int(k): (int(v[0]), int(v[1])) for k, v in data["done"].items()})


def check_url(url: str, allowed_hosts: Iterable[str] = ()) -> str:
    """`url` if it is an absolute http(s) URL with a host (one of `allowed_hosts`, unless that is empty) and no
    credentials in it; else SubscriptionError."""
    if len(url.encode()) > MAX_URL_BYTES:
        raise SubscriptionError(f"the URL is longer than {MAX_URL_BYTES} bytes")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise SubscriptionError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise SubscriptionError("only http:// and https:// URLs are allowed")
    if not parts.hostname:
        raise SubscriptionError("the URL names no host")
    allowed = {h.lower() for h in allowed_hosts}
    if allowed and parts.hostname.lower() not in allowed:
        raise SubscriptionError(f"host {parts.hostname!r} is not one of [webhooks] allowed_hosts")
    if parts.username is not None or parts.password is not None:
        raise SubscriptionError("credentials in the URL are not allowed: receivers verify the signature instead")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise SubscriptionError("the URL holds spaces or control characters")
    return url


def check_events(events: Iterable[str]) -> tuple[str, ...]:
    """The event types, each once, in EventType order; "all" (or "*") stands for every type."""
    wanted = {e.strip() for e in events if e.strip()}
    if wanted & {"all", "*"}:
        return tuple(t.value for t in EventType)
    unknown = wanted - {t.value for t in EventType}
    if unknown:
        raise SubscriptionError(
            f"unknown event types: {', '.join(sorted(unknown))} (known: {', '.join(t.value for t in EventType)})"
        )
    if not wanted:
        raise SubscriptionError("name at least one event type")
    return tuple(t.value for t in EventType if t.value in wanted)


def check_algorithms(algorithms: Iterable[str]) -> tuple[str, ...]:
    """The signature algorithms, each once (default: both)."""
    names = tuple(dict.fromkeys(a.strip().lower() for a in algorithms if a.strip())) or tuple(ALGORITHMS)
    unknown = [a for a in names if a not in ALGORITHMS]
    if unknown:
        raise SubscriptionError(f"unknown signature algorithms: {', '.join(unknown)} (known: {', '.join(ALGORITHMS)})")
    return names


def new_secret() -> bytes:
    """A signing secret: ``whsec_`` and SECRET_BYTES random bytes in base64url. The HMAC key is this text itself (its
    ASCII bytes), exactly as `kefu webhook add` prints it: nothing to decode on the receiver's side."""
    return b"whsec_" + encode_secret(os.urandom(SECRET_BYTES)).encode()


def new_subscription(
    url: str, events: Iterable[str], tenant: str, *, now_ms: int, algorithms: Iterable[str] = (),
    allowed_hosts: Iterable[str] = (),
) -> Subscription:  # fmt: skip
    """A checked subscription with a new id and a fresh secret."""
    return Subscription(
        "wh_" + secrets.token_hex(8), check_url(url, allowed_hosts), check_events(events), tenant, new_secret(),
        check_algorithms(algorithms), now_ms,
    )  # fmt: skip


def add(store: Any, subscription: Subscription) -> None:
    """Store a subscription durably (SubscriptionError past MAX_SUBSCRIPTIONS)."""
    if len(store.scan(SUBSCRIPTIONS_TABLE, limit=MAX_SUBSCRIPTIONS)) >= MAX_SUBSCRIPTIONS:
        raise SubscriptionError(f"there are {MAX_SUBSCRIPTIONS} subscriptions already")
    key = subscription.id.encode()
    sealed = store.values.seal(SUBSCRIPTIONS_TABLE, key, subscription.encode())
    store.writing(lambda txn: txn.put(key, sealed, db=store.handle(SUBSCRIPTIONS_TABLE)))


def list_all(store: Any) -> list[Subscription]:
    """Every subscription, by id (a record that does not open or parse is left out: the store reported it)."""
    out = []
    for _, raw in store.scan(SUBSCRIPTIONS_TABLE):
        try:
            out.append(Subscription.decode(raw))
        except (ValueError, KeyError, TypeError):
            continue
    return out


def remove(store: Any, subscription_id: str) -> bool:
    """Delete a subscription and its cursor durably; False if there was none."""
    key = subscription_id.encode()
    if not key or len(key) > 255:
        return False

    def work(txn: Any) -> bool:
        txn.delete(key, db=store.handle(CURSORS_TABLE))
        return bool(txn.delete(key, db=store.handle(SUBSCRIPTIONS_TABLE)))

    return bool(store.writing(work))


def load_cursors(store: Any) -> dict[str, Cursor]:
    """Every stored cursor by subscription id (one that does not open or parse is left out: its subscription starts
    again from its creation)."""
    out = {}
    for key, raw in store.scan(CURSORS_TABLE):
        try:
            out[key.decode()] = Cursor.decode(raw)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            continue
    return out


def save_cursors(store: Any, cursors: dict[str, Cursor]) -> None:
    """Write cursors in one durable transaction (blocking: call from a worker thread)."""
    sealed = [
        (key, store.values.seal(CURSORS_TABLE, key, cursor.encode()))
        for key, cursor in ((sid.encode(), c) for sid, c in cursors.items())
    ]

    def work(txn: Any) -> None:
        db, subscriptions = store.handle(CURSORS_TABLE), store.handle(SUBSCRIPTIONS_TABLE)
        for key, value in sealed:
            if txn.get(key, db=subscriptions) is not None:  # not one removed meanwhile by another process
                txn.put(key, value, db=db)

    store.writing(work)
