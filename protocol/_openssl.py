"""Point and scalar arithmetic on curveSM2 through OpenSSL's libcrypto, called with ctypes.

Theory of operation
-------------------
`cryptography` exposes no SM2 curve, and pure-Python scalar multiplication costs tens of
milliseconds, so the operations kefu needs are delegated to the system libcrypto:

* `mul_base(d)`            d·G, key generation and the signing nonce's k·G (secret scalar);
* `mul_point(d, Q)`        d·Q, ECDH (secret scalar, peer point);
* `mul_add_public(u, v, Q)`  u·G + v·Q, signature verification (public scalars only);
* `random_scalar(upper)`   a secret uniform in [1, upper], from OpenSSL's private DRBG;
* `order_add`, `order_mul`, `order_inverse`: arithmetic mod the group order n on secrets.

Points cross this boundary only as 65-byte uncompressed encodings (04 || x || y).
`EC_POINT_oct2point` is the single way in, and OpenSSL checks there that the point lies
on the curve; curveSM2 has cofactor 1, so every point on it is in the prime-order group.
The point at infinity is refused both in and out.

Nothing here takes a time that depends on a secret scalar's value (issue #13):

* d·G and d·Q: curveSM2 has no dedicated EC_METHOD in OpenSSL 3.0 (the generic
  `EC_GFp_mont_method`, no `mul` of its own), so EC_POINT_mul with one scalar goes through
  `ossl_ec_wNAF_mul` straight to the Montgomery ladder `ossl_ec_scalar_mul_ladder`,
  whatever the BIGNUM flags and whether or not the group has precomputation. The ladder
  copies the scalar into a BIGNUM expanded to a fixed width, pads it to a fixed bit length
  (k + n or k + 2·n, picked by a constant-time swap so that bit 256 is set), runs the 256
  ladder steps below that bit with conditional swaps, and first randomises the projective
  coordinates of both ladder points. A short scalar costs what a full one does
  (bench/bench_sm2_timing.py measures it). In 3.0 the ladder step's field subtractions
  (`BN_mod_sub_quick`) still branch on a sign, but of blinded coordinates, fresh per call.
* mod n: `BN_mod_add_quick` (masked add and conditional subtract, fixed length),
  `BN_mod_mul_montgomery` (`bn_mul_mont` on fixed-length operands, masked final
  subtraction) and `BN_mod_exp_mont_consttime` (fixed window, scatter/gather tables).
  The general `BN_mod_mul`/`BN_mod_sub`/`BN_nnmod` are avoided: `BN_nnmod` adds n only
  when the remainder is negative, a branch on the secret.
* `BN_bn2binpad` writes a fixed 32 bytes without reading the value's length.

What remains is word-granular: `BN_bin2bn` trims leading zero 64-bit words, so a scalar
below 2^192 (probability 2^-64 for a random one) takes marginally different paths in
BN_copy and bn_mul_mont. OpenSSL's own ECDSA and SM2 signing accept the same.

Secret scalars get `BN_FLG_CONSTTIME` (the ladder sets it on its own copy anyway); they
are wiped with `BN_clear_free`, result points with `EC_POINT_clear_free`, and the
ctypes buffers that carried a secret out are zeroed.

The EC_GROUP is a read-only module-level singleton, safe to share between threads. ctypes
releases the GIL during foreign calls, so the scratch `BN_CTX` (not thread-safe) is made
per call; its cost is negligible next to a 256-bit multiplication. Every failure clears
OpenSSL's per-thread error queue, so no stale error leaks into the `ssl` module, which
shares this libcrypto in the same process.
"""

from __future__ import annotations

import ctypes
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, NoReturn

__all__ = [
    "ORDER",
    "POINT_BYTES",
    "SCALAR_BYTES",
    "is_valid_point",
    "mul_add_public",
    "mul_base",
    "mul_point",
    "order_add",
    "order_inverse",
    "order_mul",
    "random_scalar",
]

NID_SM2: Final = 1172  # openssl/obj_mac.h NID_sm2: the GB/T 32918.5 curve (RFC 8998 curveSM2)
BN_FLG_CONSTTIME: Final = 0x04  # openssl/bn.h: use constant-time BIGNUM code paths
POINT_CONVERSION_UNCOMPRESSED: Final = 4  # openssl/ec.h: 04 || x || y
SCALAR_BYTES: Final = 32  # curveSM2 is a 256-bit curve: scalars and coordinates are 32 bytes
POINT_BYTES: Final = 1 + 2 * SCALAR_BYTES  # uncompressed encoding: prefix, x, y

