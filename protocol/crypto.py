"""Cipher suites and the primitives they are made of (spec/PROTOCOL.md section 6).

Theory of operation: a suite is a row of `SUITES`: its hash (for HKDF, HMAC, transcript and fingerprints),
its AEAD, its key-exchange group and its signature scheme. Everything above this module asks the suite
row for a primitive and never names an algorithm itself, so adding a suite is adding a row.

- national (RFC 8998): SM3, SM4-GCM, ECDHE on curveSM2, SM2-with-SM3 signatures (signer ID of RFC 8998);
- international (RFC 8446): SHA-256, AES-128-GCM, X25519, Ed25519.

SM2 runs in C (GmSSL for signatures, OpenSSL's EC_POINT_mul for ECDH) through `sm2`, which checks itself
against GB/T 32918 vectors at import. HMAC runs through OpenSSL's one-shot `hmac.digest`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from functools import partial
from typing import Protocol

import gmssl_pyx
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers import (
    AEADDecryptionContext,
    AEADEncryptionContext,
    Cipher,
    algorithms,
    modes,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import sm2
from .errors import CryptoError, ErrorCode, LocalProtocolError

__all__ = [
    "SUITES",
    "Aead",
    "KeyType",
    "SigningKey",
    "Suite",
    "SuiteSpec",
    "VerifyKey",
    "aead_ciphers",
    "aead_open",
    "aead_seal",
    "fingerprint",
    "hash_digest",
    "hkdf_expand",
    "hkdf_extract",
]

TAG_LEN = 16
"""Every suite's AEAD appends a 16-byte tag (full-length GCM tags; RFC 8998 and RFC 8446)."""

NONCE_LEN = 12
"""Every suite's AEAD takes a 96-bit nonce (GCM's native size)."""


class Suite(IntEnum):
    """Cipher suite identifiers, numbered as their TLS 1.3 counterparts (spec section 6.1)."""

    NATIONAL = 0x00C6
    """TLS_SM4_GCM_SM3 of RFC 8998 with curveSM2 and sm2sig_sm3."""
    INTERNATIONAL = 0x1301
    """TLS_AES_128_GCM_SHA256 of RFC 8446 with X25519 and Ed25519."""


class KeyType(IntEnum):
    """Long-term signing key types (spec section 6.4)."""

    SM2 = 1
    ED25519 = 2


# --- hashes and HMAC ------------------------------------------------------------------------------------

HASH_LEN = 32
"""SM3 and SHA-256 both give 32 bytes; the key schedule relies on it."""


def _openssl_hash_name(name: str) -> str:
    if name not in ("sm3", "sha256"):
        raise LocalProtocolError(f"unknown hash {name!r}")
    return name


_BLOCK_LEN = 64
"""SM3 and SHA-256 both hash 64-byte blocks: the HMAC pad length."""


def _blank_hash(name: str) -> hashlib._Hash | None:
    try:
        blank = hashlib.new(name)
    except ValueError:  # hashlib's libcrypto lacks the hash: the slow path then raises as before
        return None
    return blank if blank.block_size == _BLOCK_LEN and blank.digest_size == HASH_LEN else None


_BLANK_HASHES = {name: blank for name in ("sm3", "sha256") if (blank := _blank_hash(name)) is not None}
"""Fresh hash objects to copy: OpenSSL 3 looks a digest up by name on every hashlib.new or hmac.digest,
and copying a blank object skips that lookup. Measured on 48 bytes (bench/RESULTS.md): SM3 0.5 us against
0.9 us; HMAC-SM3 1.5 us against 2.1 us; HMAC-SHA256 0.7 us against 1.4 us. A resumed handshake computes
thirty HMACs on the server."""


def hash_digest(hash_name: str, data: bytes) -> bytes:
    """Return the digest of `data` with `hash_name` ("sm3" or "sha256")."""
    ctx = hash_ctx(hash_name)
    ctx.update(data)
    return ctx.digest()


_HMACS: dict[str, Callable[[bytes, bytes], bytes]] = {
    # GmSSL's one-shot HMAC-SM3 takes 0.84 us for a key-schedule input, OpenSSL's through hmac.digest 2.1 us;
    # a resumed national handshake computes some thirty of them. Both are checked against the GM/T 0042 vectors.
    "sm3": gmssl_pyx.sm3_hmac,
    "sha256": partial(hmac.digest, digest="sha256"),
}


