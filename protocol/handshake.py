"""The handshake: configuration, transcript, proofs, and the two roles' steps (spec/PROTOCOL.md section 5).

Theory of operation — one round trip, shaped like TLS 1.3::

    client                                             server
    CLIENT_HELLO (plaintext: random, offered suites,
      a key share per suite, [ticket, binder])   --->
                                                       choose suite, ECDHE and/or verify ticket
                                                 <---  SERVER_HELLO (plaintext)
                                                       RECORD[s hs]{SERVER_FINISHED: key, signature, MAC}
    verify pin, signature, MAC
    RECORD[c hs]{CLIENT_FINISHED: app id, proof, MAC}
    RECORD[c ap]{application frames ...}         --->  verify proof and MAC
                                                 <---  RECORD[s ap]{NEW_TICKET, application frames ...}

The transcript is the concatenation of the whole encoded handshake frames (header and body). A proof field
(binder, signature, client proof, verify_data) is the last field or fields of its frame and covers the
transcript so far followed by the body bytes of its own frame that precede the field's length prefix; so
the offered suites (CLIENT_HELLO) and the chosen suite (SERVER_HELLO) are bound into the server's
signature, which is what defeats a downgrade.

This module holds the pure computations; connection.py holds the state machine that sequences them.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from . import crypto
from .crypto import KeyType, SigningKey, Suite
from .errors import CryptoError, ErrorCode, RemoteProtocolError
from .frames import FrameTally, Goaway, PskMode
from .keyschedule import KeySchedule, expand_label
from .tickets import DEFAULT_TICKET_LIFETIME_S, TicketGuard, TicketKeys

SERVER_SIGNATURE_CONTEXT = b" " * 64 + b"kefu v1, server signature\x00"
CLIENT_SIGNATURE_CONTEXT = b" " * 64 + b"kefu v1, client signature\x00"

DEFAULT_KEEPALIVE_MS = 30_000
MIN_KEEPALIVE_MS = 5_000
"""Below 5 s, keepalives from 100k idle clients would cost the server more than their messages."""
MAX_KEEPALIVE_MS = 300_000
"""Above 5 minutes, NAT and firewall state along the path tends to expire first."""

RANDOM_LEN = 32


# --- app credentials (SCRAM-like, RFC 5802's idea with the suite's hash) -------------------------------


def client_key(hash_name: str, app_id: str, app_secret: bytes) -> bytes:
    """ClientKey = HKDF-Expand-Label(HKDF-Extract(app_id, secret), "client key", "", Hash.length)."""
    prk = crypto.hkdf_extract(hash_name, app_id.encode(), app_secret)
    return expand_label(hash_name, prk, b"client key", b"", crypto.HASH_LEN)


def stored_key(hash_name: str, app_id: str, app_secret: bytes) -> bytes:
    """StoredKey = Hash(ClientKey): the verifier the server keeps instead of the secret."""
    return crypto.hash_digest(hash_name, client_key(hash_name, app_id, app_secret))


def app_proof(hash_name: str, app_id: str, app_secret: bytes, covered_hash: bytes) -> bytes:
    """ClientProof = ClientKey xor HMAC(StoredKey, covered_hash)."""
    key = client_key(hash_name, app_id, app_secret)
    signature = crypto.hmac_digest(hash_name, crypto.hash_digest(hash_name, key), covered_hash)
    return bytes(a ^ b for a, b in zip(key, signature, strict=True))


def check_app_proof(hash_name: str, stored: bytes, proof: bytes, covered_hash: bytes) -> bool:
    """Recover ClientKey from the proof and check that it hashes to StoredKey (constant time)."""
    if len(proof) != crypto.HASH_LEN:
        return False
    signature = crypto.hmac_digest(hash_name, stored, covered_hash)
    key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    return hmac.compare_digest(crypto.hash_digest(hash_name, key), stored)


SESSION_KEY_PREFIX = "session:"
"""How a session credential is named where a client key's pin would be (section 16): "session:" and 32 hex digits."""
MAX_SESSION_KEYS = 8
"""Session credentials an app may hold at once: a proof is checked against this many verifiers, always (padded), so
that the time of an APP_SECRET check does not say how many an app holds (section 16)."""


