"""SM2 on curveSM2: ECDH key exchange and SM2-with-SM3 signatures, plus the SM3 hash.

Theory of operation
-------------------
Every operation on a private key d or a signing nonce k runs on OpenSSL's libcrypto,
through `_openssl` (ctypes), in time that does not depend on the secret's value (issue
#13; `_openssl`'s docstring says which OpenSSL code does what):

* key generation (long-term and ECDHE ephemeral keys): d drawn uniformly from [1, n-2]
  by OpenSSL's private DRBG, then d·G on OpenSSL's Montgomery ladder;
* ECDH: d·Q on the same ladder;
* signing: k drawn from [1, n-1] by the DRBG, k·G on the ladder, and the arithmetic mod n
  with k and d on OpenSSL's constant-time BIGNUM primitives. GB/T 32918.2 s.6.1 A6,
  s = (1 + d)^-1 · (k - r·d), is computed as s = (1 + d)^-1 · (k + r) - r mod n, with
  (1 + d)^-1 computed once per key (a constant-time exponentiation) and cached beside d.
  r, s and e are public; x1 is public once r is published.

Public-key work is variable time and may be: signature verification s·G + t·P also runs
on OpenSSL, which validates every incoming point.

GmSSL (`gmssl_pyx`) computed key generation and signing here before. Its fixed-base k·G
skips the leading zero windows of k (measured: 117.2 us for 248-bit scalars, 119.0 us
for 256-bit), so each signature leaked the top bits of its nonce, the first step of a
lattice attack on the long-term key. GmSSL now only cross-checks: its verifier must
accept the published vector in the import-time self-test, and the tests check that it
verifies our signatures.

The test vectors with fixed randoms pass a nonce k to `SM2PrivateKey.sign`; that takes the
very same constant-time path with the given k instead of a drawn one, so vectors are
reproducible byte for byte. Only `FixedRandoms` (spec/gen_vectors.py and tests) pass one:
a reused k reveals the key.

Signatures are SM2-with-SM3 (GB/T 32918.2 s.6, s.7): e = SM3(Z || M), where
Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA) binds the signer's identity and key.
Z depends only on (public key, signer id), so each public key caches it per signer id.
Signatures travel as DER SEQUENCE { INTEGER r, INTEGER s }, decoded strictly.

ECDH follows RFC 8998 (TLS 1.3 ECDHE with curveSM2): the shared secret is the 32-byte
big-endian x-coordinate of d·Q.

Verification runs on OpenSSL rather than `gmssl_pyx.sm2_verify_sm3_digest` for two
measured reasons: GmSSL writes two lines to the process's C-level stderr on every failed
verification (so any peer could flood the journal), and OpenSSL's interleaved double
multiplication is about twice as fast.

The module runs `self_test()` when imported and raises CryptoSelfTestError if any known
answer from GB/T 32918.5-2017 is not reproduced: a broken libcrypto or GmSSL build then
refuses to run instead of producing wrong keys or signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import gmssl_pyx

from . import _openssl
from .errors import CryptoSelfTestError

__all__ = [
    "DEFAULT_SIGNER_ID",
    "SIGNER_ID_RFC8998",
    "CryptoSelfTestError",
    "SM2PrivateKey",
    "SM2PublicKey",
    "der_decode_signature",
    "der_encode_signature",
    "self_test",
    "sm3",
]

SIGNER_ID_RFC8998: Final[bytes] = b"TLSv1.3+GM+Cipher+Suite"  # RFC 8998 s.3.2.1
DEFAULT_SIGNER_ID: Final[bytes] = b"1234567812345678"  # GB/T 32918 / GM/T 0009 default ID

# curveSM2, GB/T 32918.5-2017 s.2 (== RFC 8998 s.2.2 curveSM2).
_A: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
_B: Final = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
_GX: Final = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
_GY: Final = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0
_N: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123  # group order

SCALAR_BYTES: Final = _openssl.SCALAR_BYTES
PUBLIC_KEY_BYTES: Final = _openssl.POINT_BYTES
_CURVE_BYTES: Final = b"".join(v.to_bytes(SCALAR_BYTES, "big") for v in (_A, _B, _GX, _GY))

# ENTL is a 16-bit count of the signer id's *bits* (GB/T 32918.2 s.5.5), so ids are
# at most 65535 // 8 bytes long.
MAX_SIGNER_ID_BYTES: Final = 0xFFFF // 8
# A key meets one or two signer ids in practice (RFC 8998's and the GB/T default); past
# this many, Z is recomputed rather than cached, so odd ids cannot grow memory.
Z_CACHE_MAX_ENTRIES: Final = 4
_MAX_PRIVATE: Final = (_N - 2).to_bytes(SCALAR_BYTES, "big")  # d <= n-2: 1 + d is invertible
_MAX_NONCE: Final = (_N - 1).to_bytes(SCALAR_BYTES, "big")  # k in [1, n-1] (s.6.1 A3)
_ONE: Final = (1).to_bytes(SCALAR_BYTES, "big")
_ZERO: Final = bytes(SCALAR_BYTES)
# A drawn k is redrawn when r == 0, r + k == n or s == 0, each of probability ~2^-256:
# 4 unusable draws in a row mean a broken DRBG or libcrypto, not bad luck.
_SIGN_ATTEMPTS: Final = 4

# DER (X.690 s.8.3, s.10.1): SEQUENCE { INTEGER r, INTEGER s }, short-form lengths only.
_DER_SEQUENCE: Final = 0x30
_DER_INTEGER: Final = 0x02
_DER_INTEGER_MAX: Final = SCALAR_BYTES + 1  # a 256-bit value may need one 0x00 sign byte
MAX_SIGNATURE_BYTES: Final = 2 + 2 * (2 + _DER_INTEGER_MAX)  # 72


# --- SM3 --------------------------------------------------------------------------------


def _sm3_cryptography(data: bytes) -> bytes:
    """SM3 through `cryptography` (fallback when hashlib's OpenSSL has no SM3)."""
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415 - fallback only

    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _select_sm3() -> Callable[[bytes], bytes]:
    """Pick the faster SM3: copying a blank hashlib object beats both `hashlib.new` and
    `cryptography` (measured on 100 bytes: 0.64 us vs 1.04 us vs 1.26 us)."""
    try:
        blank = hashlib.new("sm3")
    except ValueError:  # hashlib's libcrypto lacks SM3 (FIPS builds, LibreSSL)
        return _sm3_cryptography

    def sm3_hashlib(data: bytes) -> bytes:
        digest = blank.copy()
        digest.update(data)
        return digest.digest()

    return sm3_hashlib


_sm3: Final = _select_sm3()


def sm3(data: bytes) -> bytes:
    """Return the 32-byte SM3 digest (GB/T 32905-2016) of `data`."""
    return _sm3(data)


# --- DER signatures -----------------------------------------------------------------------


def _check_scalar_range(value: int, what: str) -> None:
    """SM2 signature components live in [1, n-1] (GB/T 32918.2 s.7.1 B1, B2)."""
    if not 1 <= value < _N:
        raise ValueError(f"SM2 signature {what} is out of range [1, n-1]")


def _der_integer(value: int) -> bytes:
    """Minimal DER INTEGER of a non-negative value (a 0x00 byte only if the top bit is set)."""
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return bytes((_DER_INTEGER, len(body))) + body


def der_encode_signature(r: int, s: int) -> bytes:
    """Encode (r, s) as DER SEQUENCE { INTEGER r, INTEGER s }; ValueError if out of range."""
    _check_scalar_range(r, "r")
    _check_scalar_range(s, "s")
    body = _der_integer(r) + _der_integer(s)
    return bytes((_DER_SEQUENCE, len(body))) + body


def _der_read_integer(data: bytes, offset: int) -> tuple[int, int]:
    """Read one strict-DER non-negative INTEGER at `offset`; return (value, next offset)."""
    if data[offset : offset + 1] != bytes((_DER_INTEGER,)) or offset + 2 > len(data):
        raise ValueError("DER: INTEGER expected")
    length = data[offset + 1]
    body = data[offset + 2 : offset + 2 + length]
    if not 1 <= length <= _DER_INTEGER_MAX or len(body) != length:
        raise ValueError("DER: bad INTEGER length")
    if body[0] & 0x80:
        raise ValueError("DER: negative INTEGER")
    if length > 1 and body[0] == 0 and not body[1] & 0x80:
        raise ValueError("DER: INTEGER is not minimally encoded")
    return int.from_bytes(body, "big"), offset + 2 + length


def der_decode_signature(signature: bytes) -> tuple[int, int]:
    """Decode a strict-DER SM2 signature into (r, s), each in [1, n-1]; else ValueError."""
    if not 2 <= len(signature) <= MAX_SIGNATURE_BYTES or signature[0] != _DER_SEQUENCE:
        raise ValueError("DER: SEQUENCE expected")
    if signature[1] != len(signature) - 2:
        raise ValueError("DER: SEQUENCE length does not match the input")
    r, offset = _der_read_integer(signature, 2)
    s, offset = _der_read_integer(signature, offset)
    if offset != len(signature):
        raise ValueError("DER: trailing bytes after the signature")
    _check_scalar_range(r, "r")
    _check_scalar_range(s, "s")
    return r, s


# --- keys -------------------------------------------------------------------------------


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _scalar_bytes(value: int) -> bytes:
    return value.to_bytes(SCALAR_BYTES, "big")


def _x_coordinate(point: bytes) -> bytes:
    """The x-coordinate of a 65-byte uncompressed point."""
    return point[1 : 1 + SCALAR_BYTES]


class SM2PublicKey:
    """A point on curveSM2 other than infinity, with its per-signer-id Z values cached."""

    __slots__ = ("_encoded", "_z_cache")

    def __init__(self, encoded: bytes) -> None:
        """Wrap a 65-byte uncompressed point; prefer `from_bytes`, which says what it checks."""
        if not _openssl.is_valid_point(encoded):
            raise ValueError("not an uncompressed point on curveSM2 (65 bytes, 04 || x || y)")
        self._encoded: Final = bytes(encoded)
        self._z_cache: Final[dict[bytes, bytes]] = {}

    @classmethod
    def from_bytes(cls, data: bytes) -> SM2PublicKey:
        """Parse 04 || x || y (65 bytes); ValueError if the length, prefix or point is bad."""
        return cls(data)

    def public_bytes(self) -> bytes:
        """The 65-byte uncompressed encoding 04 || x || y."""
        return self._encoded

    def z_value(self, signer_id: bytes) -> bytes:
        """Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA), cached per signer id."""
        z = self._z_cache.get(signer_id)
        if z is None:
            z = _compute_z(self._encoded, signer_id)
            if len(self._z_cache) < Z_CACHE_MAX_ENTRIES:
                self._z_cache[bytes(signer_id)] = z
        return z

    def verify(self, signature: bytes, message: bytes, *, signer_id: bytes) -> bool:
        """Whether `signature` (DER) is this key's SM2-with-SM3 signature of `message`.

        Malformed or out-of-range signatures return False; they never raise.
        """
        try:
            r, s = der_decode_signature(signature)
        except ValueError:
            return False
        e = sm3(self.z_value(signer_id) + message)
        return _verify_digest(self._encoded, e, r, s)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SM2PublicKey) and other._encoded == self._encoded

    def __hash__(self) -> int:
        return hash(self._encoded)

    def __repr__(self) -> str:
        return f"SM2PublicKey({self._encoded.hex()})"


