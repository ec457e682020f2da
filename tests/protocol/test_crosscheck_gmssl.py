"""Cross-checks against the pure-Python `gmssl` package, an independent implementation.

gmssl (3.2.2) quirks handled here:
* `CryptSM2.__init__` strips a "04" prefix with `str.lstrip("04")`, which also eats any
  leading '0'/'4' hex digits of x; the public key is therefore assigned after construction.
* `sign_with_sm3` / `verify_with_sm3` hard-code the default signer id 1234567812345678 and
  draw the nonce k from Python's `random` (acceptable in tests only). `asn1=True` makes them
  produce and expect DER signatures as hex strings.
* `CryptSM4.crypt_ecb` pads unless `padding_mode` is neither PKCS7 (0) nor ZERO (1);
  `crypt_cbc` always applies/removes PKCS#7 padding.
gmssl is slow (about 5 ms per SM2 signature, 8 ms per verification): example counts stay modest.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from gmssl import func, sm3, sm4
from gmssl import sm2 as gm_sm2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kefu.protocol import sm2
from kefu.protocol.sm2 import DEFAULT_SIGNER_ID, SIGNER_ID_RFC8998, SM2PrivateKey, SM2PublicKey

N = int(gm_sm2.default_ecc_table["n"], 16)
GMSSL_RAW = 2  # any padding_mode other than PKCS7 (0) and ZERO (1): gmssl pads nothing
BLOCK = 16

slow = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Hypothesis favours small and boundary integers; mix in full-width random scalars.
scalars = st.one_of(
    st.integers(min_value=1, max_value=N - 2),
    st.binary(min_size=32, max_size=32).map(lambda b: int.from_bytes(b, "big") % (N - 2) + 1),
)
messages = st.binary(max_size=64)
keys16 = st.binary(min_size=16, max_size=16)
blocks = st.integers(min_value=1, max_value=4).flatmap(lambda n: st.binary(min_size=BLOCK * n, max_size=BLOCK * n))


def gmssl_sm2(private: SM2PrivateKey) -> gm_sm2.CryptSM2:
    """A gmssl signer/verifier for `private`, with DER signatures."""
    crypt = gm_sm2.CryptSM2(private_key=private.private_bytes().hex(), public_key="", asn1=True)
    crypt.public_key = private.public_key().public_bytes()[1:].hex()  # see the lstrip quirk
    return crypt


def gmssl_sm3(data: bytes) -> bytes:
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


def key(d: int) -> SM2PrivateKey:
    return SM2PrivateKey.from_bytes(d.to_bytes(32, "big"))


# --- SM2 ---------------------------------------------------------------------------------------


@slow
@given(d=scalars)
def test_public_key_derivation_matches(d: int) -> None:
    crypt = gm_sm2.CryptSM2(private_key="", public_key="")
    expected = crypt._kg(d, gm_sm2.default_ecc_table["g"])
    assert key(d).public_key().public_bytes()[1:].hex() == expected


def test_generated_keys_match() -> None:
    crypt = gm_sm2.CryptSM2(private_key="", public_key="")
    for _ in range(5):
        private = SM2PrivateKey.generate()
        expected = crypt._kg(int.from_bytes(private.private_bytes(), "big"), gm_sm2.default_ecc_table["g"])
        assert private.public_key().public_bytes()[1:].hex() == expected
        signature = private.sign(b"m", signer_id=DEFAULT_SIGNER_ID)
        assert gmssl_sm2(private).verify_with_sm3(signature.hex(), b"m")


@slow
@given(a=scalars, b=scalars)
def test_ecdh_matches(a: int, b: int) -> None:
    peer = key(b).public_key()
    crypt = gm_sm2.CryptSM2(private_key="", public_key="")
    shared_point = crypt._kg(a, peer.public_bytes()[1:].hex())
    assert key(a).exchange(peer).hex() == shared_point[:64]


@slow
@given(d=scalars, message=messages)
def test_our_signature_verifies_in_gmssl(d: int, message: bytes) -> None:
    private = key(d)
    signature = private.sign(message, signer_id=DEFAULT_SIGNER_ID)
    assert gmssl_sm2(private).verify_with_sm3(signature.hex(), message)


@slow
@given(d=scalars, message=messages, k=scalars)
def test_our_fixed_nonce_signature_equals_gmssl(d: int, message: bytes, k: int) -> None:
    private = key(d)
    ours = private.sign(message, signer_id=DEFAULT_SIGNER_ID, k=k)
    theirs = gmssl_sm2(private).sign_with_sm3(message, f"{k:064x}")
    assert ours.hex() == theirs


@slow
@given(d=scalars, message=messages)
def test_gmssl_signature_verifies_in_ours(d: int, message: bytes) -> None:
    private = key(d)
    signature = gmssl_sm2(private).sign_with_sm3(message)
    public = private.public_key()
    assert public.verify(bytes.fromhex(signature), message, signer_id=DEFAULT_SIGNER_ID)
    assert not public.verify(bytes.fromhex(signature), message + b"x", signer_id=DEFAULT_SIGNER_ID)


@slow
@given(d=scalars, message=messages)
def test_rfc8998_signer_id_with_gmssl_digest(d: int, message: bytes) -> None:
    # gmssl has no signer-id parameter: build Z from gmssl's own curve table and SM3.
    private = key(d)
    crypt = gmssl_sm2(private)
    table = gm_sm2.default_ecc_table
    entl = (8 * len(SIGNER_ID_RFC8998)).to_bytes(2, "big")
    z_input = entl + SIGNER_ID_RFC8998 + bytes.fromhex(table["a"] + table["b"] + table["g"])
    z = gmssl_sm3(z_input + bytes.fromhex(crypt.public_key))
    assert private.public_key().z_value(SIGNER_ID_RFC8998) == z
    e = gmssl_sm3(z + message)
    ours = private.sign(message, signer_id=SIGNER_ID_RFC8998)
    assert crypt.verify(ours.hex(), e)
    k = int.from_bytes(gmssl_sm3(message + e), "big") % (N - 1) + 1
    theirs = bytes.fromhex(crypt.sign(e, f"{k:064x}"))
    assert SM2PublicKey.from_bytes(private.public_key().public_bytes()).verify(
        theirs, message, signer_id=SIGNER_ID_RFC8998
    )


# --- SM3 ---------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_sm3_matches(data: bytes) -> None:
    assert sm2.sm3(data) == gmssl_sm3(data)


# --- SM4 (cryptography's algorithms.SM4 is the block cipher under our SM4-GCM) -----------------


def cryptography_sm4(key: bytes, mode: modes.ECB | modes.CBC) -> Cipher[modes.ECB | modes.CBC]:
    return Cipher(algorithms.SM4(key), mode)


def gmssl_sm4(key: bytes, direction: int, padding_mode: int = GMSSL_RAW) -> sm4.CryptSM4:
    crypt = sm4.CryptSM4(padding_mode=padding_mode)
    crypt.set_key(key, direction)
    return crypt


@settings(max_examples=40, deadline=None)
@given(key=keys16, data=blocks)
def test_sm4_ecb_both_ways(key: bytes, data: bytes) -> None:
    enc = cryptography_sm4(key, modes.ECB()).encryptor()
    ours = enc.update(data) + enc.finalize()
    assert gmssl_sm4(key, sm4.SM4_DECRYPT).crypt_ecb(ours) == data
    theirs = gmssl_sm4(key, sm4.SM4_ENCRYPT).crypt_ecb(data)
    assert theirs == ours
    dec = cryptography_sm4(key, modes.ECB()).decryptor()
    assert dec.update(theirs) + dec.finalize() == data


@settings(max_examples=40, deadline=None)
@given(key=keys16, iv=keys16, data=st.binary(max_size=70))
def test_sm4_cbc_pkcs7_both_ways(key: bytes, iv: bytes, data: bytes) -> None:
    padder = padding.PKCS7(8 * BLOCK).padder()
    padded = padder.update(data) + padder.finalize()
    enc = cryptography_sm4(key, modes.CBC(iv)).encryptor()
    ours = enc.update(padded) + enc.finalize()
    assert gmssl_sm4(key, sm4.SM4_DECRYPT).crypt_cbc(iv, ours) == data
    theirs = gmssl_sm4(key, sm4.SM4_ENCRYPT).crypt_cbc(iv, data)
    assert theirs == ours
    dec = cryptography_sm4(key, modes.CBC(iv)).decryptor()
    unpadder = padding.PKCS7(8 * BLOCK).unpadder()
    plain = unpadder.update(dec.update(theirs) + dec.finalize()) + unpadder.finalize()
    assert plain == data