def _composed_hmac_sha256() -> Callable[[bytes, bytes], bytes] | None:
    """HMAC-SHA256 (RFC 2104) composed from copies of a blank hashlib object: 0.7 us against hmac.digest's
    1.3 us, which looks the digest up by name in OpenSSL on every call. A resumed international handshake
    computes twenty of them. tests/protocol/test_crypto_hash_paths.py checks it against hmac.digest at every key
    shape, and the RFC 5869 vectors check it through HKDF."""
    try:
        blank = hashlib.new("sha256")
    except ValueError:
        return None
    ipad = bytes(x ^ 0x36 for x in range(256))
    opad = bytes(x ^ 0x5C for x in range(256))

    def digest(key: bytes, msg: bytes) -> bytes:
        if len(key) > blank.block_size:
            key = hashlib.sha256(key).digest()
        key = key.ljust(blank.block_size, b"\0")
        inner = blank.copy()
        inner.update(key.translate(ipad))
        inner.update(msg)
        outer = blank.copy()
        outer.update(key.translate(opad))
        outer.update(inner.digest())
        return outer.digest()

    return digest


if (_sha256 := _composed_hmac_sha256()) is not None:
    _HMACS["sha256"] = _sha256


_sm3_hmac = gmssl_pyx.sm3_hmac


def hmac_digest(hash_name: str, key: bytes, msg: bytes) -> bytes:
    """Return HMAC(key, msg) with `hash_name`."""
    if hash_name == "sm3":
        # GmSSL refuses an empty key; HMAC zero-pads keys to the block size, so b"\0" is the same key.
        return _sm3_hmac(key or b"\0", msg)  # type: ignore[no-any-return]
    function = _HMACS.get(hash_name)
    if function is None:
        raise LocalProtocolError(f"unknown hash {hash_name!r}")
    return function(key, msg)


def hkdf_extract(hash_name: str, salt: bytes, ikm: bytes) -> bytes:
    """HKDF-Extract of RFC 5869: HMAC(salt or zeros, ikm)."""
    return hmac_digest(hash_name, salt or bytes(HASH_LEN), ikm)


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand of RFC 5869."""
    if not 0 < length <= 255 * HASH_LEN:
        raise LocalProtocolError(f"HKDF-Expand length {length} out of range")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac_digest(hash_name, prk, block + info + bytes((counter,)))
        out += block
        counter += 1
    return out[:length]


def hash_ctx(hash_name: str) -> hashlib._Hash:
    """A running hash of `hash_name`, for transcripts."""
    blank = _BLANK_HASHES.get(hash_name)
    return hashlib.new(_openssl_hash_name(hash_name)) if blank is None else blank.copy()


# --- AEAD -----------------------------------------------------------------------------------------------

NewEncryptor = Callable[[algorithms.SM4, modes.GCM], AEADEncryptionContext]
NewDecryptor = Callable[[algorithms.SM4, modes.GCM], AEADDecryptionContext]


def _public_encryptor(algorithm: algorithms.SM4, mode: modes.GCM) -> AEADEncryptionContext:
    return Cipher(algorithm, mode).encryptor()


def _public_decryptor(algorithm: algorithms.SM4, mode: modes.GCM) -> AEADDecryptionContext:
    return Cipher(algorithm, mode).decryptor()


try:
    # cryptography >= 43 builds cipher contexts in Rust, and Cipher() only checks its arguments before it calls
    # these. SM4-GCM has no one-shot AEAD class (AESGCM's counterpart), so every record built a Cipher, and those
    # checks (isinstance against ABCs, the key size of the mode, per record although the key never changes) were
    # about a fifth of the server's event loop at 10,000 connections. Aead checks its key and mode once, in
    # __init__, and then calls the constructors directly; older releases take the public path.
    from cryptography.hazmat.bindings._rust import openssl as _rust_openssl

    _new_encryptor: NewEncryptor = _rust_openssl.ciphers.create_encryption_ctx
    _new_decryptor: NewDecryptor = _rust_openssl.ciphers.create_decryption_ctx
except (ImportError, AttributeError):  # pragma: no cover - depends on the installed cryptography
    _new_encryptor, _new_decryptor = _public_encryptor, _public_decryptor


def aead_ciphers(cipher: str, key: bytes) -> tuple[AESGCM | None, algorithms.SM4 | None]:
    """The cipher object of one AEAD key: (AESGCM, None) for "aes-gcm" (16- or 32-byte key), (None, SM4) for
    "sm4-gcm" (16-byte key). It holds the key; `aead_seal` and `aead_open` use it."""
    if cipher == "aes-gcm":
        return AESGCM(key), None
    if cipher == "sm4-gcm":
        if len(key) != 16:
            raise LocalProtocolError("SM4 keys are 16 bytes")
        sm4 = algorithms.SM4(key)  # immutable; made once rather than per record
        Cipher(sm4, modes.GCM(bytes(NONCE_LEN)))  # what Cipher() checks, checked once: see _new_encryptor
        return None, sm4
    raise LocalProtocolError(f"unknown AEAD {cipher!r}")


def aead_seal(aes: AESGCM | None, sm4: algorithms.SM4 | None, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate with the ciphers of `aead_ciphers`; returns ciphertext || tag."""
    if aes is not None:
        return aes.encrypt(nonce, plaintext, aad)
    assert sm4 is not None
    enc = _new_encryptor(sm4, modes.GCM(nonce))
    enc.authenticate_additional_data(aad)
    body = enc.update(plaintext) + enc.finalize()
    return body + enc.tag


