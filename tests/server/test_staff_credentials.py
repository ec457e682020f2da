"""Session credentials (kefu.server.identity.credentials) and staff accounts (kefu.server.identity.staff): a real
sealed store, the real handshake core, several AppDirectory views of one store standing for gateway processes."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.protocol.crypto import Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionTerminated, HandshakeComplete, TicketReceived
from kefu.protocol.handshake import MAX_SESSION_KEYS, SESSION_KEY_PREFIX, ClientConfig, ServerConfig
from kefu.protocol.tickets import SessionTicket
from kefu.server.identity import credentials, keys, staff
from kefu.server.identity.datakeys import sealer_of
from kefu.server.identity.orders import OrderBook, OrderKind
from kefu.server.storage.store import Store

from ..protocol.pairs import PINS, Pair, server_config

NAME = "agent-1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A sealed store with the identity layer's tables registered, as `wiring.open_store` opens it."""
    s = Store(tmp_path / "db", sealer=sealer_of(tmp_path, "sm4-gcm"), tables=staff.TABLES)
    yield s
    s.close()


def _server(store: Store) -> ServerConfig:
    return server_config(apps=keys.AppDirectory(store))


def _connect(config: ServerConfig, secret: bytes, *, now: float, suite: Suite = Suite.NATIONAL, **more: object) -> Pair:
    client = ClientConfig(NAME, PINS, (suite,), app_secret=secret, **more)  # type: ignore[arg-type]
    pair = Pair(client, config, now=now)
    pair.start(now=now)
    pair.pump()
    return pair


def _done(pair: Pair) -> HandshakeComplete:
    (event,) = pair.of("server", HandshakeComplete)
    return event  # type: ignore[no-any-return]


def _refused(pair: Pair) -> ErrorCode:
    assert not pair.of("server", HandshakeComplete)
    (event,) = pair.of("server", ConnectionTerminated)
    return event.code  # type: ignore[no-any-return]


@pytest.mark.parametrize("suite", [Suite.NATIONAL, Suite.INTERNATIONAL], ids=lambda s: s.name)
def test_a_session_credential_authenticates_beside_the_apps_own_secret(store: Store, suite: Suite) -> None:
    _, own = keys.create_app(store, NAME, role="agent", tenant="bank")
    now = time.time()
    issued = credentials.issue(store, NAME, ttl_s=3600, now=now)
    config = _server(store)
    done = _done(_connect(config, issued.secret, now=now, suite=suite))
    assert done.app_id == NAME and done.client_key == issued.credential_id
    assert issued.credential_id.startswith(SESSION_KEY_PREFIX)
    assert _done(_connect(config, own, now=now, suite=suite)).client_key == ""
    assert _refused(_connect(config, b"\x07" * 32, now=now, suite=suite)) is ErrorCode.AUTH_FAILED


def test_another_process_sees_a_new_credential_at_once_and_a_revoked_one_refused(store: Store) -> None:
    keys.create_app(store, NAME, role="agent", tenant="bank")
    other = _server(store)  # another gateway's directory, with the app already cached
    now = time.time()
    assert _refused(_connect(other, b"\x01" * 32, now=now)) is ErrorCode.AUTH_FAILED
    issued = credentials.issue(store, NAME, ttl_s=3600, now=now)
    assert _done(_connect(other, issued.secret, now=now)).client_key == issued.credential_id
    assert credentials.revoke(store, NAME, issued.secret, now=now) is True
    assert _refused(_connect(other, issued.secret, now=now)) is ErrorCode.AUTH_FAILED
    assert credentials.revoke(store, NAME, issued.secret, now=now) is False
    (order,) = OrderBook.decode(store.app_orders()).orders
    assert (OrderKind(order.kind), order.app_id, order.pin) == (OrderKind.SIGNED_OUT, NAME, issued.credential_id)
    assert order.matches(NAME, issued.credential_id) and not order.matches(NAME, "")


