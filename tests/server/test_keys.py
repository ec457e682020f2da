"""kefu.server.identity.keys: key files, rotation, ticket keys, app records and the app directory (real LMDB store)."""

from __future__ import annotations

import io
import logging
import re
import stat
from pathlib import Path

import pytest

from kefu.protocol import handshake
from kefu.protocol.crypto import KeyType, Suite
from kefu.protocol.handshake import AppCredential
from kefu.protocol.tickets import TicketState
from kefu.server.engine.identity import ROLES
from kefu.server.identity import keys
from kefu.server.storage.store import Store

PIN = "ed25519:" + "ab" * 32


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_generates_keys_and_dev_app(tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    out = io.StringIO()
    with caplog.at_level(logging.WARNING, logger="kefu"):
        ring = keys.load_or_create(tmp_path, store, out=out)
    keydir = tmp_path / "keys"
    assert mode(keydir) == 0o700
    names = sorted(p.name for p in keydir.iterdir())
    assert names == ["data-1.key", "dev-app.secret", "ed25519-1.key", "sm2-1.key", "ticket.key"]  # data-1: the store's
    assert all(mode(keydir / n) == 0o600 for n in names)
    assert set(ring.signing_keys()) == {KeyType.SM2, KeyType.ED25519}
    printed = out.getvalue()
    assert "DEVELOPMENT" in printed and all(pin in printed for pin in ring.pins)
    assert {r.msg for r in caplog.records} >= {"keys.generated", "keys.dev_app_created"}
    # the dev app's secret: printed once, saved 0600, and it matches the stored verifiers
    secret = keys.decode_secret((keydir / "dev-app.secret").read_text())
    assert keys.encode_secret(secret) in printed
    assert f"kept in {keydir / 'dev-app.secret'}" in printed and "shown once" not in printed, "says where it is kept"
    pins = keys.write_pins(tmp_path).read_bytes()
    assert pins == "".join(f"{pin}\n" for pin in ring.pins).encode(), "one pin a line, the last one ended too"
    assert ring.apps["dev"] == AppCredential.from_secret("dev", secret)
    # ... and never logged
    assert not any(keys.encode_secret(secret) in str(r.__dict__) for r in caplog.records)


def test_later_starts_load_the_same_keys_quietly(tmp_path: Path, store: Store) -> None:
    first = keys.load_or_create(tmp_path, store, out=io.StringIO())
    out = io.StringIO()
    again = keys.load_or_create(tmp_path, store, out=out)
    assert again.pins == first.pins
    assert out.getvalue() == ""
    assert again.signing_keys()[KeyType.SM2].private_bytes() == first.signing_keys()[KeyType.SM2].private_bytes()


def test_rotation_newest_signs_and_every_key_stays_pinned(tmp_path: Path, store: Store) -> None:
    first = keys.load_or_create(tmp_path, store, out=io.StringIO())
    added = keys.add_key(tmp_path, KeyType.SM2)
    assert added.path.name == "sm2-2.key" and mode(added.path) == 0o600
    ring = keys.load_or_create(tmp_path, store, out=io.StringIO())
    assert ring.signing_keys()[KeyType.SM2].verify_key.fingerprint() == added.pin
    assert ring.pins[0] == added.pin and set(first.pins) < set(ring.pins)
    assert keys.add_key(tmp_path, KeyType.SM2).index == 3


def test_add_key_never_overwrites(tmp_path: Path) -> None:
    keys.add_key(tmp_path, KeyType.ED25519)
    with pytest.raises(FileExistsError):
        keys.write_private_file(tmp_path / "keys" / "ed25519-1.key", b"x" * 32)


def test_a_damaged_key_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "keys" / "sm2-1.key").write_bytes(b"short")
    with pytest.raises(ValueError, match="32-byte private key"):
        keys.load_keys(tmp_path)


def test_ticket_keys_rotate_at_each_start_and_open_the_previous_ones(tmp_path: Path, store: Store) -> None:
    state = TicketState(1, int(Suite.NATIONAL), 0, 600, 0, b"\x01" * 16, "dev", "", b"\x02" * 32)
    old = keys.load_or_create(tmp_path, store, out=io.StringIO()).ticket_keys
    sealed = old.seal(state, b"\x00" * 12)
    new = keys.load_or_create(tmp_path, store, out=io.StringIO()).ticket_keys
    assert new.open(sealed, Suite.NATIONAL) == state
    newest = keys.load_or_create(tmp_path, store, out=io.StringIO()).ticket_keys
    assert newest.open(sealed, Suite.NATIONAL) is None
    assert mode(tmp_path / "keys" / "ticket-previous.key") == 0o600