# Last-resort sonames when neither find_library nor the `_ssl` extension yields a libcrypto.
_FALLBACK_SONAMES: Final = ("libcrypto.so.3", "libcrypto.3.dylib", "libcrypto.so.1.1")

_PTR = ctypes.c_void_p  # every OpenSSL pointer, including byte buffers: 64-bit safe
_SIGNATURES: Final[dict[str, tuple[Any, list[Any]]]] = {
    "BN_CTX_new": (_PTR, []),
    "BN_CTX_free": (None, [_PTR]),
    "BN_bin2bn": (_PTR, [_PTR, ctypes.c_int, _PTR]),
    "BN_set_flags": (None, [_PTR, ctypes.c_int]),
    "BN_clear_free": (None, [_PTR]),
    "BN_new": (_PTR, []),
    "BN_value_one": (_PTR, []),
    "BN_bn2binpad": (ctypes.c_int, [_PTR, _PTR, ctypes.c_int]),
    "BN_priv_rand_range": (ctypes.c_int, [_PTR, _PTR]),
    "BN_mod_add_quick": (ctypes.c_int, [_PTR, _PTR, _PTR, _PTR]),
    "BN_MONT_CTX_new": (_PTR, []),
    "BN_MONT_CTX_set": (ctypes.c_int, [_PTR, _PTR, _PTR]),
    "BN_to_montgomery": (ctypes.c_int, [_PTR, _PTR, _PTR, _PTR]),
    "BN_mod_mul_montgomery": (ctypes.c_int, [_PTR, _PTR, _PTR, _PTR, _PTR]),
    "BN_mod_exp_mont_consttime": (ctypes.c_int, [_PTR, _PTR, _PTR, _PTR, _PTR, _PTR]),
    "EC_GROUP_new_by_curve_name": (_PTR, [ctypes.c_int]),
    "EC_GROUP_get0_order": (_PTR, [_PTR]),
    "EC_POINT_new": (_PTR, [_PTR]),
    "EC_POINT_clear_free": (None, [_PTR]),
    "EC_POINT_oct2point": (ctypes.c_int, [_PTR, _PTR, _PTR, ctypes.c_size_t, _PTR]),
    "EC_POINT_point2oct": (
        ctypes.c_size_t,
        [_PTR, _PTR, ctypes.c_int, _PTR, ctypes.c_size_t, _PTR],
    ),
    "EC_POINT_mul": (ctypes.c_int, [_PTR, _PTR, _PTR, _PTR, _PTR, _PTR]),
    "EC_POINT_is_at_infinity": (ctypes.c_int, [_PTR, _PTR]),
    "ERR_clear_error": (None, []),
}


def _candidate_libraries() -> Iterator[str]:
    """Yield library names to try: `_ssl`'s own libcrypto, fixed sonames, then find_library's answer.

    Opening the `_ssl` extension with dlopen (without importing it) makes its libcrypto
    dependency resolvable through the handle, and importing `_ssl` would pull in `_socket`.
    find_library comes last because it runs `ldconfig -p` in a subprocess (about 12 ms cold).
    """
    spec = importlib.util.find_spec("_ssl")
    if spec is not None and spec.origin:
        yield spec.origin
    yield from _FALLBACK_SONAMES
    import ctypes.util  # noqa: PLC0415 - imports subprocess; only needed on unusual systems

    found = ctypes.util.find_library("crypto")
    if found:
        yield found


def _load_libcrypto() -> ctypes.CDLL:
    """Open the first candidate that exports the EC functions we need, declaring them."""
    for name in _candidate_libraries():
        try:
            lib = ctypes.CDLL(name)
            _declare(lib)
        except (OSError, AttributeError):
            continue
        return lib
    raise ImportError("kefu.protocol needs OpenSSL's libcrypto (>= 1.1.1) with SM2 support")


def _declare(lib: ctypes.CDLL) -> None:
    """Set restype/argtypes on every function we call; AttributeError if one is missing."""
    for name, (restype, argtypes) in _SIGNATURES.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes


_lib: Final = _load_libcrypto()


def _fail(message: str) -> NoReturn:
    """Drop OpenSSL's queued errors for this thread and raise ValueError."""
    _lib.ERR_clear_error()
    raise ValueError(message)


def _allocated(pointer: int | None, what: str) -> int:
    """Return a freshly allocated OpenSSL object, or raise MemoryError if it is NULL."""
    if not pointer:
        _lib.ERR_clear_error()
        raise MemoryError(f"OpenSSL {what} failed")
    return pointer


def _new_group() -> int:
    """Build the curveSM2 EC_GROUP; it lives as long as the process."""
    group: int | None = _lib.EC_GROUP_new_by_curve_name(NID_SM2)
    if not group:
        _lib.ERR_clear_error()
        raise ImportError("this libcrypto has no curveSM2 (NID_sm2); OpenSSL >= 1.1.1 needed")
    return group