class SM2PrivateKey:
    """A secret scalar d in [1, n-2] with its public key d·G."""

    __slots__ = ("_inverse", "_public", "_scalar")

    def __init__(self, scalar: bytes, public: SM2PublicKey) -> None:
        """Pair a checked scalar with its public key; use `generate` or `from_bytes`."""
        self._scalar: Final = scalar
        self._public: Final = public
        self._inverse: bytes | None = None  # (1 + d)^-1 mod n, computed at the first signature

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        """A fresh random key: d uniform in [1, n-2], d·G on OpenSSL's ladder (about 250 us)."""
        return cls._from_scalar(_openssl.random_scalar(_MAX_PRIVATE))

    @classmethod
    def from_bytes(cls, data: bytes) -> SM2PrivateKey:
        """Load a 32-byte big-endian scalar d, 1 <= d <= n-2; the public key is d·G."""
        if not _is_private_scalar(data):
            raise ValueError("an SM2 private key is 32 bytes, big-endian, in [1, n-2]")
        return cls._from_scalar(bytes(data))

    @classmethod
    def _from_scalar(cls, scalar: bytes) -> SM2PrivateKey:
        """The key for a scalar already known to be in [1, n-2]: what `generate` runs on d."""
        return cls(scalar, SM2PublicKey(_openssl.mul_base(scalar)))

    def private_bytes(self) -> bytes:
        """The 32-byte big-endian scalar d."""
        return self._scalar

    def public_key(self) -> SM2PublicKey:
        """The public key d·G."""
        return self._public

    def exchange(self, peer: SM2PublicKey) -> bytes:
        """RFC 8998 ECDHE shared secret: the 32-byte x-coordinate of d·Q."""
        return _x_coordinate(_openssl.mul_point(self._scalar, peer.public_bytes()))

    def sign(self, message: bytes, *, signer_id: bytes, k: int | None = None) -> bytes:
        """SM2-with-SM3 signature of `message`, DER-encoded, in constant time.

        Production callers leave `k` out: a fresh nonce is drawn for every signature.
        Passing `k` signs with that nonce on the same code path, only so that test vectors
        with fixed randoms are reproducible (ValueError if k is out of [1, n-1] or
        unusable for this message); reusing a k reveals the key.
        """
        e = sm3(self._public.z_value(signer_id) + message)
        if k is None:
            return der_encode_signature(*_sign_digest(self._sign_inverse(), e))
        return der_encode_signature(*_sign_digest_with_fixed_nonce(self._sign_inverse(), e, k))

    def _sign_inverse(self) -> bytes:
        """(1 + d)^-1 mod n, computed once in constant time and kept, like d, in memory."""
        inverse = self._inverse
        if inverse is None:  # two threads may both compute it: the same value, harmlessly
            inverse = _openssl.order_inverse(_openssl.order_add(self._scalar, _ONE))
            self._inverse = inverse
        return inverse

    def __repr__(self) -> str:
        return f"SM2PrivateKey(public={self._public.public_bytes().hex()})"


