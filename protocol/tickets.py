"""Resumption tickets (spec/PROTOCOL.md section 5.6).

Theory of operation: after a full handshake the server sends NEW_TICKET. The ticket is the server's own
encrypted record of the session (suite, PSK, app id, client key, issue time, lifetime, a random ticket id),
sealed with a server-only ticket key; the client cannot read it and keeps it with the PSK it derives itself
from the resumption secret and the ticket nonce. A resuming CLIENT_HELLO carries the ticket and a binder
MAC under the PSK, so only the holder of the PSK can use it.

Tickets are single-use: the server claims each ticket id in a `TicketGuard` once the binder verifies, and
refuses a second claim until the ticket has expired. Tickets are short-lived (`DEFAULT_TICKET_LIFETIME_S`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from . import crypto
from .errors import CryptoError
from .keyschedule import expand_label
from .wire import U8, U16, U32, U64, Bytes8, Fixed16, Str8, Truncated, WireStruct, wire_struct

DEFAULT_TICKET_LIFETIME_S = 600
"""Ten minutes: long enough to ride out a server restart or a network blip (the reconnect storm tickets
exist for), short enough that a stolen ticket and PSK are of little use."""

MAX_TICKET_LIFETIME_S = 86400
"""RFC 8446 caps ticket lifetimes at 7 days; kefu's bank deployments want far less: one day at most."""

TICKET_VERSION = 1
_NONCE_LEN = 12
_KEY_ID_LEN = 4


@wire_struct
@dataclass(slots=True)
class TicketState(WireStruct):
    """What a ticket holds, sealed under the server's ticket key."""

    version: U8
    suite: U16
    issued_at_ms: U64
    lifetime_s: U32
    age_add: U32
    ticket_id: Fixed16
    app_id: Str8
    client_key: Str8
    psk: Bytes8


@dataclass(frozen=True, slots=True)
class SessionTicket:
    """A ticket as the client keeps it. `received_at` is stamped by the adapter (the core has no clock)."""

    suite: crypto.Suite
    ticket: bytes
    psk: bytes
    lifetime_s: int
    age_add: int
    received_at: float = 0.0

    def expired(self, now: float) -> bool:
        """True once the ticket's lifetime has passed."""
        return now - self.received_at >= self.lifetime_s


class TicketKeys:
    """The server's ticket-sealing keys: one current secret and the previous one (for rotation)."""

    def __init__(self, current: bytes, previous: bytes | None = None) -> None:
        self._secrets = [current] + ([previous] if previous else [])
        self._aeads: dict[tuple[bytes, crypto.Suite], tuple[bytes, crypto.Aead]] = {}

    @classmethod
    def generate(cls) -> TicketKeys:
        """A fresh random secret."""
        return cls(os.urandom(32))

    def _aead(self, secret: bytes, suite: crypto.Suite) -> tuple[bytes, crypto.Aead]:
        """(key id, AEAD) of `secret` for `suite`, derived once (a resumption would otherwise pay two HMACs)."""
        cached = self._aeads.get((secret, suite))
        if cached is None:
            cached = self._aeads[(secret, suite)] = self._derive(secret, suite)
        return cached

    @staticmethod
    def _derive(secret: bytes, suite: crypto.Suite) -> tuple[bytes, crypto.Aead]:
        spec = crypto.SUITES[suite]
        key_id = crypto.hash_digest(spec.hash_name, secret)[:_KEY_ID_LEN]
        key = expand_label(spec.hash_name, secret, b"ticket key", b"", spec.key_len)
        return key_id, crypto.Aead(spec.cipher, key)

    def seal(self, state: TicketState, nonce: bytes) -> bytes:
        """key_id (4) || nonce (12) || AEAD(state), sealed under the current secret."""
        key_id, aead = self._aead(self._secrets[0], crypto.Suite(state.suite))
        aad = key_id + state.suite.to_bytes(2, "big")
        return key_id + nonce + aead.seal(nonce, TicketState._wire_build(state), aad)

    def open(self, ticket: bytes, suite: crypto.Suite) -> TicketState | None:
        """The state of a ticket sealed by this server for `suite`, or None."""
        key_id, nonce, sealed = ticket[:_KEY_ID_LEN], ticket[_KEY_ID_LEN:16], ticket[16:]
        for secret in self._secrets:
            kid, aead = self._aead(secret, suite)
            if kid != key_id:
                continue
            try:
                raw = aead.open(nonce, sealed, kid + suite.to_bytes(2, "big"))
                state, _ = TicketState._wire_parse(raw, 0, len(raw))
            except (CryptoError, Truncated):
                return None
            return state if state.version == TICKET_VERSION and state.suite == suite else None
        return None


class TicketGuard:
    """Server-wide memory of claimed ticket ids, so that each ticket resumes at most once."""

    MAX_ENTRIES = 1_000_000
    """Bound on remembered ids (about 100 MB at worst); past it, claims fail closed (full handshake)."""

    def __init__(self) -> None:
        self._used: dict[bytes, float] = {}

    def claim(self, ticket_id: bytes, expires_at: float, *, now: float) -> bool:
        """True the first time `ticket_id` is claimed before it expires; False afterwards."""
        if len(self._used) >= self.MAX_ENTRIES:
            self.purge(now=now)
            if len(self._used) >= self.MAX_ENTRIES:
                return False
        if ticket_id in self._used:
            return False
        self._used[ticket_id] = expires_at
        return True

    def purge(self, *, now: float) -> None:
        """Forget ids whose tickets have expired (they can no longer be presented)."""
        self._used = {tid: exp for tid, exp in self._used.items() if exp > now}

    def __len__(self) -> int:
        return len(self._used)