_GROUP: Final = _new_group()


@contextmanager
def _bn_ctx() -> Iterator[int]:
    """A scratch BN_CTX for one call."""
    ctx = _allocated(_lib.BN_CTX_new(), "BN_CTX_new")
    try:
        yield ctx
    finally:
        _lib.BN_CTX_free(ctx)


@contextmanager
def _bignum(value: bytes, *, secret: bool) -> Iterator[int]:
    """A BIGNUM holding the big-endian `value`, flagged constant-time if `secret`; wiped after."""
    bn = _allocated(_lib.BN_bin2bn(value, len(value), None), "BN_bin2bn")
    try:
        if secret:
            _lib.BN_set_flags(bn, BN_FLG_CONSTTIME)
        yield bn
    finally:
        _lib.BN_clear_free(bn)


@contextmanager
def _new_bignum() -> Iterator[int]:
    """An empty BIGNUM for a result, flagged constant-time and wiped after use."""
    bn = _allocated(_lib.BN_new(), "BN_new")
    try:
        _lib.BN_set_flags(bn, BN_FLG_CONSTTIME)
        yield bn
    finally:
        _lib.BN_clear_free(bn)


@contextmanager
def _point() -> Iterator[int]:
    """An EC_POINT on curveSM2, wiped and freed after use."""
    point = _allocated(_lib.EC_POINT_new(_GROUP), "EC_POINT_new")
    try:
        yield point
    finally:
        _lib.EC_POINT_clear_free(point)


@contextmanager
def _decoded(encoded: bytes, ctx: int) -> Iterator[int]:
    """The EC_POINT for a 65-byte uncompressed encoding; ValueError if not a curve point."""
    if len(encoded) != POINT_BYTES or encoded[0] != POINT_CONVERSION_UNCOMPRESSED:
        raise ValueError("an SM2 point must be 65 bytes: 04 || x || y")
    with _point() as point:
        if _lib.EC_POINT_oct2point(_GROUP, point, encoded, len(encoded), ctx) != 1:
            _fail("not a point on curveSM2")
        if _lib.EC_POINT_is_at_infinity(_GROUP, point):
            _fail("the point at infinity is not a valid SM2 point")
        yield point


def _encode(point: int, ctx: int) -> bytes:
    """The 65-byte uncompressed encoding of a finite point; ValueError for infinity."""
    if _lib.EC_POINT_is_at_infinity(_GROUP, point):
        _fail("the result is the point at infinity")
    out = ctypes.create_string_buffer(POINT_BYTES)
    written = _lib.EC_POINT_point2oct(_GROUP, point, POINT_CONVERSION_UNCOMPRESSED, out, POINT_BYTES, ctx)
    if written != POINT_BYTES:
        _fail("EC_POINT_point2oct failed")
    return out.raw


def _check_mul(ok: int) -> None:
    """Raise ValueError unless EC_POINT_mul reported success."""
    if ok != 1:
        _fail("EC_POINT_mul failed")


def mul_base(scalar: bytes) -> bytes:
    """Return `scalar`·G (uncompressed), treating the scalar as secret."""
    with _bn_ctx() as ctx, _bignum(scalar, secret=True) as k, _point() as result:
        _check_mul(_lib.EC_POINT_mul(_GROUP, result, k, None, None, ctx))
        return _encode(result, ctx)


def mul_point(scalar: bytes, encoded_point: bytes) -> bytes:
    """Return `scalar`·Q (uncompressed), treating the scalar as secret; ValueError for bad Q."""
    with _bn_ctx() as ctx, _decoded(encoded_point, ctx) as q, _point() as result:
        with _bignum(scalar, secret=True) as k:
            _check_mul(_lib.EC_POINT_mul(_GROUP, result, None, q, k, ctx))
        return _encode(result, ctx)


def mul_add_public(g_scalar: bytes, point_scalar: bytes, encoded_point: bytes) -> bytes:
    """Return u·G + v·Q for public u, v (variable time); ValueError for bad Q or infinity."""
    with _bn_ctx() as ctx, _decoded(encoded_point, ctx) as q, _point() as result:
        with _bignum(g_scalar, secret=False) as u, _bignum(point_scalar, secret=False) as v:
            _check_mul(_lib.EC_POINT_mul(_GROUP, result, u, q, v, ctx))
        return _encode(result, ctx)


def is_valid_point(encoded_point: bytes) -> bool:
    """Whether `encoded_point` is a 65-byte uncompressed, finite point on curveSM2."""
    try:
        with _bn_ctx() as ctx, _decoded(encoded_point, ctx):
            return True
    except ValueError:
        return False


