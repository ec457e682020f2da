"""Where SM2's secrets go: only into `_openssl`'s constant-time entry points, as flagged BIGNUMs.

`sm2`'s theory of operation promises that every operation on a private key d or a nonce k
runs on OpenSSL's constant-time code (issue #13). Known answers cannot tell that apart from
the same arithmetic on Python integers (the values are equal), so these tests watch the
boundary instead: the calls `sm2` makes into `_openssl` (which entry point sees which
secret), and below them the calls `_openssl` makes into libcrypto (which BIGNUM function
sees which secret, and whether that BIGNUM carries BN_FLG_CONSTTIME).

The secrets of one signature, as 32-byte big-endian values: d, 1 + d, (1 + d)^-1, k, k + r
and (1 + d)^-1 · (k + r). r, n - r, s, e and x1 are public.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from kefu.protocol import _openssl, sm2
from kefu.protocol.sm2 import DEFAULT_SIGNER_ID, SM2PrivateKey, der_decode_signature

N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
VECTOR = sm2._ANNEX_A_SIGN
D = int(VECTOR.d, 16)
PUBLIC = bytes.fromhex("04" + VECTOR.pub)
MESSAGE, SIGNER_ID = bytes.fromhex(VECTOR.msg), bytes.fromhex(VECTOR.uid)

# The `_openssl` entry points documented to take a secret scalar in constant time.
CONSTANT_TIME_ENTRY_POINTS = frozenset({"mul_base", "mul_point", "order_add", "order_mul", "order_inverse"})
# libcrypto's general modular arithmetic: variable time (BN_nnmod branches on the sign,
# BN_mod_inverse runs a binary extended Euclid, BN_mod_exp picks its method by the flags).
VARIABLE_TIME_BIGNUM_FUNCTIONS = frozenset(
    {
        "BN_add",
        "BN_sub",
        "BN_mul",
        "BN_sqr",
        "BN_div",
        "BN_mod_add",
        "BN_mod_sub",
        "BN_mod_sub_quick",
        "BN_mod_mul",
        "BN_mod_sqr",
        "BN_nnmod",
        "BN_mod_inverse",
        "BN_mod_exp",
        "BN_mod_exp_mont",
        "BN_gcd",
    }
)


def b32(value: int) -> bytes:
    return (value % N).to_bytes(32, "big")


@dataclass(frozen=True, slots=True)
class Secrets:
    """The secret values one signature with key d and nonce k handles, each as 32 bytes."""

    d: bytes
    one_plus_d: bytes
    inverse: bytes
    k: bytes
    k_plus_r: bytes
    product: bytes  # (1 + d)^-1 · (k + r)

    @classmethod
    def of(cls, d: int, k: int, r: int) -> Secrets:
        inverse = pow(d + 1, -1, N)
        return cls(b32(d), b32(d + 1), b32(inverse), b32(k), b32(k + r), b32(inverse * (k + r)))

    def all(self) -> frozenset[bytes]:
        return frozenset((self.d, self.one_plus_d, self.inverse, self.k, self.k_plus_r, self.product))


# --- sm2 -> _openssl -------------------------------------------------------------------------------


Call = tuple[str, tuple[Any, ...]]


def spy_entry_points(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Call], list[bytes]]:
    """Wrap every public function of `_openssl`; return (calls in order, scalars drawn)."""
    calls: list[Call] = []
    drawn: list[bytes] = []

    def recording(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def spy(*args: Any) -> Any:
            calls.append((name, args))
            result = real(*args)
            if name == "random_scalar":
                drawn.append(result)
            return result

        return spy

    for name in _openssl.__all__:
        real = getattr(_openssl, name)
        if callable(real):
            monkeypatch.setattr(_openssl, name, recording(name, real))
    return calls, drawn


def expected_calls(secrets: Secrets, r: int) -> list[Call]:
    """The key's d·G, then the first signature: (1 + d)^-1, k·G, k + r, s = (1 + d)^-1 · (k + r) - r."""
    return [
        ("mul_base", (secrets.d,)),
        ("is_valid_point", (PUBLIC,)),
        ("order_add", (secrets.d, b32(1))),
        ("order_inverse", (secrets.one_plus_d,)),
        ("mul_base", (secrets.k,)),
        ("order_add", (secrets.k, b32(r))),
        ("order_mul", (secrets.inverse, secrets.k_plus_r)),
        ("order_add", (secrets.product, b32(N - r))),
    ]


def sign_fixed(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Call], Secrets, int]:
    """Load the Annex A key and sign its message with its k, under the spy."""
    calls, _ = spy_entry_points(monkeypatch)
    k, r = int(VECTOR.k, 16), int(VECTOR.r, 16)
    signature = SM2PrivateKey.from_bytes(b32(D)).sign(MESSAGE, signer_id=SIGNER_ID, k=k)
    assert der_decode_signature(signature) == (r, int(VECTOR.s, 16))
    return calls, Secrets.of(D, k, r), r