@dataclass(frozen=True, slots=True)
class SessionKey:
    """A short-lived credential of an app (section 16): verifiers like the app's own, until `expires_at` (unix s)."""

    credential_id: str
    """SESSION_KEY_PREFIX and the credential's id: what the session's `client_key` is when it authenticates with it."""
    stored_keys: Mapping[str, bytes]
    expires_at: float


def _no_session_keys() -> Sequence[SessionKey]:
    return ()


@dataclass(frozen=True, slots=True)
class AppCredential:
    """What the server knows of one app: verifiers per hash, the pins of its client keys, and its session
    credentials (read when a handshake asks: a credential issued or revoked by another process counts at once)."""

    app_id: str
    stored_keys: Mapping[str, bytes] = field(default_factory=dict)
    client_keys: frozenset[str] = frozenset()
    session_keys: Callable[[], Sequence[SessionKey]] = _no_session_keys

    def session_key(self, credential_id: str, *, now: float) -> SessionKey | None:
        """The unexpired session credential named `credential_id`, or None."""
        for key in self.session_keys():
            if key.credential_id == credential_id and key.expires_at > now:
                return key
        return None

    def allows(self, client_key: str, *, now: float) -> bool:
        """Whether a session that authenticated with `client_key` (a pin, a session credential's id, or "" for the
        app's own secret) may still resume: the key is still registered, the session credential not revoked or
        expired."""
        if client_key.startswith(SESSION_KEY_PREFIX):
            return self.session_key(client_key, now=now) is not None
        return not client_key or client_key in self.client_keys

    @classmethod
    def from_secret(cls, app_id: str, secret: bytes, client_keys: frozenset[str] = frozenset()) -> AppCredential:
        """Verifiers for both suites' hashes, computed from a secret the server then forgets."""
        keys = {h: stored_key(h, app_id, secret) for h in ("sm3", "sha256")}
        return cls(app_id, keys, client_keys)


# --- admission ------------------------------------------------------------------------------------------


class HandshakeKind(IntEnum):
    """What a handshake costs the server, as CLIENT_HELLO announces it (section 5.9)."""

    FULL = 0
    """ECDHE and a signature: the expensive kind."""
    RESUMED_ECDHE = 1
    """A ticket with PSK_WITH_ECDHE: one key exchange, no signature."""
    RESUMED = 2
    """A ticket with PSK_ONLY: symmetric work only."""


Admission = Callable[[Suite, HandshakeKind], Goaway | None]
"""The adapter's verdict on a handshake before the server computes anything asymmetric: None to go on, or the
GOAWAY (code OVERLOADED, with the delay after which to retry) that refuses it."""


# --- configuration --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FixedRandoms:
    """Fixed randomness for reproducible transcripts (test vectors only)."""

    random: bytes
    shares: Mapping[Suite, bytes]
    """Private scalar of the ephemeral key per suite."""
    sm2_k: int | None = None
    ticket_nonce: bytes = b"\x00" * 12
    ticket_id: bytes = b"\x00" * 16
    age_add: int = 0


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """How a client connects: offered suites (in order), pinned server keys, and its credentials."""

    app_id: str
    server_pins: frozenset[str]
    suites: tuple[Suite, ...] = (Suite.NATIONAL,)
    app_secret: bytes | None = None
    client_key: SigningKey | None = None
    keepalive_ms: int = DEFAULT_KEEPALIVE_MS
    ticket: object | None = None
    """A SessionTicket to resume with (typed loosely to keep this module free of a cycle)."""
    psk_mode: PskMode = PskMode.PSK_ONLY
    fixed: FixedRandoms | None = None