def _is_private_scalar(data: bytes) -> bool:
    """Whether `data` is 32 bytes encoding d with 1 <= d <= n-2 (n-1 has no (1+d)^-1)."""
    return len(data) == SCALAR_BYTES and 1 <= _int(data) <= _N - 2


def _compute_z(encoded_public: bytes, signer_id: bytes) -> bytes:
    """GB/T 32918.2 s.5.5: Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)."""
    if len(signer_id) > MAX_SIGNER_ID_BYTES:
        raise ValueError(f"an SM2 signer id is at most {MAX_SIGNER_ID_BYTES} bytes")
    entl = (8 * len(signer_id)).to_bytes(2, "big")
    return sm3(entl + signer_id + _CURVE_BYTES + encoded_public[1:])


def _sign_digest_with_nonce(inverse: bytes, e: bytes, k: bytes) -> tuple[int, int] | None:
    """GB/T 32918.2 s.6.1 A4-A6 for digest e and nonce k in [1, n-1], with (1 + d)^-1 given.

    None if k is unusable (r == 0, r + k == n or s == 0). k, k + r and (1 + d)^-1 stay
    bytes handled by OpenSSL's constant-time code; only public values (x1, r, s) become
    Python integers. A6 as s = (1 + d)^-1 · (k + r) - r equals (1 + d)^-1 · (k - r·d).
    """
    x1 = _int(_x_coordinate(_openssl.mul_base(k)))
    r = (_int(e) + x1) % _N
    if r == 0:
        return None
    k_plus_r = _openssl.order_add(k, _scalar_bytes(r))
    if hmac.compare_digest(k_plus_r, _ZERO):  # r + k == n; compared without early exit
        return None
    s = _int(_openssl.order_add(_openssl.order_mul(inverse, k_plus_r), _scalar_bytes(_N - r)))
    return None if s == 0 else (r, s)


