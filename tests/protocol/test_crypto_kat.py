"""Every known-answer vector of spec/vectors/crypto-known-answers.json, through kefu's code paths.

Each vector runs through the primitive the protocol actually uses (kefu.protocol.crypto for hashes,
HMAC, HKDF, AEADs and key shares; kefu.protocol.sm2 for SM2; `cryptography`'s SM4 and X25519 for
the raw block-cipher and iterated vectors) or is skipped with the reason it does not apply to kefu.
`test_every_vector_is_accounted_for` fails on a vector whose algorithm this file does not know, so a
vector added to the file cannot be silently ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from kefu.protocol import crypto, sm2
from kefu.protocol.errors import CryptoError

VECTORS_FILE = Path(__file__).parents[2] / "spec/vectors/crypto-known-answers.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text())["vectors"]
KEFU_CURVE = "sm2p256v1"  # curveSM2, the only SM2 curve kefu uses

Vector = dict[str, Any]


def h(vector: Vector, field: str) -> bytes:
    return bytes.fromhex(vector[field])


def flip_last_bit(data: bytes) -> bytes:
    return data[:-1] + bytes((data[-1] ^ 1,))


# --- runners, one per algorithm ------------------------------------------------------------------


def run_sm3(v: Vector) -> None:
    assert crypto.hash_digest("sm3", h(v, "msg_hex")) == h(v, "digest")
    assert sm2.sm3(h(v, "msg_hex")) == h(v, "digest")


def run_hmac_sm3(v: Vector) -> None:
    assert crypto.hmac_digest("sm3", h(v, "key"), h(v, "msg_hex")) == h(v, "mac")


def sm4_round_trip(v: Vector, mode: modes.ECB | modes.CBC | modes.CTR) -> None:
    cipher = Cipher(algorithms.SM4(h(v, "key")), mode)
    enc, dec = cipher.encryptor(), cipher.decryptor()
    assert enc.update(h(v, "pt")) + enc.finalize() == h(v, "ct")
    assert dec.update(h(v, "ct")) + dec.finalize() == h(v, "pt")


def run_sm4_ecb(v: Vector) -> None:
    sm4_round_trip(v, modes.ECB())


def run_sm4_cbc(v: Vector) -> None:
    sm4_round_trip(v, modes.CBC(h(v, "iv")))


def run_sm4_ctr(v: Vector) -> None:
    sm4_round_trip(v, modes.CTR(h(v, "iv")))


def run_sm4_ecb_iter(v: Vector) -> None:
    encrypt = Cipher(algorithms.SM4(h(v, "key")), modes.ECB()).encryptor().update
    block = h(v, "pt")
    for _ in range(v["iterations"]):
        block = encrypt(block)
    assert block == h(v, "ct")


def aead_round_trip(cipher: str, v: Vector) -> None:
    aead = crypto.Aead(cipher, h(v, "key"))
    nonce, aad, sealed = h(v, "iv"), h(v, "aad"), h(v, "ct") + h(v, "tag")
    assert aead.seal(nonce, h(v, "pt"), aad) == sealed
    assert aead.open(nonce, sealed, aad) == h(v, "pt")
    with pytest.raises(CryptoError):
        aead.open(nonce, flip_last_bit(sealed), aad)


def run_sm4_gcm(v: Vector) -> None:
    aead_round_trip("sm4-gcm", v)


def run_aes_gcm(v: Vector) -> None:
    aead_round_trip("aes-gcm", v)


def run_sm2_sign(v: Vector) -> None:
    key = sm2.SM2PrivateKey.from_bytes(h(v, "d"))
    public = key.public_key()
    uid, msg = h(v, "uid"), h(v, "msg_hex")
    assert public.public_bytes() == b"\x04" + h(v, "pub")
    assert public.z_value(uid) == h(v, "Z")
    assert sm2.sm3(public.z_value(uid) + msg) == h(v, "e")
    signature = key.sign(msg, signer_id=uid, k=int(v["k"], 16))
    assert sm2.der_decode_signature(signature) == (int(v["r"], 16), int(v["s"], 16))
    assert public.verify(signature, msg, signer_id=uid)


def run_sm2_kex_points(v: Vector) -> None:
    """kefu does ECDHE, not the SM2 key-exchange protocol: check its scalar multiplications
    (dA·G, rA·G, dB·G, rB·G) and Z values, not UV, K, SA, SB."""
    for scalar, point in (("dA", "PA"), ("rA", "RA"), ("dB", "PB"), ("rB", "RB")):
        derived = sm2.SM2PrivateKey.from_bytes(h(v, scalar)).public_key()
        assert derived.public_bytes() == b"\x04" + h(v, point), scalar
    for point, uid, z in (("PA", "uidA", "ZA"), ("PB", "uidB", "ZB")):
        public = sm2.SM2PublicKey.from_bytes(b"\x04" + h(v, point))
        assert public.z_value(h(v, uid)) == h(v, z), z


def run_x25519(v: Vector) -> None:
    share = crypto.X25519Share.from_private_bytes(h(v, "scalar"))
    assert share.exchange(h(v, "u")) == h(v, "out")


def run_x25519_dh(v: Vector) -> None:
    alice = crypto.X25519Share.from_private_bytes(h(v, "a_priv"))
    bob = crypto.X25519Share.from_private_bytes(h(v, "b_priv"))
    assert alice.public_bytes() == h(v, "a_pub")
    assert bob.public_bytes() == h(v, "b_pub")
    assert alice.exchange(h(v, "b_pub")) == h(v, "shared")
    assert bob.exchange(h(v, "a_pub")) == h(v, "shared")


def run_x25519_iter(v: Vector) -> None:
    """RFC 7748 s.5.2: k = u = 9; repeatedly k, u = X25519(k, u), k."""
    k = u = (9).to_bytes(32, "little")
    for _ in range(v["iterations"]):
        private = x25519.X25519PrivateKey.from_private_bytes(k)
        k, u = private.exchange(x25519.X25519PublicKey.from_public_bytes(u)), k
    assert k == h(v, "out")


def run_hkdf_sha256(v: Vector) -> None:
    prk = crypto.hkdf_extract("sha256", h(v, "salt"), h(v, "ikm"))
    assert prk == h(v, "prk")
    assert crypto.hkdf_expand("sha256", prk, h(v, "info"), v["L"]) == h(v, "okm")


RUNNERS: dict[str, Callable[[Vector], None]] = {
    "SM3": run_sm3,
    "HMAC-SM3": run_hmac_sm3,
    "SM4-ECB": run_sm4_ecb,
    "SM4-ECB-ITER": run_sm4_ecb_iter,
    "SM4-CBC": run_sm4_cbc,
    "SM4-CTR": run_sm4_ctr,
    "SM4-GCM": run_sm4_gcm,
    "AES-GCM": run_aes_gcm,
    "SM2-SIGN": run_sm2_sign,
    "SM2-KEX": run_sm2_kex_points,
    "X25519": run_x25519,
    "X25519-DH": run_x25519_dh,
    "X25519-ITER": run_x25519_iter,
    "HKDF-SHA256": run_hkdf_sha256,
}

NOT_USED: dict[str, str] = {
    "SM4-CCM": "the national suite's AEAD is SM4-GCM (RFC 8998 TLS_SM4_GCM_SM3); CCM is never used",
    "SM2-ENC": "SM2 public-key encryption is never used; keys are agreed by ECDHE",
    "P256-ECDH": "the key-exchange groups are curveSM2 and X25519, not P-256",
}


def skip_reason(v: Vector) -> str | None:
    """Why kefu does not run `v`, or None if it does."""
    if v["alg"] in NOT_USED:
        return NOT_USED[v["alg"]]
    if v.get("curve", KEFU_CURVE) != KEFU_CURVE:
        return f"{v['curve']} is the GB/T 32918.2-.4 example curve; kefu uses only curveSM2"
    if v.get("slow"):
        return f"marked slow ({v.get('iterations', '?'):,} iterations); shorter runs cover it"
    return None


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector(vector: Vector) -> None:
    reason = skip_reason(vector)
    if reason is not None:
        pytest.skip(f"not used by kefu: {vector['id']}: {reason}")
    RUNNERS[vector["alg"]](vector)


def test_every_vector_is_accounted_for() -> None:
    unknown = [v["id"] for v in VECTORS if v["alg"] not in RUNNERS and v["alg"] not in NOT_USED]
    assert unknown == [], "vectors with no runner and no skip reason"
    ids = [v["id"] for v in VECTORS]
    assert len(ids) == len(set(ids)), "vector ids must be unique"
    assert all(v.get("source") for v in VECTORS), "every vector names its source"


def test_expected_coverage() -> None:
    """The applicable vectors the task relies on are really run, not skipped."""
    run = [v for v in VECTORS if skip_reason(v) is None]
    aes = [v for v in run if v["alg"] == "AES-GCM"]
    assert len(aes) >= 750
    assert {len(v["key"]) // 2 for v in aes} == {16, 32}
    assert {v["id"] for v in run if v["alg"].startswith("SM2")} == {
        "sm2-sign-gbt32918.5-annexA",
        "sm2-kex-gbt32918.5-annexB",
    }