@dataclass(slots=True)
class ServerConfig:
    """The server's keys, its known apps, and its handshake policy."""

    keys: Mapping[KeyType, SigningKey]
    apps: Mapping[str, AppCredential]
    suites: tuple[Suite, ...] = (Suite.NATIONAL, Suite.INTERNATIONAL)
    """Server preference order."""
    ticket_keys: TicketKeys | None = None
    ticket_guard: TicketGuard = field(default_factory=TicketGuard)
    ticket_lifetime_s: int = DEFAULT_TICKET_LIFETIME_S
    issue_tickets: bool = True
    min_keepalive_ms: int = MIN_KEEPALIVE_MS
    max_keepalive_ms: int = MAX_KEEPALIVE_MS
    handshake_timeout_s: float = 10.0
    """A handshake not finished by then is dropped with HANDSHAKE_TIMEOUT (section 7.3)."""
    fixed: FixedRandoms | None = None
    frame_tally: FrameTally | None = None
    """Counts every connection's frames by type (the server's metrics read it); None counts nothing."""


def random_bytes(fixed: FixedRandoms | None) -> bytes:
    """A hello random: fixed for vectors, else from the OS."""
    return fixed.random if fixed else os.urandom(RANDOM_LEN)


def new_share(spec: crypto.SuiteSpec, fixed: FixedRandoms | None) -> crypto.KeyShare:
    """An ephemeral key for `spec`'s group."""
    if fixed and spec.suite in fixed.shares:
        return spec.share_from_private(fixed.shares[spec.suite])
    return spec.new_share()


# --- transcript -----------------------------------------------------------------------------------------


class Transcript:
    """The handshake frames so far; hashes of prefixes are taken by copying a running hash."""

    __slots__ = ("_ctx", "hash_name")

    def __init__(self, hash_name: str) -> None:
        self.hash_name = hash_name
        self._ctx = crypto.hash_ctx(hash_name)

    def add(self, encoded_frame: bytes) -> None:
        """Append a whole encoded frame."""
        self._ctx.update(encoded_frame)

    def digest(self, extra: bytes = b"") -> bytes:
        """Hash of the transcript so far followed by `extra` (a frame's body prefix)."""
        ctx = self._ctx.copy()
        ctx.update(extra)
        return ctx.digest()


_U16 = struct.Struct("!H")


def prefix16(value: bytes) -> bytes:
    """`value` behind a u16 length, as Bytes16 fields are encoded."""
    return _U16.pack(len(value)) + value


def server_signed_prefix(key_type: int, public_key: bytes) -> bytes:
    """SERVER_FINISHED body bytes covered by the signature: key_type and public_key."""
    return _U16.pack(key_type) + prefix16(public_key)


def verify_signature(key_type: int, public: bytes, signature: bytes, message: bytes) -> crypto.VerifyKey:
    """Check a transcript signature; CryptoError(BAD_SIGNATURE) on any failure."""
    try:
        key = crypto.VerifyKey(KeyType(key_type), public)
    except ValueError:
        raise CryptoError(ErrorCode.BAD_SIGNATURE, f"unknown key type {key_type}") from None
    if not key.verify(signature, message):
        raise CryptoError(ErrorCode.BAD_SIGNATURE, "signature over the transcript does not verify")
    return key


def check_mac(expected: bytes, got: bytes, code: ErrorCode, what: str) -> None:
    """Constant-time compare of a MAC; CryptoError(code) on mismatch."""
    if not hmac.compare_digest(expected, got):
        raise CryptoError(code, f"{what} does not verify")


def choose_suite(offered: tuple[int, ...], preference: tuple[Suite, ...]) -> Suite:
    """The server's most preferred suite that the client offered; NO_COMMON_SUITE if none."""
    for suite in preference:
        if suite in offered:
            return suite
    raise RemoteProtocolError(ErrorCode.NO_COMMON_SUITE, f"offered {list(offered)}")


def clamp_keepalive(requested: int, config: ServerConfig) -> int:
    """The negotiated keepalive: the client's request within the server's bounds."""
    return max(config.min_keepalive_ms, min(requested, config.max_keepalive_ms))


def schedule_for(spec: crypto.SuiteSpec, psk: bytes | None) -> KeySchedule:
    """A fresh key schedule for `spec`, optionally seeded with a PSK."""
    return KeySchedule(spec.hash_name, psk)
