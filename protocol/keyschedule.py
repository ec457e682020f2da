"""The key schedule: TLS 1.3's (RFC 8446 section 7.1) with kefu's own labels (spec/PROTOCOL.md section 6.2).

Theory of operation::

             0 or PSK -> HKDF-Extract(salt=0)                        = early_secret
                              +-> Derive-Secret(., "res binder", "")  = binder_key
                              v
                         Derive-Secret(., "derived", "")
                              v
    0 or ECDHE -> HKDF-Extract(salt=.)                               = handshake_secret
                              +-> Derive-Secret(., "c hs traffic", CH..SH)
                              +-> Derive-Secret(., "s hs traffic", CH..SH)
                              v
                         Derive-Secret(., "derived", "")
                              v
             0 -> HKDF-Extract(salt=.)                               = master_secret
                              +-> Derive-Secret(., "c ap traffic", CH..SF)
                              +-> Derive-Secret(., "s ap traffic", CH..SF)
                              +-> Derive-Secret(., "res master", CH..CF)

HKDF-Expand-Label(secret, label, context, length) = HKDF-Expand(secret, HkdfLabel, length), with
HkdfLabel = length u16 || u8 len || "kefu1 " + label || u8 len || context. The "kefu1 " prefix (instead of
TLS's "tls13 ") keeps kefu keys from ever colliding with TLS keys derived from the same secret.
Hash is the suite's: SM3 (national) or SHA-256 (international); both are 32 bytes long.
"""

from __future__ import annotations

import struct

from . import crypto

LABEL_PREFIX = b"kefu1 "
_LEN16 = struct.Struct("!H")


_BYTE = [bytes((i,)) for i in range(256)]

_LABEL_HEADS: dict[tuple[bytes, int], bytes] = {}
"""HkdfLabel up to the context, per (label, length): a handful of labels, built once each."""


def _label_head(label: bytes, length: int) -> bytes:
    head = _LABEL_HEADS.get((label, length))
    if head is None:
        full = LABEL_PREFIX + label
        head = _LABEL_HEADS[(label, length)] = _LEN16.pack(length) + bytes((len(full),)) + full
    return head


def expand_label(hash_name: str, secret: bytes, label: bytes, context: bytes, length: int) -> bytes:
    """HKDF-Expand-Label with the "kefu1 " prefix."""
    info = _label_head(label, length) + _BYTE[len(context)] + context
    if length <= crypto.HASH_LEN:
        # One HKDF-Expand block: T(1) = HMAC(secret, info || 0x01).
        return crypto.hmac_digest(hash_name, secret, info + b"\x01")[:length]
    return crypto.hkdf_expand(hash_name, secret, info, length)


def derive_secret(hash_name: str, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """Derive-Secret(secret, label, messages) with the transcript hash already computed."""
    return expand_label(hash_name, secret, label, transcript_hash, crypto.HASH_LEN)


class KeySchedule:
    """The secrets of one handshake, advanced stage by stage."""

    __slots__ = ("_empty", "early_secret", "handshake_secret", "hash_name", "master_secret")

    def __init__(self, hash_name: str, psk: bytes | None = None) -> None:
        self.hash_name = hash_name
        self._empty = crypto.hash_digest(hash_name, b"")
        self.early_secret = crypto.hkdf_extract(hash_name, b"", psk or bytes(crypto.HASH_LEN))
        self.handshake_secret = b""
        self.master_secret = b""

    def binder_key(self) -> bytes:
        """The key of the resumption binder MAC (a finished key derived from "res binder")."""
        base = derive_secret(self.hash_name, self.early_secret, b"res binder", self._empty)
        return self.finished_key(base)

    def finished_key(self, base_secret: bytes) -> bytes:
        """finished_key = HKDF-Expand-Label(base, "finished", "", Hash.length)."""
        return expand_label(self.hash_name, base_secret, b"finished", b"", crypto.HASH_LEN)

    def add_shared_secret(self, shared: bytes | None) -> None:
        """Enter the handshake stage with the ECDHE secret (None: PSK-only resumption)."""
        derived = derive_secret(self.hash_name, self.early_secret, b"derived", self._empty)
        self.handshake_secret = crypto.hkdf_extract(self.hash_name, derived, shared or bytes(crypto.HASH_LEN))
        derived = derive_secret(self.hash_name, self.handshake_secret, b"derived", self._empty)
        self.master_secret = crypto.hkdf_extract(self.hash_name, derived, bytes(crypto.HASH_LEN))

    def handshake_traffic(self, th: bytes) -> tuple[bytes, bytes]:
        """(client, server) handshake traffic secrets for the transcript hash CH..SH."""
        hs = self.handshake_secret
        return (
            derive_secret(self.hash_name, hs, b"c hs traffic", th),
            derive_secret(self.hash_name, hs, b"s hs traffic", th),
        )

    def application_traffic(self, th: bytes) -> tuple[bytes, bytes]:
        """(client, server) application traffic secrets for the transcript hash CH..SF."""
        ms = self.master_secret
        return (
            derive_secret(self.hash_name, ms, b"c ap traffic", th),
            derive_secret(self.hash_name, ms, b"s ap traffic", th),
        )

    def resumption_secret(self, th: bytes) -> bytes:
        """The resumption master secret for the transcript hash CH..CF."""
        return derive_secret(self.hash_name, self.master_secret, b"res master", th)

    def ticket_psk(self, resumption_secret: bytes, nonce: bytes) -> bytes:
        """The PSK a ticket carries: HKDF-Expand-Label(res master, "resumption", nonce, Hash.length)."""
        return expand_label(self.hash_name, resumption_secret, b"resumption", nonce, crypto.HASH_LEN)