# --- arithmetic mod the group order n, on secrets -------------------------------------------


def _order_bytes() -> bytes:
    order = _lib.EC_GROUP_get0_order(_GROUP)
    out = ctypes.create_string_buffer(SCALAR_BYTES)
    if not order or _lib.BN_bn2binpad(order, out, SCALAR_BYTES) != SCALAR_BYTES:
        _lib.ERR_clear_error()
        raise ImportError("this libcrypto gives curveSM2 no 256-bit order")
    return out.raw


ORDER: Final = int.from_bytes(_order_bytes(), "big")
_ORDER_BN: Final[int] = _lib.EC_GROUP_get0_order(_GROUP)  # owned by _GROUP, lives as long
_ONE: Final[int] = _lib.BN_value_one()  # a static constant inside libcrypto


def _new_order_mont() -> int:
    """The Montgomery context for n, built once; it is read-only afterwards (thread-safe)."""
    mont = _allocated(_lib.BN_MONT_CTX_new(), "BN_MONT_CTX_new")
    with _bn_ctx() as ctx:
        if _lib.BN_MONT_CTX_set(mont, _ORDER_BN, ctx) != 1:
            _lib.ERR_clear_error()
            raise ImportError("OpenSSL could not set up Montgomery arithmetic mod n")
    return mont


_ORDER_MONT: Final = _new_order_mont()


def _check_bn(ok: int, what: str) -> None:
    if ok != 1:
        _fail(f"OpenSSL {what} failed")


def _read_secret(bn: int) -> bytes:
    """The 32-byte big-endian value of `bn` (< 2^256); the ctypes buffer is zeroed after."""
    out = ctypes.create_string_buffer(SCALAR_BYTES)
    try:
        if _lib.BN_bn2binpad(bn, out, SCALAR_BYTES) != SCALAR_BYTES:
            _fail("BN_bn2binpad failed")
        return out.raw
    finally:
        ctypes.memset(out, 0, SCALAR_BYTES)


def random_scalar(upper: bytes) -> bytes:
    """A secret scalar drawn uniformly from [1, upper] (32 bytes), for 1 <= upper < n.

    OpenSSL's private DRBG draws from [0, upper) by rejection (as its own key generation
    does; a rejected draw reveals nothing about the accepted one), then 1 is added mod n.
    """
    with _bignum(upper, secret=False) as limit, _new_bignum() as x:
        _check_bn(_lib.BN_priv_rand_range(x, limit), "BN_priv_rand_range")
        _check_bn(_lib.BN_mod_add_quick(x, x, _ONE, _ORDER_BN), "BN_mod_add_quick")
        return _read_secret(x)


def order_add(a: bytes, b: bytes) -> bytes:
    """(a + b) mod n for 32-byte a, b in [0, n), in constant time."""
    with _bignum(a, secret=True) as x, _bignum(b, secret=True) as y, _new_bignum() as out:
        _check_bn(_lib.BN_mod_add_quick(out, x, y, _ORDER_BN), "BN_mod_add_quick")
        return _read_secret(out)


def order_mul(a: bytes, b: bytes) -> bytes:
    """a·b mod n for 32-byte a, b in [0, n), in constant time: Montgomery(a·R mod n, b)."""
    with (
        _bn_ctx() as ctx,
        _bignum(a, secret=True) as x,
        _bignum(b, secret=True) as y,
        _new_bignum() as x_mont,
        _new_bignum() as out,
    ):
        _check_bn(_lib.BN_to_montgomery(x_mont, x, _ORDER_MONT, ctx), "BN_to_montgomery")
        _check_bn(_lib.BN_mod_mul_montgomery(out, x_mont, y, _ORDER_MONT, ctx), "BN_mod_mul_montgomery")
        return _read_secret(out)


_ORDER_MINUS_TWO: Final = (ORDER - 2).to_bytes(SCALAR_BYTES, "big")  # public exponent


def order_inverse(a: bytes) -> bytes:
    """a^-1 mod n for 32-byte a in [1, n), in constant time: a^(n-2) mod n (Fermat, n prime)."""
    with (
        _bn_ctx() as ctx,
        _bignum(a, secret=True) as x,
        _bignum(_ORDER_MINUS_TWO, secret=False) as exponent,
        _new_bignum() as out,
    ):
        ok = _lib.BN_mod_exp_mont_consttime(out, x, exponent, _ORDER_BN, ctx, _ORDER_MONT)
        _check_bn(ok, "BN_mod_exp_mont_consttime")
        return _read_secret(out)
