"""Point arithmetic on curveSM2 through OpenSSL's libcrypto, called with ctypes.

Theory of operation
-------------------
`cryptography` exposes no SM2 curve, and pure-Python scalar multiplication costs tens of
milliseconds, so the three operations kefu needs are delegated to the system libcrypto:

* `mul_base(d)`            d·G, public-key derivation (secret scalar);
* `mul_point(d, Q)`        d·Q, ECDH (secret scalar, peer point);
* `mul_add_public(u, v, Q)`  u·G + v·Q, signature verification (public scalars only).

Points cross this boundary only as 65-byte uncompressed encodings (04 || x || y).
`EC_POINT_oct2point` is the single way in, and OpenSSL checks there that the point lies
on the curve; curveSM2 has cofactor 1, so every point on it is in the prime-order group.
The point at infinity is refused both in and out.

Secret scalars get `BN_FLG_CONSTTIME`. For a single-scalar multiplication OpenSSL >= 1.1.1
runs its Montgomery ladder (`ossl_ec_scalar_mul_ladder`) whatever the flag; the flag also
keeps the surrounding BIGNUM code on its constant-time paths. Scalars are wiped with
`BN_clear_free` and result points with `EC_POINT_clear_free`.

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
    "POINT_BYTES",
    "SCALAR_BYTES",
    "is_valid_point",
    "mul_add_public",
    "mul_base",
    "mul_point",
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
    "EC_GROUP_new_by_curve_name": (_PTR, [ctypes.c_int]),
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