def _sign_digest(inverse: bytes, e: bytes) -> tuple[int, int]:
    """Sign digest e with a fresh nonce from OpenSSL's private DRBG: the production path."""
    for _ in range(_SIGN_ATTEMPTS):
        signature = _sign_digest_with_nonce(inverse, e, _openssl.random_scalar(_MAX_NONCE))
        if signature is not None:
            return signature
    raise CryptoSelfTestError("SM2 signing drew unusable nonces k again and again")


def _sign_digest_with_fixed_nonce(inverse: bytes, e: bytes, k: int) -> tuple[int, int]:
    """Sign digest e with a caller-chosen k: test vectors only; ValueError if k is unusable."""
    if not 1 <= k < _N:
        raise ValueError("the SM2 nonce k must be in [1, n-1]")
    signature = _sign_digest_with_nonce(inverse, e, _scalar_bytes(k))
    if signature is None:
        raise ValueError("this nonce k gives r == 0, r + k == n or s == 0; choose another")
    return signature


def _verify_digest(encoded_public: bytes, e: bytes, r: int, s: int) -> bool:
    """GB/T 32918.2 s.7.1 B5-B7 for r, s already in [1, n-1]: (e + x1) mod n == r."""
    t = (r + s) % _N
    if t == 0:
        return False
    try:
        point = _openssl.mul_add_public(_scalar_bytes(s), _scalar_bytes(t), encoded_public)
    except ValueError:  # s·G + t·P is the point at infinity
        return False
    return (_int(e) + _int(_x_coordinate(point))) % _N == r