def aead_open(aes: AESGCM | None, sm4: algorithms.SM4 | None, nonce: bytes, data: bytes, aad: bytes) -> bytes:
    """Authenticate and decrypt ciphertext || tag; raises CryptoError(BAD_RECORD_MAC) if it does not authenticate."""
    try:
        if aes is not None:
            return aes.decrypt(nonce, data, aad)  # raises InvalidTag for data shorter than the tag too
        if len(data) < TAG_LEN:
            raise InvalidTag
        split = len(data) - TAG_LEN
        assert sm4 is not None
        dec = _new_decryptor(sm4, modes.GCM(nonce, data[split:]))
        dec.authenticate_additional_data(aad)
        return dec.update(data[:split]) + dec.finalize()
    except InvalidTag:
        raise CryptoError(ErrorCode.BAD_RECORD_MAC, "record failed authentication") from None


class Aead:
    """One AEAD key: "aes-gcm" (16- or 32-byte key) or "sm4-gcm" (16-byte key); 12-byte nonces, 16-byte tags.

    `open` raises CryptoError(BAD_RECORD_MAC) on any authentication failure. (The record layer keeps the cipher
    objects in its own slots and calls `aead_seal`/`aead_open`: one object fewer per direction of every session.)
    """

    __slots__ = ("_aes", "_sm4")

    def __init__(self, cipher: str, key: bytes) -> None:
        self._aes, self._sm4 = aead_ciphers(cipher, key)

    def seal(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt and authenticate; returns ciphertext || tag."""
        return aead_seal(self._aes, self._sm4, nonce, plaintext, aad)

    def open(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        """Authenticate and decrypt ciphertext || tag; raises CryptoError if it does not authenticate."""
        return aead_open(self._aes, self._sm4, nonce, data, aad)


# --- key exchange ---------------------------------------------------------------------------------------


class KeyShare(Protocol):
    """An ephemeral key-exchange private key of one group."""

    def public_bytes(self) -> bytes:
        """The encoded public share sent on the wire."""
        ...

    def exchange(self, peer_public: bytes) -> bytes:
        """The shared secret with the peer's encoded share; CryptoError(BAD_KEY_SHARE) if it is invalid."""
        ...


class X25519Share:
    """An X25519 ephemeral key (RFC 7748); public shares are 32 bytes."""

    PUBLIC_LEN = 32
    __slots__ = ("_key",)

    def __init__(self, key: x25519.X25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> X25519Share:
        """A fresh random key."""
        return cls(x25519.X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> X25519Share:
        """A key from its 32-byte scalar (test vectors use fixed scalars)."""
        return cls(x25519.X25519PrivateKey.from_private_bytes(data))

    def public_bytes(self) -> bytes:
        """The 32-byte public share."""
        return self._key.public_key().public_bytes_raw()

    def exchange(self, peer_public: bytes) -> bytes:
        """The 32-byte shared secret; rejects bad lengths and the all-zero result (RFC 7748 section 6.1)."""
        if len(peer_public) != self.PUBLIC_LEN:
            raise CryptoError(ErrorCode.BAD_KEY_SHARE, "X25519 share must be 32 bytes")
        try:
            return self._key.exchange(x25519.X25519PublicKey.from_public_bytes(peer_public))
        except ValueError:
            raise CryptoError(ErrorCode.BAD_KEY_SHARE, "X25519 share gives a zero secret") from None


class SM2Share:
    """A curveSM2 ephemeral key (RFC 8998 ECDHE); public shares are 65-byte uncompressed points."""

    PUBLIC_LEN = 65
    __slots__ = ("_key",)

    def __init__(self, key: sm2.SM2PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SM2Share:
        """A fresh random key."""
        return cls(sm2.SM2PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, data: bytes) -> SM2Share:
        """A key from its 32-byte scalar (test vectors use fixed scalars)."""
        return cls(sm2.SM2PrivateKey.from_bytes(data))

    def public_bytes(self) -> bytes:
        """The 65-byte public point 04 || x || y."""
        return self._key.public_key().public_bytes()

    def exchange(self, peer_public: bytes) -> bytes:
        """The 32-byte x-coordinate of the shared point; rejects points not on curveSM2."""
        try:
            peer = sm2.SM2PublicKey.from_bytes(peer_public)
        except ValueError:
            raise CryptoError(ErrorCode.BAD_KEY_SHARE, "not a point of curveSM2") from None
        return self._key.exchange(peer)


# --- signatures -----------------------------------------------------------------------------------------


class VerifyKey:
    """A long-term public key of either type; `verify` returns False rather than raising."""

    __slots__ = ("_ed", "_sm2", "key_type", "public_bytes")

    def __init__(self, key_type: KeyType, public: bytes) -> None:
        self.key_type = key_type
        self.public_bytes = public
        self._ed: ed25519.Ed25519PublicKey | None = None
        self._sm2: sm2.SM2PublicKey | None = None
        try:
            if key_type is KeyType.ED25519:
                self._ed = ed25519.Ed25519PublicKey.from_public_bytes(public)
            else:
                self._sm2 = sm2.SM2PublicKey.from_bytes(public)
        except ValueError:
            raise CryptoError(ErrorCode.BAD_SIGNATURE, f"invalid {key_type.name} public key") from None

    def verify(self, signature: bytes, message: bytes) -> bool:
        """True when `signature` is this key's signature over `message`."""
        if self._sm2 is not None:
            return self._sm2.verify(signature, message, signer_id=sm2.SIGNER_ID_RFC8998)
        assert self._ed is not None
        try:
            self._ed.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def fingerprint(self) -> str:
        """The pin of this key, as `fingerprint` computes it."""
        return fingerprint(self.key_type, self.public_bytes)


class SigningKey:
    """A long-term private key: SM2 (signs with SM3 and the RFC 8998 signer ID) or Ed25519."""

    __slots__ = ("_ed", "_sm2", "key_type", "verify_key")

    def __init__(self, key_type: KeyType, private: bytes) -> None:
        self.key_type = key_type
        self._ed: ed25519.Ed25519PrivateKey | None = None
        self._sm2: sm2.SM2PrivateKey | None = None
        if key_type is KeyType.ED25519:
            self._ed = ed25519.Ed25519PrivateKey.from_private_bytes(private)
            public = self._ed.public_key().public_bytes_raw()
        else:
            self._sm2 = sm2.SM2PrivateKey.from_bytes(private)
            public = self._sm2.public_key().public_bytes()
        self.verify_key = VerifyKey(key_type, public)

    @classmethod
    def generate(cls, key_type: KeyType) -> SigningKey:
        """A fresh random long-term key."""
        if key_type is KeyType.ED25519:
            raw = ed25519.Ed25519PrivateKey.generate().private_bytes_raw()
        else:
            raw = sm2.SM2PrivateKey.generate().private_bytes()
        return cls(key_type, raw)

    def private_bytes(self) -> bytes:
        """The raw 32-byte private key (store it in a 0600 file)."""
        if self._ed is not None:
            return self._ed.private_bytes_raw()
        assert self._sm2 is not None
        return self._sm2.private_bytes()

    def sign(self, message: bytes, *, sm2_k: int | None = None) -> bytes:
        """Sign `message`. `sm2_k` fixes the SM2 nonce: only for reproducible test vectors."""
        if self._ed is not None:
            return self._ed.sign(message)
        assert self._sm2 is not None
        return self._sm2.sign(message, signer_id=sm2.SIGNER_ID_RFC8998, k=sm2_k)


def fingerprint(key_type: KeyType, public: bytes) -> str:
    """The pin of a public key: "sm2:" + hex(SM3(public)) or "ed25519:" + hex(SHA-256(public))."""
    if key_type is KeyType.SM2:
        return "sm2:" + hash_digest("sm3", public).hex()
    return "ed25519:" + hash_digest("sha256", public).hex()


# --- the suite table ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SuiteSpec:
    """One row of the suite table."""

    suite: Suite
    name: str
    hash_name: str
    cipher: str
    key_len: int
    key_type: KeyType
    share_len: int

    def new_share(self) -> KeyShare:
        """A fresh ephemeral key of this suite's group."""
        return SM2Share.generate() if self.key_type is KeyType.SM2 else X25519Share.generate()

    def share_from_private(self, private: bytes) -> KeyShare:
        """An ephemeral key from a fixed scalar (test vectors)."""
        if self.key_type is KeyType.SM2:
            return SM2Share.from_private_bytes(private)
        return X25519Share.from_private_bytes(private)


SUITES: dict[Suite, SuiteSpec] = {
    Suite.NATIONAL: SuiteSpec(Suite.NATIONAL, "national", "sm3", "sm4-gcm", 16, KeyType.SM2, SM2Share.PUBLIC_LEN),
    Suite.INTERNATIONAL: SuiteSpec(
        Suite.INTERNATIONAL,
        "international",
        "sha256",
        "aes-gcm",
        16,
        KeyType.ED25519,
        X25519Share.PUBLIC_LEN,
    ),
}
