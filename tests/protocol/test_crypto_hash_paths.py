"""crypto's HMAC and hashes, composed from copies of blank hash objects, against the standard library."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers import modes
from hypothesis import given
from hypothesis import strategies as st

from kefu.protocol import crypto
from kefu.protocol.errors import LocalProtocolError

HASHES = ("sm3", "sha256")


@pytest.mark.parametrize("name", HASHES)
@pytest.mark.parametrize("key_len", [0, 1, 31, 32, 63, 64, 65, 128, 1000])
def test_hmac_matches_the_standard_library_at_every_key_shape(name: str, key_len: int) -> None:
    key = bytes(range(256)) * 4
    key = key[:key_len]
    assert crypto.hmac_digest(name, key, b"kefu") == hmac.digest(key, b"kefu", name)


@pytest.mark.parametrize("name", HASHES)
@given(key=st.binary(max_size=200), msg=st.binary(max_size=300))
def test_hmac_and_hash_match_the_standard_library(name: str, key: bytes, msg: bytes) -> None:
    assert crypto.hmac_digest(name, key, msg) == hmac.digest(key, msg, name)
    assert crypto.hash_digest(name, msg) == hashlib.new(name, msg).digest()


@pytest.mark.parametrize("name", HASHES)
def test_running_hashes_are_independent(name: str) -> None:
    first = crypto.hash_ctx(name)
    first.update(b"transcript")
    assert crypto.hash_ctx(name).digest() == hashlib.new(name).digest()
    assert first.digest() == hashlib.new(name, b"transcript").digest()


def _hash_ctx(name: str) -> object:
    return crypto.hash_ctx(name)


def _hash_digest(name: str) -> object:
    return crypto.hash_digest(name, b"")


def _hmac_digest(name: str) -> object:
    return crypto.hmac_digest(name, b"", b"")


@pytest.mark.parametrize("call", [_hash_ctx, _hash_digest, _hmac_digest])
def test_unknown_hash_is_refused(call: Callable[[str], object]) -> None:
    with pytest.raises(LocalProtocolError):
        call("md5")


# --- SM4-GCM records through cryptography's Rust contexts (crypto._new_encryptor) ---------------------------


def _public_seal(aead: crypto.Aead, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    enc = crypto._public_encryptor(aead._sm4, modes.GCM(nonce))  # type: ignore[arg-type]
    enc.authenticate_additional_data(aad)
    return bytes(enc.update(plaintext) + enc.finalize() + enc.tag)


@given(key=st.binary(min_size=16, max_size=16), nonce=st.binary(min_size=12, max_size=12),
       plaintext=st.binary(max_size=300), aad=st.binary(max_size=40))  # fmt: skip
def test_sm4_gcm_records_match_the_public_cipher_api(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> None:
    aead = crypto.Aead("sm4-gcm", key)
    sealed = aead.seal(nonce, plaintext, aad)
    assert sealed == _public_seal(aead, nonce, plaintext, aad)
    assert aead.open(nonce, sealed, aad) == plaintext
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(crypto.CryptoError):
        aead.open(nonce, tampered, aad)


def test_sm4_gcm_keys_and_nonces_are_still_checked() -> None:
    with pytest.raises(LocalProtocolError):
        crypto.Aead("sm4-gcm", bytes(32))
    aead = crypto.Aead("sm4-gcm", bytes(16))
    with pytest.raises(ValueError):
        aead.seal(b"", b"data", b"")  # GCM refuses an empty nonce whichever path builds the context