# --- self-test --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SignVector:
    """An SM2-with-SM3 known answer on curveSM2; hex fields as in crypto-known-answers.json."""

    d: str
    pub: str  # x || y, without the 04 prefix
    uid: str
    msg: str
    k: str
    z: str
    e: str
    r: str
    s: str


@dataclass(frozen=True, slots=True)
class _ExchangeVector:
    """Key pairs from an SM2 key-exchange known answer on curveSM2 (hex, pub without 04)."""

    d_a: str
    p_a: str
    d_b: str
    p_b: str


# GB/T 32918.5-2017 Annex A (== GM/T 0003.5-2012), recommended curve, default signer id;
# spec/vectors/crypto-known-answers.json id "sm2-sign-gbt32918.5-annexA".
_ANNEX_A_SIGN = _SignVector(
    d="3945208f7b2144b13f36e38ac6d39f95889393692860b51a42fb81ef4df7c5b8",
    pub="09f9df311e5421a150dd7d161e4bc5c672179fad1833fc076bb08ff356f35020"
    "ccea490ce26775a52dc6ea718cc1aa600aed05fbf35e084a6632f6072da9ad13",
    uid="31323334353637383132333435363738",
    msg="6d65737361676520646967657374",
    k="59276e27d506861a16680f3ad9c02dccef3cc1fa3cdbe4ce6d54b80deac1bc21",
    z="b2e14c5c79c6df5b85f4fe7ed8db7a262b9da7e07ccb0ea9f4747b8ccda8a4f3",
    e="f0b43e94ba45accaace692ed534382eb17e6ab5a19ce7b31f4486fdfc0d28640",
    r="f5a03b0648d2c4630eeac513e1bb81a15944da3827d5b74143ac7eaceee720b3",
    s="b1b6aa29df212fd8763182bc0d421ca1bb9038fd1f7f42d4840b69c485bbc1aa",
)

