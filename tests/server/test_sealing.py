"""Sealed values at rest (kefu.server.storage.sealing) and their key files (kefu.server.identity.datakeys)."""

from __future__ import annotations

import hmac
import os
import stat
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kefu.server.identity.datakeys import (
    DataKeyError,
    add_data_key,
    data_key_path,
    ensure_data_keys,
    load_data_keys,
    retire_data_key,
    sealer_of,
)
from kefu.server.storage.sealing import OVERHEAD, Damaged, DataKey, Sealer, index_entry, key_id_of

SM4 = DataKey(1, "sm4-gcm", bytes(range(16)))
AES = DataKey(2, "aes-gcm", bytes(range(32)))


def _independent_open(key: DataKey, table: str, k: bytes, sealed: bytes) -> bytes:
    """The documented layout, opened with cryptography's public API only (not the code under test)."""
    header, nonce, body = sealed[:5], sealed[5:17], sealed[17:]
    ad = b"kefu-seal/1" + header + bytes((len(table),)) + table.encode() + k
    if key.cipher == "aes-gcm":
        return AESGCM(key.secret).decrypt(nonce, body, ad)
    dec = Cipher(algorithms.SM4(key.secret), modes.GCM(nonce, body[-16:])).decryptor()
    dec.authenticate_additional_data(ad)
    return dec.update(body[:-16]) + dec.finalize()


@pytest.mark.parametrize("key", [SM4, AES], ids=lambda k: k.cipher)
def test_seal_opens_as_documented(key: DataKey) -> None:
    sealer = Sealer([key])
    sealed = sealer.seal("messages", b"\x00\x01", b"card lost, please block it")
    assert len(sealed) == len(b"card lost, please block it") + OVERHEAD
    assert b"card lost" not in sealed
    assert struct.unpack_from("!BI", sealed) == (1, key.key_id)
    assert _independent_open(key, "messages", b"\x00\x01", sealed) == b"card lost, please block it"
    assert sealer.open("messages", b"\x00\x01", sealed) == b"card lost, please block it"


def test_a_value_is_bound_to_its_table_and_key() -> None:
    sealer = Sealer([SM4])
    sealed = sealer.seal("messages", b"k1", b"v")
    for table, key in (("messages", b"k2"), ("cursors", b"k1"), ("messages", b"k1\x00")):
        with pytest.raises(Damaged) as info:
            sealer.open(table, key, sealed)
        assert "tag" in info.value.reason


def test_every_flipped_bit_and_truncation_is_found() -> None:
    sealer = Sealer([AES])
    sealed = sealer.seal("apps", b"a", b"verifier bytes")
    for i in range(len(sealed) * 8):
        bad = bytearray(sealed)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(Damaged):
            sealer.open("apps", b"a", bytes(bad))
    for n in range(len(sealed)):
        with pytest.raises(Damaged):
            sealer.open("apps", b"a", sealed[:n])


def test_rotation_new_key_seals_old_ones_open() -> None:
    old = Sealer([SM4]).seal("messages", b"k", b"old")
    both = Sealer([AES, SM4])  # order given does not matter: the highest id seals
    assert both.active == 2
    new = both.seal("messages", b"k", b"new")
    assert key_id_of(new) == 2 and key_id_of(old) == 1
    assert both.open("messages", b"k", old) == b"old"
    assert both.needs_reseal(old) and not both.needs_reseal(new)
    with pytest.raises(Damaged, match="data key 2"):
        Sealer([SM4]).open("messages", b"k", new)


def test_nonces_never_repeat_and_differ_between_processes() -> None:
    sealer = Sealer([AES])
    nonces = {sealer.seal("t", b"k", b"")[5:17] for _ in range(5000)}
    assert len(nonces) == 5000
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child seals with the parent's object: it must draw its own prefix
        os.write(write, sealer.seal("t", b"k", b"")[5:17])
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 12)
    os.close(read), os.close(write)
    assert child[:8] != next(iter(nonces))[:8]


