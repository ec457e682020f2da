"""Unit tests of kefu.protocol.sm2 and its OpenSSL binding kefu.protocol._openssl."""

from __future__ import annotations

import ctypes
import dataclasses
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import gmssl_pyx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kefu.protocol import _openssl, sm2
from kefu.protocol.sm2 import (
    DEFAULT_SIGNER_ID,
    SIGNER_ID_RFC8998,
    CryptoSelfTestError,
    SM2PrivateKey,
    SM2PublicKey,
    der_decode_signature,
    der_encode_signature,
)

# curveSM2 (GB/T 32918.5-2017): field prime, coefficients, order and generator.
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
G = bytes.fromhex(
    "04"
    "32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7"
    "bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0"
)

VECTOR = sm2._ANNEX_A_SIGN
VECTOR_KEY = bytes.fromhex(VECTOR.d)
VECTOR_PUB = bytes.fromhex("04" + VECTOR.pub)

scalars = st.integers(min_value=1, max_value=N - 2)
signature_ints = st.integers(min_value=1, max_value=N - 1)


def point(x: int, y: int) -> bytes:
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def key(d: int) -> SM2PrivateKey:
    return SM2PrivateKey.from_bytes(d.to_bytes(32, "big"))


def small_x_point() -> tuple[int, int]:
    """A curve point whose x is small enough that x + p still fits in 32 bytes."""
    for x in range(1, 1000):
        rhs = (x**3 + A * x + B) % P
        y = pow(rhs, (P + 1) // 4, P)  # p = 3 mod 4
        if y * y % P == rhs:
            return x, y
    raise AssertionError("no small-x point found")


# --- self-test ---------------------------------------------------------------------------------


def test_self_test_passes() -> None:
    sm2.self_test()


@pytest.mark.parametrize("field", ["d", "pub", "z", "e", "r", "s", "k", "msg"])
def test_self_test_rejects_a_wrong_sign_vector(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    value = getattr(VECTOR, field)
    wrong = value[:-1] + ("0" if value[-1] != "0" else "1")
    monkeypatch.setattr(sm2, "_ANNEX_A_SIGN", dataclasses.replace(VECTOR, **{field: wrong}))
    with pytest.raises(CryptoSelfTestError):
        sm2.self_test()


@pytest.mark.parametrize("field", ["p_a", "p_b"])
def test_self_test_rejects_a_wrong_exchange_vector(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    vector = sm2._ANNEX_B_KEX
    wrong = dataclasses.replace(vector, **{field: "00" + getattr(vector, field)[2:]})
    monkeypatch.setattr(sm2, "_ANNEX_B_KEX", wrong)
    with pytest.raises(CryptoSelfTestError, match=r"d[AB]·G"):
        sm2.self_test()


def test_self_test_catches_a_broken_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gmssl_pyx, "sm2_verify_sm3_digest", lambda *_: False)
    with pytest.raises(CryptoSelfTestError, match="GmSSL"):
        sm2.self_test()


def test_self_test_wraps_unexpected_exceptions(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> bytes:
        raise OSError("libcrypto went away")

    monkeypatch.setattr(_openssl, "mul_base", broken)
    with pytest.raises(CryptoSelfTestError, match="libcrypto went away"):
        sm2.self_test()


def test_import_loads_no_io_modules() -> None:
    code = (
        "import sys, kefu.protocol.sm2; "
        "print(sorted(m for m in ('asyncio', 'socket', 'lmdb', 'prometheus_client') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_libcrypto_fallback_through_the_ssl_extension() -> None:
    code = (
        "import ctypes.util; ctypes.util.find_library = lambda name: None; "
        "from kefu.protocol import _openssl, sm2; print(_openssl._lib._name)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "_ssl" in out


# --- public keys -------------------------------------------------------------------------------


def test_public_key_round_trip_and_equality() -> None:
    public = SM2PublicKey.from_bytes(VECTOR_PUB)
    assert public.public_bytes() == VECTOR_PUB
    assert public == SM2PublicKey.from_bytes(bytes(VECTOR_PUB))
    assert hash(public) == hash(SM2PublicKey.from_bytes(VECTOR_PUB))
    assert public != SM2PublicKey.from_bytes(G)
    assert public != VECTOR_PUB


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00", id="infinity-octet"),
        pytest.param(VECTOR_PUB[:-1], id="64-bytes"),
        pytest.param(VECTOR_PUB + b"\x00", id="66-bytes"),
        pytest.param(VECTOR_PUB[1:], id="no-prefix"),
        pytest.param(b"\x02" + VECTOR_PUB[1:33], id="compressed-02"),
        pytest.param(b"\x03" + VECTOR_PUB[1:33], id="compressed-03"),
        pytest.param(b"\x06" + VECTOR_PUB[1:], id="hybrid-06"),
        pytest.param(b"\x07" + VECTOR_PUB[1:], id="hybrid-07"),
        pytest.param(b"\x05" + VECTOR_PUB[1:], id="prefix-05"),
        pytest.param(bytes(65), id="all-zero"),
        pytest.param(b"\x04" + bytes(64), id="04-then-zeros"),
        pytest.param(VECTOR_PUB[:-1] + bytes((VECTOR_PUB[-1] ^ 1,)), id="off-curve-y"),
        pytest.param(point(1, 1), id="off-curve-small"),
        pytest.param(b"\x04" + b"\xff" * 64, id="coordinates-above-p"),
    ],
)
def test_public_key_rejects(data: bytes) -> None:
    with pytest.raises(ValueError):
        SM2PublicKey.from_bytes(data)
    assert not _openssl.is_valid_point(data)


def test_public_key_rejects_non_canonical_coordinates() -> None:
    x, y = small_x_point()
    assert _openssl.is_valid_point(point(x, y))
    with pytest.raises(ValueError):
        SM2PublicKey.from_bytes(point(x + P, y))


def test_public_key_accepts_the_negated_point() -> None:
    x, y = small_x_point()
    assert SM2PublicKey.from_bytes(point(x, P - y)).public_bytes() == point(x, P - y)


def test_failures_leave_no_openssl_error_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    peek, clear = _openssl._lib.ERR_peek_error, _openssl._lib.ERR_clear_error
    peek.restype, peek.argtypes = ctypes.c_ulong, []
    clear()
    with pytest.raises(ValueError):
        SM2PublicKey.from_bytes(point(1, 1))
    assert peek() == 0
    # Without the clearing, OpenSSL would leave EC_R_POINT_IS_NOT_ON_CURVE queued.
    monkeypatch.setattr(_openssl._lib, "ERR_clear_error", lambda: None)
    with pytest.raises(ValueError):
        SM2PublicKey.from_bytes(point(1, 1))
    assert peek() != 0
    clear()


# --- private keys ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(bytes(32), id="zero"),
        pytest.param((N - 1).to_bytes(32, "big"), id="n-1"),
        pytest.param(N.to_bytes(32, "big"), id="n"),
        pytest.param(b"\xff" * 32, id="2^256-1"),
        pytest.param(b"\x01", id="short"),
        pytest.param(bytes(31) + b"\x01" + b"\x00", id="33-bytes"),
        pytest.param(b"", id="empty"),
    ],
)
def test_private_key_rejects_out_of_range(data: bytes) -> None:
    with pytest.raises(ValueError):
        SM2PrivateKey.from_bytes(data)


def test_private_key_range_ends() -> None:
    assert key(1).public_key().public_bytes() == G
    minus_two_g = key(N - 2).public_key().public_bytes()
    two_g = key(2).public_key().public_bytes()
    assert minus_two_g[1:33] == two_g[1:33]
    assert int.from_bytes(minus_two_g[33:], "big") == P - int.from_bytes(two_g[33:], "big")


def test_private_key_derives_the_vector_public_key() -> None:
    private = SM2PrivateKey.from_bytes(VECTOR_KEY)
    assert private.private_bytes() == VECTOR_KEY
    assert private.public_key().public_bytes() == VECTOR_PUB
    assert VECTOR.d not in repr(private)


def test_generate_gives_consistent_in_range_keys() -> None:
    for _ in range(20):
        private = SM2PrivateKey.generate()
        d = int.from_bytes(private.private_bytes(), "big")
        assert 1 <= d <= N - 2
        assert SM2PrivateKey.from_bytes(private.private_bytes()).public_key() == (private.public_key())


def test_generate_draws_from_one_to_n_minus_two(monkeypatch: pytest.MonkeyPatch) -> None:
    uppers: list[int] = []

    def drawing(upper: bytes) -> bytes:
        uppers.append(int.from_bytes(upper, "big"))
        return (1).to_bytes(32, "big")

    monkeypatch.setattr(_openssl, "random_scalar", drawing)
    assert SM2PrivateKey.generate().public_key().public_bytes() == G
    assert uppers == [N - 2]


@pytest.mark.parametrize("upper", [1, 2, 3])
def test_random_scalar_covers_one_to_upper(upper: int) -> None:
    drawn = {_openssl.random_scalar(upper.to_bytes(32, "big")) for _ in range(100)}
    assert drawn == {v.to_bytes(32, "big") for v in range(1, upper + 1)}


def test_random_scalar_is_full_width() -> None:
    draws = [int.from_bytes(_openssl.random_scalar((N - 1).to_bytes(32, "big")), "big") for _ in range(64)]
    assert all(1 <= d <= N - 1 for d in draws)
    assert len(set(draws)) == len(draws)
    assert max(draws).bit_length() == 256


# --- arithmetic mod n --------------------------------------------------------------------------


def test_openssl_order_is_n() -> None:
    assert _openssl.ORDER == N


residues = st.integers(min_value=0, max_value=N - 1)


@settings(max_examples=200)
@given(a=residues, b=residues)
def test_order_add_and_mul(a: int, b: int) -> None:
    ab, bb = a.to_bytes(32, "big"), b.to_bytes(32, "big")
    assert _openssl.order_add(ab, bb) == ((a + b) % N).to_bytes(32, "big")
    assert _openssl.order_mul(ab, bb) == (a * b % N).to_bytes(32, "big")


@settings(max_examples=100)
@given(a=st.integers(min_value=1, max_value=N - 1))
def test_order_inverse(a: int) -> None:
    assert _openssl.order_inverse(a.to_bytes(32, "big")) == pow(a, -1, N).to_bytes(32, "big")


# --- ECDH --------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(a=scalars, b=scalars)
def test_exchange_is_symmetric(a: int, b: int) -> None:
    ka, kb = key(a), key(b)
    shared = ka.exchange(kb.public_key())
    assert len(shared) == 32
    assert shared == kb.exchange(ka.public_key())


def test_exchange_is_the_x_coordinate_of_d_q() -> None:
    # 1·Q = Q and 2·Q (via two different routes) have the same x coordinate.
    q = SM2PublicKey.from_bytes(VECTOR_PUB)
    assert key(1).exchange(q) == VECTOR_PUB[1:33]
    two_q = key(2).exchange(q)
    assert two_q == SM2PrivateKey.from_bytes(VECTOR_KEY).exchange(key(2).public_key())


def test_exchange_with_generated_keys() -> None:
    a, b = SM2PrivateKey.generate(), SM2PrivateKey.generate()
    assert a.exchange(b.public_key()) == b.exchange(a.public_key())


def test_exchange_is_thread_safe() -> None:
    keys = [SM2PrivateKey.generate() for _ in range(8)]
    peer = SM2PrivateKey.generate()
    expected = [k.exchange(peer.public_key()) for k in keys]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            got = list(pool.map(lambda k: k.exchange(peer.public_key()), keys))
            assert got == expected


@pytest.mark.parametrize("scalar", [bytes(32), N.to_bytes(32, "big")])
def test_openssl_refuses_an_infinite_result(scalar: bytes) -> None:
    with pytest.raises(ValueError, match="infinity"):
        _openssl.mul_base(scalar)
    with pytest.raises(ValueError, match="infinity"):
        _openssl.mul_point(scalar, G)


def test_openssl_mul_point_validates_the_point() -> None:
    with pytest.raises(ValueError):
        _openssl.mul_point(VECTOR_KEY, point(1, 1))
    with pytest.raises(ValueError):
        _openssl.mul_add_public(VECTOR_KEY, VECTOR_KEY, VECTOR_PUB[:-1])


# --- DER ---------------------------------------------------------------------------------------


@settings(max_examples=200)
@given(r=signature_ints, s=signature_ints)
def test_der_round_trip(r: int, s: int) -> None:
    encoded = der_encode_signature(r, s)
    assert len(encoded) <= sm2.MAX_SIGNATURE_BYTES
    assert der_decode_signature(encoded) == (r, s)


def test_der_known_encodings() -> None:
    assert der_encode_signature(1, 0x7F) == bytes.fromhex("3006020101 02017f".replace(" ", ""))
    assert der_encode_signature(0x80, 0x100) == bytes.fromhex("300802020080020201 00".replace(" ", ""))
    top = der_encode_signature(N - 1, N - 1)
    assert top[:4] == bytes.fromhex("30460221") and top[4] == 0


@pytest.mark.parametrize(("r", "s"), [(0, 1), (1, 0), (N, 1), (1, N), (-1, 1), (2**256, 1)])
def test_der_encode_rejects_out_of_range(r: int, s: int) -> None:
    with pytest.raises(ValueError):
        der_encode_signature(r, s)


GOOD = der_encode_signature(0x80, 0x7F)  # 30 07 02 02 00 80 02 01 7f


SEQ, LEN, INT, NEG, MIN, TRAIL, RANGE = (
    "SEQUENCE expected",
    "SEQUENCE length",
    "INTEGER expected",
    "negative",
    "minimally",
    "trailing",
    "out of range",
)
BAD_INT_LEN = "bad INTEGER length"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        pytest.param(b"", SEQ, id="empty"),
        pytest.param(b"\x30", SEQ, id="tag-only"),
        pytest.param(b"\x31" + GOOD[1:], SEQ, id="set-not-sequence"),
        pytest.param(GOOD + bytes(100), SEQ, id="oversized"),
        pytest.param(b"\x30\x08" + GOOD[2:], LEN, id="length-too-long"),
        pytest.param(b"\x30\x06" + GOOD[2:], LEN, id="length-too-short"),
        pytest.param(b"\x30\x81\x07" + GOOD[2:], LEN, id="long-form-length"),
        pytest.param(GOOD + b"\x00", LEN, id="trailing-byte"),
        pytest.param(b"\x30\x0a" + GOOD[2:] + b"\x02\x01\x01", TRAIL, id="third-integer"),
        pytest.param(b"\x30\x05\x02\x01\x01\x02\x00", BAD_INT_LEN, id="empty-integer"),
        pytest.param(b"\x30\x06\x02\x05\x01\x02\x01\x01", BAD_INT_LEN, id="integer-overruns"),
        pytest.param(b"\x30\x04\x02\x01\x01\x02", INT, id="truncated-integer-header"),
        pytest.param(b"\x30\x03\x02\x01\x01", INT, id="missing-s"),
        pytest.param(bytes.fromhex("3006020101040101"), INT, id="s-octet-string"),
        pytest.param(bytes.fromhex("300702020001 02017f".replace(" ", "")), MIN, id="non-minimal-r"),
        pytest.param(bytes.fromhex("3008020101 0203000080".replace(" ", "")), MIN, id="non-minimal-s"),
        pytest.param(bytes.fromhex("300602018002017f"), NEG, id="negative-r"),
        pytest.param(bytes.fromhex("3006020101020180"), NEG, id="negative-s"),
        pytest.param(bytes.fromhex("3006020100020101"), RANGE, id="r-zero"),
        pytest.param(bytes.fromhex("3006020101020100"), RANGE, id="s-zero"),
        pytest.param(b"\x30\x26\x02\x21\x00" + N.to_bytes(32, "big") + b"\x02\x01\x01", RANGE, id="r-is-n"),
        pytest.param(b"\x30\x27\x02\x22" + b"\x01" * 34 + b"\x02\x01\x01", BAD_INT_LEN, id="34-byte-int"),
    ],
)
def test_der_decode_is_strict(data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        der_decode_signature(data)


# --- signatures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vector_key() -> SM2PrivateKey:
    return SM2PrivateKey.from_bytes(VECTOR_KEY)


@pytest.mark.parametrize("signer_id", [SIGNER_ID_RFC8998, DEFAULT_SIGNER_ID, b"", b"x" * 300])
def test_sign_verify_round_trip(vector_key: SM2PrivateKey, signer_id: bytes) -> None:
    message = os.urandom(100)
    public = vector_key.public_key()
    signature = vector_key.sign(message, signer_id=signer_id)
    assert public.verify(signature, message, signer_id=signer_id)
    assert not public.verify(signature, message + b"!", signer_id=signer_id)
    assert not public.verify(signature, message, signer_id=signer_id + b"!")
    assert not key(2).public_key().verify(signature, message, signer_id=signer_id)


def test_random_nonce_signatures_differ_fixed_ones_repeat(vector_key: SM2PrivateKey) -> None:
    sign = vector_key.sign
    assert sign(b"m", signer_id=SIGNER_ID_RFC8998) != sign(b"m", signer_id=SIGNER_ID_RFC8998)
    fixed = sign(b"m", signer_id=SIGNER_ID_RFC8998, k=12345)
    assert fixed == sign(b"m", signer_id=SIGNER_ID_RFC8998, k=12345)
    assert vector_key.public_key().verify(fixed, b"m", signer_id=SIGNER_ID_RFC8998)


def test_signatures_are_strict_der_and_verify_both_ways() -> None:
    # Our verifier rejects any non-minimal DER, so signing must always emit minimal DER.
    for _ in range(200):
        private = SM2PrivateKey.generate()
        message = os.urandom(16)
        signature = private.sign(message, signer_id=SIGNER_ID_RFC8998)
        der_decode_signature(signature)
        assert private.public_key().verify(signature, message, signer_id=SIGNER_ID_RFC8998)
        e = sm2.sm3(private.public_key().z_value(SIGNER_ID_RFC8998) + message)
        assert gmssl_pyx.sm2_verify_sm3_digest(private.public_key().public_bytes()[1:], e, signature)


@pytest.mark.parametrize("signer_id", [SIGNER_ID_RFC8998, DEFAULT_SIGNER_ID])
def test_fixed_nonce_signature_verifies_under_gmssl(vector_key: SM2PrivateKey, signer_id: bytes) -> None:
    # gmssl_pyx.sm2_verify computes Z itself: an independent check of our Z and e.
    signature = vector_key.sign(b"hello", signer_id=signer_id, k=N - 1)
    public64 = vector_key.public_key().public_bytes()[1:]
    assert gmssl_pyx.sm2_verify(public64, b"hello", signature, signer_id)


def test_gmssl_verifier_rejects_a_flip_but_writes_to_stderr(
    vector_key: SM2PrivateKey, capfd: pytest.CaptureFixture[str]
) -> None:
    # Why verification runs on OpenSSL: GmSSL prints a C-level trace on every failed check.
    signature = vector_key.sign(b"m", signer_id=DEFAULT_SIGNER_ID)
    e = sm2.sm3(vector_key.public_key().z_value(DEFAULT_SIGNER_ID) + b"m")
    public64 = vector_key.public_key().public_bytes()[1:]
    flipped = signature[:-1] + bytes((signature[-1] ^ 1,))
    capfd.readouterr()
    assert not gmssl_pyx.sm2_verify_sm3_digest(public64, e, flipped)
    assert "sm2_verify" in capfd.readouterr().err, (
        "GmSSL no longer writes to stderr on failure: verification could use gmssl_pyx again"
    )
    assert not vector_key.public_key().verify(flipped, b"m", signer_id=DEFAULT_SIGNER_ID)
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("k", [0, N, -1, 2**256])
def test_fixed_nonce_out_of_range(vector_key: SM2PrivateKey, k: int) -> None:
    with pytest.raises(ValueError, match="nonce"):
        vector_key.sign(b"m", signer_id=DEFAULT_SIGNER_ID, k=k)


def _force_x1(monkeypatch: pytest.MonkeyPatch, x1: int) -> None:
    """Make k·G return a point with the given x coordinate (only x1 matters to signing)."""
    fake = b"\x04" + (x1 % N).to_bytes(32, "big") + bytes(32)
    monkeypatch.setattr(_openssl, "mul_base", lambda _k: fake)


def _e(message: bytes) -> int:
    z = SM2PublicKey.from_bytes(VECTOR_PUB).z_value(DEFAULT_SIGNER_ID)
    return int.from_bytes(sm2.sm3(z + message), "big")


def _degenerate_r(case: str, k: int) -> int:
    d = int.from_bytes(VECTOR_KEY, "big")
    return {"r-zero": 0, "r-plus-k-is-n": N - k, "s-zero": k * pow(d, -1, N) % N}[case]


DEGENERATE = ["r-zero", "r-plus-k-is-n", "s-zero"]


@pytest.mark.parametrize("case", DEGENERATE)
def test_fixed_nonce_degenerate_cases(vector_key: SM2PrivateKey, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    k = 777
    _force_x1(monkeypatch, _degenerate_r(case, k) - _e(b"m"))
    with pytest.raises(ValueError, match="choose another"):
        vector_key.sign(b"m", signer_id=DEFAULT_SIGNER_ID, k=k)


@pytest.mark.parametrize("case", DEGENERATE)
def test_random_nonce_is_redrawn_when_unusable(
    vector_key: SM2PrivateKey, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    # x1 (so r) is forced; the first k drawn is unusable with that r, the second is not.
    unusable, usable = 777, 778
    r = _degenerate_r(case, unusable)
    if case == "r-zero":  # no k helps against r == 0: every draw is unusable
        _force_x1(monkeypatch, r - _e(b"m"))
        monkeypatch.setattr(_openssl, "random_scalar", lambda _upper: usable.to_bytes(32, "big"))
        with pytest.raises(CryptoSelfTestError, match="unusable nonces"):
            vector_key.sign(b"m", signer_id=DEFAULT_SIGNER_ID)
        return
    draws = iter([unusable, usable])
    _force_x1(monkeypatch, r - _e(b"m"))
    monkeypatch.setattr(_openssl, "random_scalar", lambda _upper: next(draws).to_bytes(32, "big"))
    signature = vector_key.sign(b"m", signer_id=DEFAULT_SIGNER_ID)
    assert signature == vector_key.sign(b"m", signer_id=DEFAULT_SIGNER_ID, k=usable)


def test_random_and_fixed_nonces_take_the_same_path(vector_key: SM2PrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    uppers: list[int] = []

    def drawing(upper: bytes) -> bytes:
        uppers.append(int.from_bytes(upper, "big"))
        return int(VECTOR.k, 16).to_bytes(32, "big")

    monkeypatch.setattr(_openssl, "random_scalar", drawing)
    msg, uid = bytes.fromhex(VECTOR.msg), bytes.fromhex(VECTOR.uid)
    signature = vector_key.sign(msg, signer_id=uid)
    assert der_decode_signature(signature) == (int(VECTOR.r, 16), int(VECTOR.s, 16))
    assert uppers == [N - 1]


def test_sign_inverse_is_computed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    private = SM2PrivateKey.from_bytes(VECTOR_KEY)
    calls: list[bytes] = []
    real = _openssl.order_inverse

    def counting(a: bytes) -> bytes:
        calls.append(a)
        return real(a)

    monkeypatch.setattr(_openssl, "order_inverse", counting)
    for _ in range(3):
        private.sign(b"m", signer_id=DEFAULT_SIGNER_ID)
    assert calls == [(int.from_bytes(VECTOR_KEY, "big") + 1).to_bytes(32, "big")]


# --- verify never raises ------------------------------------------------------------------------


@settings(max_examples=300)
@given(garbage=st.binary(max_size=100))
def test_verify_returns_false_on_garbage(garbage: bytes) -> None:
    public = SM2PublicKey.from_bytes(VECTOR_PUB)
    assert public.verify(garbage, b"m", signer_id=DEFAULT_SIGNER_ID) is False


@settings(max_examples=100, deadline=None)
@given(r=signature_ints, s=signature_ints)
def test_verify_returns_false_on_random_well_formed_signatures(r: int, s: int) -> None:
    public = SM2PublicKey.from_bytes(VECTOR_PUB)
    signature = der_encode_signature(r, s)
    assert public.verify(signature, b"m", signer_id=DEFAULT_SIGNER_ID) is False


def test_verify_false_when_r_plus_s_is_n() -> None:
    public = SM2PublicKey.from_bytes(VECTOR_PUB)
    signature = der_encode_signature(5, N - 5)
    assert public.verify(signature, b"m", signer_id=DEFAULT_SIGNER_ID) is False


def test_verify_false_when_s_g_plus_t_p_is_infinity() -> None:
    # s + t·d = 0 (mod n) with t = r + s makes s·G + t·P the point at infinity.
    d, s = int.from_bytes(VECTOR_KEY, "big"), 1234
    r = -s * (1 + d) * pow(d, -1, N) % N
    assert (s + (r + s) * d) % N == 0
    public = SM2PublicKey.from_bytes(VECTOR_PUB)
    signature = der_encode_signature(r, s)
    assert public.verify(signature, b"m", signer_id=DEFAULT_SIGNER_ID) is False


def test_verify_rejects_every_single_bit_flip(vector_key: SM2PrivateKey) -> None:
    signature = vector_key.sign(b"m", signer_id=DEFAULT_SIGNER_ID)
    public = vector_key.public_key()
    for bit in range(8 * len(signature)):
        flipped = bytearray(signature)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert not public.verify(bytes(flipped), b"m", signer_id=DEFAULT_SIGNER_ID)


# --- Z -----------------------------------------------------------------------------------------


def test_z_value_matches_the_definition() -> None:
    public = SM2PublicKey.from_bytes(VECTOR_PUB)
    fields = b"".join(v.to_bytes(32, "big") for v in (A, B)) + G[1:] + VECTOR_PUB[1:]
    for signer_id in (SIGNER_ID_RFC8998, DEFAULT_SIGNER_ID, b""):
        entl = (8 * len(signer_id)).to_bytes(2, "big")
        assert public.z_value(signer_id) == sm2.sm3(entl + signer_id + fields)
    assert public.z_value(DEFAULT_SIGNER_ID).hex() == VECTOR.z


def test_z_value_is_cached_per_signer_id(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bytes] = []
    real = sm2._compute_z

    def counting(encoded: bytes, signer_id: bytes) -> bytes:
        calls.append(signer_id)
        return real(encoded, signer_id)

    monkeypatch.setattr(sm2, "_compute_z", counting)
    public = SM2PublicKey.from_bytes(VECTOR_PUB)
    first = public.z_value(SIGNER_ID_RFC8998)
    assert public.z_value(SIGNER_ID_RFC8998) is first
    public.z_value(DEFAULT_SIGNER_ID)
    public.z_value(DEFAULT_SIGNER_ID)
    assert calls == [SIGNER_ID_RFC8998, DEFAULT_SIGNER_ID]
    # Another key object for the same point has its own cache.
    SM2PublicKey.from_bytes(VECTOR_PUB).z_value(SIGNER_ID_RFC8998)
    assert len(calls) == 3


def test_z_cache_is_bounded() -> None:
    public = SM2PublicKey.from_bytes(VECTOR_PUB)
    ids = [bytes([i]) * 4 for i in range(sm2.Z_CACHE_MAX_ENTRIES + 3)]
    values = [public.z_value(signer_id) for signer_id in ids]
    assert len(public._z_cache) == sm2.Z_CACHE_MAX_ENTRIES
    assert [public.z_value(signer_id) for signer_id in ids] == values


def test_signer_id_length_limit() -> None:
    public = SM2PublicKey.from_bytes(VECTOR_PUB)
    public.z_value(b"x" * sm2.MAX_SIGNER_ID_BYTES)
    with pytest.raises(ValueError, match="signer id"):
        public.z_value(b"x" * (sm2.MAX_SIGNER_ID_BYTES + 1))


# --- SM3 ---------------------------------------------------------------------------------------


@settings(max_examples=100)
@given(data=st.binary(max_size=300))
def test_sm3_matches_gmssl_pyx(data: bytes) -> None:
    assert sm2.sm3(data) == gmssl_pyx.sm3_hash(data)


def test_sm3_fallback_through_cryptography() -> None:
    assert sm2._sm3_cryptography(b"abc").hex() == ("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
