"""Everything a client is configured with, in one object shared by `Client` and `BlockingClient`, and its URL form.

::

    kefu://APP_ID[:SECRET]@HOST[:PORT][/]?pin=PIN[&pin=PIN...][&suite=SUITE...]

- ``APP_ID`` and ``SECRET`` are percent-decoded (RFC 3986 userinfo). ``SECRET`` is the app secret as ``kefu app add``
  prints it: base64url, padding optional (a ``=`` may be written as is or as ``%3D``). Without it, pass ``app_secret``
  or ``client_key`` as a keyword.
- ``HOST`` is a name, an IPv4 address or a bracketed IPv6 address; ``PORT`` defaults to 7420 (`DEFAULT_PORT`).
- ``pin`` (repeatable, at least one here or in ``server_pins=``): a server key fingerprint, ``sm2:<64 hex>`` or
  ``ed25519:<64 hex>``, as the server prints it and writes it to keys/pins.txt.
- ``suite`` (repeatable, optional): ``national`` or ``international`` (any case), offered in the order given; the
  default is ``national`` alone.
- Nothing else: another query parameter, a path other than ``/``, a fragment or a scheme other than ``kefu`` is a
  ValueError. Keywords given with the URL (``Client.from_url(url, explicit_ack=True)``) add to it or replace its
  values.

The secret is never shown: not in `ClientOptions`'s repr, not in an error message (a malformed URL's ValueError names
the part that is wrong, never the URL).
"""

from __future__ import annotations

import base64
import binascii
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from kefu.protocol.crypto import SigningKey, Suite
from kefu.protocol.handshake import MAX_KEEPALIVE_MS, MIN_KEEPALIVE_MS

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_SEND_TIMEOUT_S",
    "ClientOptions",
    "ErrorCallback",
    "StateCallback",
    "decode_secret",
]

DEFAULT_PORT = 7420
"""The port `kefu serve` listens on unless told otherwise (and a URL's port when it names none)."""

DEFAULT_SEND_TIMEOUT_S = 30.0
"""How long send() waits for the SEND_ACK by default: long enough to ride out a reconnect with its backoff (a few
seconds) and a server restart, short enough that a caller hears of an unreachable server. None waits for ever."""

URL_SCHEME = "kefu"

StateCallback = Callable[[], Awaitable[None] | None]
"""A connected/disconnected/reconnected callback: a plain function or a coroutine function, called without arguments."""
ErrorCallback = Callable[[BaseException], Awaitable[None] | None]
"""The error callback: called with an error the application would not otherwise see."""

_SECRET = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_PIN = re.compile(r"(?:sm2|ed25519):[0-9a-f]{64}")
_URL_PARAMETERS = frozenset({"pin", "suite"})


def decode_secret(secret: bytes | str) -> bytes:
    """An app secret as bytes: bytes as they are, text as ``kefu app add`` prints it (base64url, padding optional).

    Raises ValueError (without the secret in the message) when the text is not base64url.
    """
    if isinstance(secret, bytes | bytearray | memoryview):
        return bytes(secret)
    text = secret.strip()
    if not _SECRET.fullmatch(text):
        raise ValueError("app_secret text is not base64url (as `kefu app add` prints it)")
    try:
        return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))
    except binascii.Error:
        raise ValueError("app_secret text is not base64url (as `kefu app add` prints it)") from None