def test_app_record_round_trip_and_wire_form() -> None:
    rec = keys.AppRecord("a", 5, b"\x01" * 32, b"\x02" * 32, (keys.PinEntry(PIN),), "agent", "t1")
    raw = rec.encode()
    assert keys.AppRecord.decode(raw) == rec
    # client_key_pins is a Seq of Str8: count, then length-prefixed strings
    assert raw[1 + 1 + 8 + 33 + 33 :].startswith(b"\x01" + bytes([len(PIN)]) + PIN.encode())
    assert keys.AppRecord.decode(raw + b"later fields") == rec
    with pytest.raises(ValueError, match="corrupt"):
        keys.AppRecord.decode(raw[:10])


def test_create_list_revoke(tmp_path: Path, store: Store) -> None:
    rec, secret = keys.create_app(store, "bank-app", client_key_pins=[PIN, PIN], role="agent", tenant="branch 1")
    assert len(secret) == 32 and rec.pins == (PIN,)
    assert secret not in store.get_app("bank-app")  # type: ignore[operator]
    listed = keys.list_app_records(store)
    assert [(r.app_id, r.role, r.tenant) for r in listed] == [("bank-app", "agent", "branch 1")]
    cred = keys.AppDirectory(store)["bank-app"]
    assert cred == AppCredential.from_secret("bank-app", secret, frozenset({PIN}))
    # the verifiers are what the handshake checks a proof against
    proof = handshake.app_proof("sm3", "bank-app", secret, b"\x07" * 32)
    assert handshake.check_app_proof("sm3", cred.stored_keys["sm3"], proof, b"\x07" * 32)
    with pytest.raises(keys.AppError, match="already exists"):
        keys.create_app(store, "bank-app")
    assert keys.revoke_app(store, "bank-app") is True
    assert keys.revoke_app(store, "bank-app") is False


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"app_id": ""}, "invalid app id"),
        ({"app_id": "two words"}, "invalid app id"),
        ({"app_id": "x" * 256}, "invalid app id"),
        # '#' ids are the server's own senders (system EVENTs); any '#' prefix, not just the sender's name
        (
            {"app_id": "#kefu"},
            re.escape("invalid app id '#kefu': ids starting with '#' are the server's (system messages)"),
        ),
        ({"app_id": "#bank-app"}, re.escape("invalid app id '#bank-app': ids starting with '#' are the server's")),
        ({"app_id": "a", "client_key_pins": ["sm2:zz"]}, "invalid client key pin"),
        ({"app_id": "a", "role": "Admin!"}, "invalid role"),
    ],
)
def test_create_app_refuses_bad_input(store: Store, kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(keys.AppError, match=match):
        keys.create_app(store, **kwargs)  # type: ignore[arg-type]


def test_app_directory_cache_ttl_and_invalidate(store: Store) -> None:
    now = [0.0]
    apps = keys.AppDirectory(store, ttl_s=30.0, clock=lambda: now[0])
    assert "a" not in apps and len(apps) == 0
    keys.create_app(store, "a")
    assert "a" in apps and list(apps) == ["a"] and len(apps) == 1  # misses are not cached
    assert apps.record("a").role == "app"  # type: ignore[union-attr]
    keys.revoke_app(store, "a")
    assert "a" in apps  # cached ...
    now[0] = 31.0
    assert "a" not in apps  # ... until the entry is older than ttl_s
    keys.create_app(store, "b")
    assert "b" in apps
    keys.revoke_app(store, "b")
    apps.invalidate()
    assert "b" not in apps and apps.record("b") is None


def test_app_directory_cache_is_bounded(store: Store) -> None:
    apps = keys.AppDirectory(store, cache_size=2)
    for name in "abc":
        keys.create_app(store, name)
        assert apps[name].app_id == name
    assert len(apps._cache) == 2


def test_no_dev_app_when_apps_exist(tmp_path: Path, store: Store) -> None:
    keys.create_app(store, "prod")
    out = io.StringIO()
    ring = keys.load_or_create(tmp_path, store, out=out)
    assert list(ring.apps) == ["prod"]
    assert not (tmp_path / "keys" / "dev-app.secret").exists()
    assert "secret" not in out.getvalue()


def test_unknown_roles_are_refused(store: Store) -> None:
    with pytest.raises(keys.AppError, match="invalid role 'agnet'"):
        keys.create_app(store, "typo", role="agnet")
    for role in ROLES:
        assert keys.create_app(store, f"app-{role}", role=role)[0].role == role