# GB/T 32918.5-2017 Annex B (== GM/T 0003.5-2012), recommended-curve key exchange;
# spec/vectors/crypto-known-answers.json id "sm2-kex-gbt32918.5-annexB".
_ANNEX_B_KEX = _ExchangeVector(
    d_a="81eb26e941bb5af16df116495f90695272ae2cd63d6c4ae1678418be48230029",
    p_a="160e12897df4edb61dd812feb96748fbd3ccf4ffe26aa6f6db9540af49c94232"
    "4a7dad08bb9a459531694beb20aa489d6649975e1bfcf8c4741b78b4b223007f",
    d_b="785129917d45a9ea5437a59356b82338eaadda6ceb199088f14ae10defa229b5",
    p_b="6ae848c57c53c7b1b5fa99eb2286af078ba64c64591b8b566f7357d576f16dfb"
    "ee489d771621a27b36c5c7992062e9cd09a9264386f3fbea54dff69305621c4d",
)

_SELF_TEST_MESSAGE_BYTES: Final = 32  # random message for the random-nonce round trip


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise CryptoSelfTestError(f"SM2 self-test failed: {what}")


def _flip_last_bit(data: bytes) -> bytes:
    return data[:-1] + bytes((data[-1] ^ 1,))


def _check_sign_vector(v: _SignVector) -> SM2PrivateKey:
    """d·G, Z, e and the fixed-k (r, s) of `v`; both verifiers accept, ours rejects a flip."""
    key = SM2PrivateKey.from_bytes(bytes.fromhex(v.d))
    public = key.public_key()
    uid, msg = bytes.fromhex(v.uid), bytes.fromhex(v.msg)
    _expect(public.public_bytes()[1:] == bytes.fromhex(v.pub), "d·G")
    _expect(public.z_value(uid) == bytes.fromhex(v.z), "Z")
    e = sm3(public.z_value(uid) + msg)
    _expect(e == bytes.fromhex(v.e), "e = SM3(Z || M)")
    signature = key.sign(msg, signer_id=uid, k=int(v.k, 16))
    _expect(der_decode_signature(signature) == (int(v.r, 16), int(v.s, 16)), "fixed-k (r, s)")
    _expect(gmssl_pyx.sm2_verify_sm3_digest(public.public_bytes()[1:], e, signature), "GmSSL")
    _expect(public.verify(signature, msg, signer_id=uid), "verify")
    _expect(not public.verify(_flip_last_bit(signature), msg, signer_id=uid), "flipped bit")
    return key


def _check_round_trip(key: SM2PrivateKey) -> None:
    """A random-nonce signature verifies under the RFC 8998 signer id, with both verifiers."""
    message = os.urandom(_SELF_TEST_MESSAGE_BYTES)
    signature = key.sign(message, signer_id=SIGNER_ID_RFC8998)
    public = key.public_key()
    _expect(public.verify(signature, message, signer_id=SIGNER_ID_RFC8998), "k random")
    e = sm3(public.z_value(SIGNER_ID_RFC8998) + message)
    _expect(gmssl_pyx.sm2_verify_sm3_digest(public.public_bytes()[1:], e, signature), "GmSSL, k random")


def _check_exchange(v: _ExchangeVector) -> None:
    """dA·G == PA, dB·G == PB and dA·(dB·G) == dB·(dA·G); n is the order OpenSSL uses."""
    _expect(_openssl.ORDER == _N, "group order n")
    a = SM2PrivateKey.from_bytes(bytes.fromhex(v.d_a))
    b = SM2PrivateKey.from_bytes(bytes.fromhex(v.d_b))
    _expect(a.public_key().public_bytes()[1:] == bytes.fromhex(v.p_a), "dA·G")
    _expect(b.public_key().public_bytes()[1:] == bytes.fromhex(v.p_b), "dB·G")
    _expect(a.exchange(b.public_key()) == b.exchange(a.public_key()), "ECDH symmetry")


def self_test() -> None:
    """Check SM3, SM2 signing, verification and ECDH against GB/T 32918.5-2017 answers.

    Raises CryptoSelfTestError on any mismatch or unexpected exception (about 3 ms).
    """
    try:
        key = _check_sign_vector(_ANNEX_A_SIGN)
        _check_round_trip(key)
        _check_exchange(_ANNEX_B_KEX)
    except CryptoSelfTestError:
        raise
    except Exception as exc:
        raise CryptoSelfTestError(f"SM2 self-test failed: {exc!r}") from exc


self_test()