def sign_drawn(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Call], Secrets, int]:
    """Load the Annex A key and sign with a nonce from the real DRBG (the production path)."""
    calls, drawn = spy_entry_points(monkeypatch)
    signature = SM2PrivateKey.from_bytes(b32(D)).sign(b"m", signer_id=DEFAULT_SIGNER_ID)
    r, _ = der_decode_signature(signature)
    assert calls.pop(4) == ("random_scalar", (b32(N - 1),))  # drawn right after (1 + d)^-1
    return calls, Secrets.of(D, int.from_bytes(drawn[0], "big"), r), r


SIGNINGS = [pytest.param(sign_fixed, id="fixed-k"), pytest.param(sign_drawn, id="drawn-k")]


@pytest.mark.parametrize("signing", SIGNINGS)
def test_secrets_reach_only_constant_time_entry_points(
    monkeypatch: pytest.MonkeyPatch, signing: Callable[[pytest.MonkeyPatch], tuple[list[Call], Secrets, int]]
) -> None:
    calls, secrets, _ = signing(monkeypatch)
    leaks = [(name, args) for name, args in calls if secrets.all() & set(args)]
    assert {name for name, _ in leaks} <= CONSTANT_TIME_ENTRY_POINTS, leaks


@pytest.mark.parametrize("signing", SIGNINGS)
def test_every_secret_step_runs_on_openssl(
    monkeypatch: pytest.MonkeyPatch, signing: Callable[[pytest.MonkeyPatch], tuple[list[Call], Secrets, int]]
) -> None:
    # Python integers would give the same (r, s): only the calls show where k + r and s were computed.
    calls, secrets, r = signing(monkeypatch)
    assert calls == expected_calls(secrets, r)


# --- _openssl -> libcrypto -------------------------------------------------------------------------


class LibcryptoSpy:
    """Stands in for `_openssl._lib`: calls through to libcrypto, recording every call in order."""

    def __init__(self, lib: Any) -> None:
        self._real = lib
        self.calls: list[tuple[str, tuple[Any, ...], Any]] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        function = getattr(self._real, name)

        def recording(*args: Any) -> Any:
            result = function(*args)
            self.calls.append((name, args, result))
            return result

        return recording


@dataclass(slots=True)
class Bignum:
    value: bytes | None  # None: made by BN_new, to hold a result
    constant_time: bool = False


@dataclass(slots=True)
class BignumUse:
    """What libcrypto did with the secrets: the functions each one reached, and any unflagged use."""

    functions: dict[bytes, set[str]] = field(default_factory=dict)
    unflagged: list[tuple[str, bytes | None]] = field(default_factory=list)


def replay(calls: list[tuple[str, tuple[Any, ...], Any]], secrets: frozenset[bytes]) -> BignumUse:
    """Follow each BIGNUM from allocation to BN_clear_free, noting where secret or result ones went."""
    live: dict[int, Bignum] = {}
    use = BignumUse()
    for name, args, result in calls:
        if name == "BN_bin2bn":
            live[result] = Bignum(bytes(args[0]))
        elif name == "BN_new":
            live[result] = Bignum(None)
        elif name == "BN_set_flags" and args[1] & _openssl.BN_FLG_CONSTTIME:
            live[args[0]].constant_time = True
        elif name == "BN_clear_free":
            del live[args[0]]
        else:
            for bn in (live[arg] for arg in args if isinstance(arg, int) and arg in live):
                if bn.value is None or bn.value in secrets:
                    if not bn.constant_time:
                        use.unflagged.append((name, bn.value))
                    if bn.value is not None:
                        use.functions.setdefault(bn.value, set()).add(name)
    return use


def test_libcrypto_gets_secrets_only_in_constant_time_bignums(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = LibcryptoSpy(_openssl._lib)
    monkeypatch.setattr(_openssl, "_lib", spy)
    _, secrets, _ = sign_fixed(monkeypatch)
    use = replay(spy.calls, secrets.all())
    assert use.unflagged == []
    assert use.functions == {
        secrets.d: {"EC_POINT_mul", "BN_mod_add_quick"},  # d·G; 1 + d
        secrets.one_plus_d: {"BN_mod_exp_mont_consttime"},  # (1 + d)^(n-2)
        secrets.k: {"EC_POINT_mul", "BN_mod_add_quick"},  # k·G on the ladder; k + r
        secrets.inverse: {"BN_to_montgomery"},  # (1 + d)^-1 · R, then
        secrets.k_plus_r: {"BN_mod_mul_montgomery"},  # Montgomery product with k + r
        secrets.product: {"BN_mod_add_quick"},  # s = product + (n - r)
    }
    assert not {name for name, _, _ in spy.calls} & VARIABLE_TIME_BIGNUM_FUNCTIONS


def test_no_variable_time_bignum_function_is_bound() -> None:
    # `_openssl` declares every libcrypto function it calls; the general mod-n ones are not among them.
    assert not set(_openssl._SIGNATURES) & VARIABLE_TIME_BIGNUM_FUNCTIONS
    assert "BN_mod_exp_mont_consttime" in _openssl._SIGNATURES