@dataclass(frozen=True, kw_only=True)
class ClientOptions:
    """The configuration of one client (`Client` and `BlockingClient` take the same fields as keywords).

    Checked on construction: an invalid value is a ValueError. `app_secret` may be given as bytes or as the text the
    CLI prints; it is kept as bytes and never shown in the repr.
    """

    host: str
    """The server's host name or address."""
    port: int = DEFAULT_PORT
    app_id: str
    """This client's user (the app id it was registered with)."""
    server_pins: frozenset[str] = frozenset()
    """Fingerprints of the server keys to trust (``sm2:<hex>``, ``ed25519:<hex>``); any iterable of str is taken. At
    least one is needed (a client that trusts no key could never connect)."""
    app_secret: bytes | str | None = field(default=None, repr=False)
    """The app's secret: bytes, or base64url text as ``kefu app add`` prints it (kept as bytes). This or `client_key`
    is needed."""
    client_key: SigningKey | None = field(default=None, repr=False)
    """A client signing key registered for the app, instead of the secret."""
    suites: tuple[Suite, ...] = (Suite.NATIONAL,)
    """Offered exactly as given, in order, on every connection (never fewer or weaker ones)."""
    keepalive_s: float = 30
    """Idle seconds (5..300) after which the client sends PING; 1.5 intervals without traffic end the connection."""
    reconnect: bool = True
    """Reconnect after a connection is lost (with backoff, resuming the session)."""
    psk_with_ecdhe: bool = False
    """Add a fresh key exchange to resumed handshakes (forward secrecy per connection)."""
    local_addr: str | None = None
    """Bind this source address (e.g. 127.0.0.x for load tests)."""
    connect_timeout: float = 10
    """Seconds for the TCP connect plus the handshake of one attempt."""
    send_timeout: float | None = DEFAULT_SEND_TIMEOUT_S
    """send()'s timeout when the call gives none; None waits for ever."""
    explicit_ack: bool = False
    """False (implicit): a message is acknowledged when the next one is asked for, or when the client closes without
    an exception. True (explicit): only when `Message.ack()` is awaited."""
    connected_cb: StateCallback | None = None
    """Called once the first connection is up (connect() returns after it was called or scheduled)."""
    disconnected_cb: StateCallback | None = None
    """Called whenever a usable connection is lost or closed."""
    reconnected_cb: StateCallback | None = None
    """Called after each successful reconnection."""
    error_cb: ErrorCallback | None = None
    """Called with errors the application would not otherwise see: a failed reconnection attempt, the error that ends
    the client, an exception raised by another callback."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise the given types once, here
        set_(self, "server_pins", frozenset(self.server_pins))
        set_(self, "suites", tuple(Suite(s) for s in self.suites))
        if self.app_secret is not None:
            set_(self, "app_secret", decode_secret(self.app_secret))
        if not self.host:
            raise ValueError("host is empty")
        if not 0 < self.port < 1 << 16:
            raise ValueError(f"port must be 1..65535, got {self.port}")
        if not self.app_id:
            raise ValueError("app_id is empty")
        if not self.suites:
            raise ValueError("offer at least one suite")
        if not self.server_pins:
            raise ValueError("need at least one server pin (server_pins, or pin= in a URL)")
        if self.app_secret is None and self.client_key is None:
            raise ValueError("need app_secret or client_key")
        if not MIN_KEEPALIVE_MS <= self.keepalive_s * 1000 <= MAX_KEEPALIVE_MS:
            raise ValueError(f"keepalive_s must be within {MIN_KEEPALIVE_MS // 1000}..{MAX_KEEPALIVE_MS // 1000} s")
        if self.connect_timeout <= 0 or (self.send_timeout is not None and self.send_timeout <= 0):
            raise ValueError("timeouts must be positive")

    @classmethod
    def build(
        cls, host: str | None, port: int | None, options: ClientOptions | None, overrides: dict[str, Any]
    ) -> ClientOptions:
        """The options of a constructor call: `options` (if any) with `host`, `port` and keyword `overrides` applied."""
        given = dict(overrides)
        if host is not None:
            given["host"] = host
        if port is not None:
            given["port"] = port
        unknown = set(given) - {f.name for f in fields(cls)}
        if unknown:
            raise TypeError(f"unknown client options: {', '.join(sorted(unknown))}")
        return replace(options, **given) if options is not None else cls(**given)

    @classmethod
    def from_url(cls, url: str, **overrides: Any) -> ClientOptions:
        """The options a ``kefu://`` URL states (see the module docstring), with keyword `overrides` applied."""
        given = _parse_url(url)
        given.update(overrides)
        return cls.build(None, None, None, given)


def _parse_url(url: str) -> dict[str, Any]:
    """The option fields of a kefu:// URL. Error messages name the bad part, never the URL (it holds the secret)."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError("malformed kefu URL: bad host or port") from None
    if parts.scheme.lower() != URL_SCHEME:
        raise ValueError(f"a kefu URL starts with {URL_SCHEME}://")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError("a kefu URL has no path or fragment")
    if not parts.hostname:
        raise ValueError("a kefu URL names a host: kefu://app:secret@host:port?pin=...")
    if parts.username is None or not parts.username:
        raise ValueError("a kefu URL names the app id: kefu://app:secret@host:port?pin=...")
    try:
        given: dict[str, Any] = {
            "host": parts.hostname,
            "port": port if port is not None else DEFAULT_PORT,
            "app_id": urllib.parse.unquote(parts.username, errors="strict"),
        }
        if parts.password:
            given["app_secret"] = urllib.parse.unquote(parts.password, errors="strict")
    except UnicodeDecodeError:
        raise ValueError("the app id or secret of a kefu URL is not percent-encoded UTF-8") from None
    query = _query(parts.query)
    pins = query.get("pin", [])
    if pins:
        given["server_pins"] = frozenset(_check_pins(pins))
    if "suite" in query:
        given["suites"] = tuple(_suite(name) for name in query["suite"])
    return given


def _query(query: str) -> dict[str, list[str]]:
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query), errors="strict")
    except ValueError:
        raise ValueError("malformed kefu URL query") from None
    found: dict[str, list[str]] = {}
    for name, value in pairs:
        if name not in _URL_PARAMETERS:
            raise ValueError(f"unknown kefu URL parameter {name[:32]!r} (known: pin, suite)")
        found.setdefault(name, []).append(value)
    return found


def _check_pins(pins: Sequence[str]) -> Iterable[str]:
    for pin in pins:
        if not _PIN.fullmatch(pin):
            raise ValueError(f"pin {pin[:80]!r} is not sm2:<64 hex> or ed25519:<64 hex>")
    return pins


def _suite(name: str) -> Suite:
    try:
        return Suite[name.upper()]
    except KeyError:
        raise ValueError(f"unknown suite {name[:32]!r} (known: national, international)") from None
