"""The AEAD record layer (spec/PROTOCOL.md section 6.3).

Theory of operation: each direction has its own traffic secret, from which a key and an IV are expanded.
A RECORD frame's body is AEAD(key, nonce = IV xor seq, aad = the RECORD frame's 12-byte header, plaintext =
one or more whole inner frames). `seq` counts records under the current key from 0 and is never sent:
a replayed, dropped or reordered record fails authentication, and any failure closes the connection.

One seal covers a whole batch of frames, so a burst of writes costs one AEAD call.

Keys are updated before either limit below is reached (section 6.4): the sender appends a KEY_UPDATE frame
as the last frame of a record under the old key and seals everything after it under
next_secret = HKDF-Expand-Label(secret, "traffic upd", "", Hash.length). A receiver that sees a peer exceed
a limit fails with KEY_LIMIT_EXCEEDED.
"""

from __future__ import annotations

from . import crypto
from .errors import ErrorCode, RemoteProtocolError
from .frames import HEADER, PROTOCOL_VERSION, FrameType
from .keyschedule import expand_label

# Hot-path aliases: one global lookup instead of a module attribute or an enum member per record.
_NONCE_LEN = crypto.NONCE_LEN
_TAG_LEN = crypto.TAG_LEN
_RECORD = int(FrameType.RECORD)

RECORD_LIMIT = 1 << 20
"""Records under one key. GCM's confidentiality bound for 2^-57 advantage allows about 2^24.5 full-size
records (RFC 8446 section 5.5); 2^20 leaves a wide margin and is still rare (once per million records)."""

BYTE_LIMIT = 1 << 30
"""Plaintext bytes under one key, 1 GiB: the per-key data bound this protocol commits to (issue #2)."""

UPDATE_MARGIN = 64
"""Room kept under BYTE_LIMIT for the KEY_UPDATE record itself."""


_aead_ciphers = crypto.aead_ciphers
_aead_seal = crypto.aead_seal
_aead_open = crypto.aead_open


class Direction:
    """The keys and counters of one direction of a connection. It keeps its AEAD key's cipher objects itself
    (`crypto.aead_ciphers`) rather than an `Aead`: one object fewer for each direction of every idle session."""

    __slots__ = ("_aes", "_iv", "_sm4", "bytes", "secret", "seq", "spec")

    def __init__(self, spec: crypto.SuiteSpec, secret: bytes) -> None:
        self.spec = spec
        self._install(secret)

    def _install(self, secret: bytes) -> None:
        spec = self.spec
        self.secret = secret
        key = expand_label(spec.hash_name, secret, b"key", b"", spec.key_len)
        iv = expand_label(spec.hash_name, secret, b"iv", b"", crypto.NONCE_LEN)
        self._aes, self._sm4 = _aead_ciphers(spec.cipher, key)
        self._iv = int.from_bytes(iv, "big")
        self.seq = 0
        self.bytes = 0

    def update(self) -> None:
        """Move to the next traffic secret (KEY_UPDATE)."""
        self._install(expand_label(self.spec.hash_name, self.secret, b"traffic upd", b"", crypto.HASH_LEN))

    def _nonce(self) -> bytes:
        # seal and open inline this expression: a method call is a tenth of an AES-GCM open.
        return (self._iv ^ self.seq).to_bytes(_NONCE_LEN, "big")

    def needs_update(self, plaintext_len: int) -> bool:
        """True when sealing `plaintext_len` more bytes must first be preceded by a KEY_UPDATE."""
        return self.seq >= RECORD_LIMIT - 1 or self.bytes + plaintext_len > BYTE_LIMIT - UPDATE_MARGIN

    def seal(self, plaintext: bytes) -> bytes:
        """A whole RECORD frame (header and body) carrying `plaintext`."""
        header = HEADER.pack(len(plaintext) + _TAG_LEN, PROTOCOL_VERSION, _RECORD, 0, 0)
        seq = self.seq
        body = _aead_seal(self._aes, self._sm4, (self._iv ^ seq).to_bytes(_NONCE_LEN, "big"), plaintext, header)
        self.seq = seq + 1
        self.bytes += len(plaintext)
        return header + body

    def open(self, header: bytes, body: bytes) -> bytes:
        """The plaintext of a RECORD frame; CryptoError(BAD_RECORD_MAC) if it does not authenticate."""
        seq = self.seq
        if seq >= RECORD_LIMIT:
            raise RemoteProtocolError(ErrorCode.KEY_LIMIT_EXCEEDED, "too many records under one key")
        plaintext = _aead_open(self._aes, self._sm4, (self._iv ^ seq).to_bytes(_NONCE_LEN, "big"), body, header)
        self.seq = seq + 1
        self.bytes += len(plaintext)
        if self.bytes > BYTE_LIMIT:
            raise RemoteProtocolError(ErrorCode.KEY_LIMIT_EXCEEDED, "too many bytes under one key")
        return plaintext