def test_an_expired_credential_is_refused_and_purged(store: Store) -> None:
    keys.create_app(store, NAME, role="agent", tenant="bank")
    now = time.time()
    issued = credentials.issue(store, NAME, ttl_s=60, now=now)
    config = _server(store)
    assert _done(_connect(config, issued.secret, now=now + 59))
    assert _refused(_connect(config, issued.secret, now=now + 61)) is ErrorCode.AUTH_FAILED
    assert credentials.check_secret(config.apps, NAME, issued.secret, now=now + 59)
    assert not credentials.check_secret(config.apps, NAME, issued.secret, now=now + 61)
    assert credentials.purge_expired(store, now=now + 30) == set()
    assert credentials.purge_expired(store, now=now + 61) == {NAME}
    assert credentials.read_session_keys(store, NAME) == []


def _ticket(pair: Pair, now: float) -> SessionTicket:
    (event,) = pair.of("client", TicketReceived)
    return dataclasses.replace(event.ticket, received_at=now)


def test_tickets_do_not_outlive_their_credential(store: Store) -> None:
    _, own = keys.create_app(store, NAME, role="agent", tenant="bank")
    now = time.time()
    issued = credentials.issue(store, NAME, ttl_s=100, now=now)
    config = _server(store)
    ticket = _ticket(_connect(config, issued.secret, now=now), now)
    assert 99 <= ticket.lifetime_s <= 100  # the server's ticket lifetime is longer: capped to the credential's
    resumed = _done(_connect(config, issued.secret, now=now + 1, ticket=ticket))
    assert resumed.resumed and resumed.client_key == issued.credential_id
    again = _ticket(_connect(config, issued.secret, now=now + 2), now + 2)
    credentials.revoke(store, NAME, issued.secret, now=now + 3)
    # the ticket is refused: the client goes on with a full handshake, which its revoked secret fails...
    assert _refused(_connect(config, issued.secret, now=now + 3, ticket=again)) is ErrorCode.AUTH_FAILED
    # ... and which the app's own secret passes, not resumed (the ticket alone no longer opens a session)
    full = _done(_connect(config, own, now=now + 3, ticket=again))
    assert not full.resumed and full.client_key == ""
    late = _ticket(_connect(config, own, now=now + 4), now + 4)
    assert late.lifetime_s > 100  # the app's own secret: the server's ticket lifetime


def test_an_app_holds_at_most_max_session_keys_and_the_oldest_goes(store: Store) -> None:
    keys.create_app(store, NAME, role="agent", tenant="bank")
    now = time.time()
    issued = [credentials.issue(store, NAME, ttl_s=3600, now=now + i) for i in range(MAX_SESSION_KEYS + 2)]
    config = _server(store)
    assert len(credentials.read_session_keys(store, NAME)) == MAX_SESSION_KEYS
    for old in issued[:2]:
        assert _refused(_connect(config, old.secret, now=now + 20)) is ErrorCode.AUTH_FAILED
    for new in (issued[2], issued[-1]):
        assert _done(_connect(config, new.secret, now=now + 20)).client_key == new.credential_id
    orders = OrderBook.decode(store.app_orders()).orders
    assert [o.pin for o in orders] == [issued[0].credential_id, issued[1].credential_id]


def test_signing_out_everywhere_revokes_every_credential_and_orders_every_session_ended(store: Store) -> None:
    keys.create_app(store, NAME, role="agent", tenant="bank")
    now = time.time()
    issued = [credentials.issue(store, NAME, ttl_s=3600, now=now) for _ in range(3)]
    assert credentials.revoke_all(store, NAME, now=now) == 3
    config = _server(store)
    for each in issued:
        assert _refused(_connect(config, each.secret, now=now)) is ErrorCode.AUTH_FAILED
    order = OrderBook.decode(store.app_orders()).orders[-1]
    assert order.pin == "" and order.matches(NAME, issued[0].credential_id)


def test_check_secret_and_the_bearer(store: Store) -> None:
    _, own = keys.create_app(store, NAME, role="agent", tenant="bank")
    now = time.time()
    issued = credentials.issue(store, NAME, ttl_s=3600, now=now)
    apps = keys.AppDirectory(store)
    header = f"Kefu-Session {NAME}:{keys.encode_secret(issued.secret)}"
    assert credentials.parse_bearer(header) == (NAME, issued.secret)
    for bad in ("Bearer x:y", f"Kefu-Session {NAME}", f"Kefu-Session :{keys.encode_secret(own)}", "Kefu-Session a:!!"):
        assert credentials.parse_bearer(bad) is None
    assert credentials.check_secret(apps, NAME, issued.secret, now=now)
    assert not credentials.check_secret(apps, NAME, own, now=now), "an app's own secret is for signing, never a bearer"
    assert not credentials.check_secret(apps, NAME, b"\x00" * 32, now=now)
    assert not credentials.check_secret(apps, "nobody", issued.secret, now=now)
    assert not credentials.check_secret(apps, "", issued.secret, now=now)