def test_data_key_files(tmp_path) -> None:
    first = ensure_data_keys(tmp_path, "sm4-gcm")
    assert [k.key_id for k in first] == [1] and first[0].cipher == "sm4-gcm"
    assert ensure_data_keys(tmp_path, "aes-gcm") == first  # made once
    path = data_key_path(tmp_path, 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    second = add_data_key(tmp_path, "aes-gcm")
    assert second.key_id == 2 and load_data_keys(tmp_path) == [first[0], second]
    with pytest.raises(DataKeyError, match="newest"):
        retire_data_key(tmp_path, 2, still_sealed=0)
    with pytest.raises(DataKeyError, match="still sealed"):
        retire_data_key(tmp_path, 1, still_sealed=3)
    retire_data_key(tmp_path, 1, still_sealed=0)
    assert load_data_keys(tmp_path) == [second]
    data_key_path(tmp_path, 2).write_text("{not json")
    with pytest.raises(DataKeyError, match="not a data key file"):
        load_data_keys(tmp_path)
    assert "secret" not in repr(second) and second.secret.hex() not in repr(second)


def test_a_key_rotated_in_later_opens_once_the_sealer_looks_again(tmp_path) -> None:
    reader = sealer_of(tmp_path, "sm4-gcm")  # started before the rotation
    add_data_key(tmp_path, "aes-gcm")
    newer = sealer_of(tmp_path, "sm4-gcm")  # e.g. `kefu app add` after `kefu data-key rotate`
    sealed = newer.seal("apps", b"a", b"record")
    assert key_id_of(sealed) == 2 and reader.active == 1
    assert reader.open("apps", b"a", sealed) == b"record"
    assert reader.active == 1  # found keys open; the sealing key stays until a new Sealer
    stranger = Sealer([DataKey(3, "sm4-gcm", bytes(16))]).seal("apps", b"a", b"x")
    with pytest.raises(Damaged, match="data key 3"):
        reader.open("apps", b"a", stranger)  # still unknown after looking: damaged
    without = Sealer(load_data_keys(tmp_path)[:1])  # no reload: never looks
    with pytest.raises(Damaged, match="data key 2"):
        without.open("apps", b"a", sealed)


def _tag(key: DataKey, header: bytes, table: bytes, k: bytes, value: bytes) -> bytes:
    """The documented tag, computed independently: HMAC of "kefu-tag/1" under the key, then over AD || value."""
    digest = "sm3" if key.cipher == "sm4-gcm" else "sha256"
    tag_key = hmac.new(key.secret, b"kefu-tag/1", digest).digest()
    ad = b"kefu-seal/1" + header + bytes((len(table),)) + table + k
    return hmac.new(tag_key, ad + value, digest).digest()[:16]


@pytest.mark.parametrize("key", [SM4, AES], ids=lambda k: k.cipher)
def test_cursors_are_tagged_not_sealed(key: DataKey) -> None:
    sealer = Sealer([key])
    tagged = sealer.seal("cursors", b"alice\x00k", b"\x00" * 7 + b"\x05")
    assert len(tagged) == 8 + 21 and tagged[5:13] == b"\x00" * 7 + b"\x05"  # the value in clear
    assert sealer.open("cursors", b"alice\x00k", tagged) == b"\x00" * 7 + b"\x05"
    assert _tag(key, tagged[:5], b"cursors", b"alice\x00k", tagged[5:-16]) == tagged[-16:]
    for i in range(len(tagged) * 8):  # every bit, header, value and tag
        bad = bytearray(tagged)
        bad[i // 8] ^= 1 << (i % 8)
        with pytest.raises(Damaged):
            sealer.open("cursors", b"alice\x00k", bytes(bad))
    with pytest.raises(Damaged):
        sealer.open("cursors", b"bob\x00k", tagged)  # bound to its key
    with pytest.raises(Damaged, match="form"):  # a sealed value where a tagged one belongs, and the reverse
        sealer.open("cursors", b"k", sealer.seal("messages", b"k", b"v"))
    with pytest.raises(Damaged, match="form"):
        sealer.open("messages", b"k", sealer.seal("cursors", b"k", b"v" * 20))


@pytest.mark.parametrize("key", [SM4, AES], ids=lambda k: k.cipher)
def test_idempotency_entries_are_index_entries_and_old_tagged_ones_still_open(key: DataKey) -> None:
    """An idempotency entry is stored with a one-byte header and no tag (its reader checks it against the message it
    names: test_store_sealing); one tagged by an earlier release opens with its tag checked, and is resealed."""
    sealer, value = Sealer([key]), bytes(range(32))
    entry = sealer.seal("idempotency", b"alice\x00k", value)
    assert entry == b"\x03" + value and key_id_of(entry) is None
    assert sealer.open("idempotency", b"alice\x00k", entry) == value and index_entry("idempotency", entry) == value
    assert not sealer.needs_reseal(entry) and not sealer.opens("idempotency", b"alice\x00k", entry)
    assert index_entry("cursors", b"\x03" + value) is None  # only where an index entry belongs
    with pytest.raises(Damaged, match="form"):
        sealer.open("cursors", b"k", b"\x03" + value)
    header = struct.pack("!BI", 2, key.key_id)
    old = header + value + _tag(key, header, b"idempotency", b"alice\x00k", value)
    assert sealer.open("idempotency", b"alice\x00k", old) == value
    assert Sealer([DataKey(key.key_id + 1, key.cipher, os.urandom(len(key.secret))), key]).needs_reseal(old)
    for i in range(len(old) * 8):
        bad = bytearray(old)
        bad[i // 8] ^= 1 << (i % 8)
        if bad[0] == 3:  # the header flipped into an index entry's: read as one, and checked by its reader
            continue
        with pytest.raises(Damaged):
            sealer.open("idempotency", b"alice\x00k", bytes(bad))
    with pytest.raises(Damaged, match="form"):
        sealer.open("idempotency", b"k", sealer.seal("messages", b"k", b"v"))
    with pytest.raises(Damaged):
        sealer.open("messages", b"k", entry)