def test_staff_passwords_are_scrypt_hashes_with_their_parameters(store: Store) -> None:
    record = staff.add_staff(store, NAME, "correct horse battery", now_ms=1)
    stored = staff.get_staff(store, NAME)
    assert stored == record and stored.kdf == "scrypt" and len(stored.salt) == 16
    assert (1 << stored.log2_n, stored.r, stored.p) == (2**15, 8, 1)
    expected = hashlib.scrypt(b"correct horse battery", salt=stored.salt, n=2**15, r=8, p=1, maxmem=64 << 20, dklen=32)
    assert stored.password_hash == expected
    assert staff.authenticate(store, NAME, "correct horse battery")
    assert not staff.authenticate(store, NAME, "correct horse batterz")
    assert not staff.authenticate(store, "nobody", "correct horse battery")
    with pytest.raises(staff.StaffError, match="already exists"):
        staff.add_staff(store, NAME, "another long password", now_ms=2)
    with pytest.raises(staff.StaffError, match="at least"):
        staff.set_password(store, NAME, "short")
    staff.set_password(store, NAME, "a brand new password")
    assert not staff.authenticate(store, NAME, "correct horse battery")
    assert staff.authenticate(store, NAME, "a brand new password")
    assert [name for name, _ in staff.list_staff(store)] == [NAME]
    assert staff.remove_staff(store, NAME) and not staff.remove_staff(store, NAME)
    assert not staff.authenticate(store, NAME, "a brand new password")


def test_a_weaker_hash_is_replaced_at_the_next_sign_in(store: Store) -> None:
    weak = staff.hash_password("an old weak password", now_ms=1, params=staff.ScryptParams(10, 8, 1))
    staff._put(store, NAME, weak, new=True)
    assert staff.get_staff(store, NAME).needs_rehash()  # type: ignore[union-attr]
    assert staff.authenticate(store, NAME, "an old weak password")
    stronger = staff.get_staff(store, NAME)
    assert stronger is not None and not stronger.needs_rehash() and stronger.params == staff.DEFAULT_PARAMS
    assert staff.authenticate(store, NAME, "an old weak password")


def test_a_disabled_account_cannot_sign_in(store: Store) -> None:
    record = staff.add_staff(store, NAME, "correct horse battery", now_ms=1)
    staff._put(store, NAME, dataclasses.replace(record, enabled=0), new=False)
    assert not staff.authenticate(store, NAME, "correct horse battery")


def test_an_app_registered_again_does_not_inherit_the_revoked_ones_credentials(store: Store) -> None:
    keys.create_app(store, NAME, role="agent", tenant="bank")
    now = time.time()
    issued = credentials.issue(store, NAME, ttl_s=3600, now=now)
    assert keys.revoke_app(store, NAME)
    keys.create_app(store, NAME, role="agent", tenant="bank")
    assert credentials.read_session_keys(store, NAME) == []
    assert _refused(_connect(_server(store), issued.secret, now=now)) is ErrorCode.AUTH_FAILED


def test_the_purge_names_the_app_whatever_bytes_the_credential_id_holds(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A credential id is 16 random bytes, a NUL among them about one time in sixteen: the purge still names the app
    (it once took the key up to its last NUL for the app id)."""
    keys.create_app(store, NAME, role="agent", tenant="bank")
    draw = secrets.token_bytes
    monkeypatch.setattr(credentials.secrets, "token_bytes", lambda n: b"\0" * n if n == credentials.ID_LEN else draw(n))
    now = time.time()
    credentials.issue(store, NAME, ttl_s=60, now=now)
    assert credentials.purge_expired(store, now=now + 61) == {NAME}
    assert credentials.read_session_keys(store, NAME) == []
