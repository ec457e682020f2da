"""The handshake end to end in memory: both suites, both client auth modes, and every refusal."""

from __future__ import annotations

import dataclasses
import functools
from enum import IntEnum

import pytest

from kefu.protocol import clientconn, frames
from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.connection import State
from kefu.protocol.crypto import KeyType, SigningKey, Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionTerminated, HandshakeComplete
from kefu.protocol.frames import AuthMode, FrameDecoder, FrameType
from kefu.protocol.handshake import AppCredential
from kefu.protocol.serverconn import AUTH_FAILED_REASON

from .pairs import APP_ID, CLIENT_KEYS, SERVER_KEYS, Pair, client_config, server_config

SUITES = [Suite.NATIONAL, Suite.INTERNATIONAL]


def terminated(pair: Pair, side: str) -> ConnectionTerminated:
    (event,) = pair.of(side, ConnectionTerminated)
    return event


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_full_handshake_and_frames_both_ways(suite: Suite) -> None:
    pair = Pair(client_config(suite), server_config()).handshake()
    (c_done,) = pair.of("client", HandshakeComplete)
    (s_done,) = pair.of("server", HandshakeComplete)
    assert c_done.suite is s_done.suite is suite
    assert not c_done.resumed and not s_done.resumed
    assert s_done.app_id == APP_ID
    assert (
        c_done.server_key
        == SERVER_KEYS[KeyType.SM2 if suite is Suite.NATIONAL else KeyType.ED25519].verify_key.fingerprint()
    )
    send = frames.Send(b"m" * 16, 42, frames.ContentType.TEXT, "你好".encode(), (frames.MetaEntry("lang", b"zh"),))
    pair.client.send(send)
    pair.pump()
    assert pair.of("server", frames.Send) == [send]
    deliver = frames.Deliver(42, 1, 9, 1_700_000_000_000, b"m" * 16, 1, "visitor-1", b"hi")
    pair.server.send(deliver)
    pair.pump()
    assert pair.of("client", frames.Deliver) == [deliver]


@pytest.mark.parametrize("key_type", list(KeyType), ids=lambda k: k.name)
@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_client_key_authentication(suite: Suite, key_type: KeyType) -> None:
    """A client key of the suite's own type authenticates; the other type is refused (no mixed sessions)."""
    config = client_config(suite, app_secret=None, client_key=CLIENT_KEYS[key_type])
    pair = Pair(config, server_config()).handshake()
    if key_type is not (KeyType.SM2 if suite is Suite.NATIONAL else KeyType.ED25519):
        assert terminated(pair, "server").code is ErrorCode.AUTH_FAILED
        return
    (s_done,) = pair.of("server", HandshakeComplete)
    assert s_done.client_key == CLIENT_KEYS[key_type].verify_key.fingerprint()
    assert s_done.app_id == APP_ID


def test_unregistered_client_key_is_refused() -> None:
    stranger = SigningKey.generate(KeyType.SM2)
    pair = Pair(client_config(app_secret=None, client_key=stranger), server_config()).handshake()
    assert terminated(pair, "server").code is ErrorCode.AUTH_FAILED
    assert terminated(pair, "client") == ConnectionTerminated(ErrorCode.AUTH_FAILED, AUTH_FAILED_REASON, True)


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_wrong_secret_and_unknown_app_are_refused(suite: Suite) -> None:
    for config in (
        client_config(suite, app_secret=b"\x12" * 32),
        client_config(suite, app_id="nobody"),
    ):
        pair = Pair(config, server_config()).handshake()
        assert terminated(pair, "server").code is ErrorCode.AUTH_FAILED
        assert terminated(pair, "client").code is ErrorCode.AUTH_FAILED
        assert not pair.of("server", HandshakeComplete)


class _LaterAuthMode(IntEnum):
    """The auth modes of a client of some later protocol version, which proves its secret under a mode number (9) this
    server does not know."""

    RESUMED = 0
    APP_SECRET = 9
    CLIENT_KEY = 2


def test_every_authentication_failure_says_the_same_on_the_wire_and_the_truth_to_the_server(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Section 5.5: the peer learns only AUTH_FAILED and one reason (not whether the app id exists); the server's
    event keeps what failed, for its log."""
    stranger = SigningKey.generate(KeyType.SM2)
    impostor = SigningKey.generate(KeyType.SM2)
    impostor.verify_key = CLIENT_KEYS[KeyType.SM2].verify_key  # shows a registered public key, signs with its own
    by_key = functools.partial(client_config, app_secret=None)
    cases = {
        "unknown app": (client_config(app_id="nobody"), AuthMode),
        "app proof does not verify": (client_config(app_secret=b"\x12" * 32), AuthMode),
        "client key not registered for this app": (by_key(client_key=stranger), AuthMode),
        "client key type must be SM2": (by_key(client_key=CLIENT_KEYS[KeyType.ED25519]), AuthMode),
        "client signature does not verify": (by_key(client_key=impostor), AuthMode),
        "unknown auth mode 9": (client_config(), _LaterAuthMode),
    }
    for why, (config, modes) in cases.items():
        monkeypatch.setattr(clientconn, "AuthMode", modes)  # the auth mode numbers the client sends
        pair = Pair(config, server_config()).handshake()
        assert terminated(pair, "client") == ConnectionTerminated(ErrorCode.AUTH_FAILED, AUTH_FAILED_REASON, True)
        assert terminated(pair, "server") == ConnectionTerminated(ErrorCode.AUTH_FAILED, why, False)
        assert pair.server.claimed_app_id == config.app_id


@pytest.mark.parametrize("app_id", ["", "a\x00b", "tab\tid", "new\nline", "\u200b"], ids=repr)
def test_a_malformed_app_id_is_an_authentication_failure_not_an_internal_error(app_id: str) -> None:
    pair = Pair(client_config(app_id=app_id), server_config()).handshake()
    assert terminated(pair, "client") == ConnectionTerminated(ErrorCode.AUTH_FAILED, AUTH_FAILED_REASON, True)
    assert terminated(pair, "server").reason == "malformed app id"


class _ClaimsResumption(ClientConnection):
    """A client that sends auth mode RESUMED (no app id, no proof) in a full handshake."""

    def _send_client_finished(self, *args: object) -> None:
        self._resumed = True
        try:
            super()._send_client_finished(*args)  # type: ignore[arg-type]
        finally:
            self._resumed = False


def test_auth_mode_resumed_in_a_full_handshake_is_an_authentication_failure() -> None:
    pair = Pair(client_config(), server_config())
    pair.client = _ClaimsResumption(client_config(), now=0.0)
    pair.handshake()
    assert terminated(pair, "server") == ConnectionTerminated(
        ErrorCode.AUTH_FAILED, "auth mode RESUMED in a full handshake", False
    )
    assert terminated(pair, "client").code is ErrorCode.AUTH_FAILED


def test_secret_never_crosses_the_wire() -> None:
    pair = Pair(client_config(Suite.INTERNATIONAL), server_config()).handshake()
    wire = b"".join(pair.wire_to_server)
    assert b"\x11" * 32 not in wire
    assert APP_ID.encode() not in wire, "the app id travels encrypted"


def test_verifier_alone_does_not_authenticate() -> None:
    """A stolen StoredKey used as if it were the secret fails."""
    stored = AppCredential.from_secret(APP_ID, b"\x11" * 32).stored_keys["sm3"]
    pair = Pair(client_config(app_secret=stored), server_config()).handshake()
    assert terminated(pair, "server").code is ErrorCode.AUTH_FAILED


@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_unpinned_server_key_is_refused(suite: Suite) -> None:
    pair = Pair(client_config(suite, server_pins=frozenset({"sm2:00", "ed25519:00"})), server_config()).handshake()
    assert terminated(pair, "client").code is ErrorCode.SERVER_KEY_NOT_PINNED
    assert pair.server.state is State.CLOSED


def test_rotation_accepts_either_pinned_key() -> None:
    new_key = SigningKey.generate(KeyType.SM2)
    pins = frozenset({SERVER_KEYS[KeyType.SM2].verify_key.fingerprint(), new_key.verify_key.fingerprint()})
    for keys in (SERVER_KEYS, {KeyType.SM2: new_key}):
        pair = Pair(client_config(server_pins=pins), server_config(keys=keys)).handshake()
        assert pair.of("client", HandshakeComplete)


def test_no_common_suite() -> None:
    pair = Pair(client_config(Suite.INTERNATIONAL), server_config(suites=(Suite.NATIONAL,))).handshake()
    assert terminated(pair, "server").code is ErrorCode.NO_COMMON_SUITE
    assert terminated(pair, "client").code is ErrorCode.NO_COMMON_SUITE


def _rewrite_hello(data: bytes, **changes: object) -> bytes:
    (raw, *rest) = FrameDecoder().feed(data)
    hello = frames.decode_frame(raw)
    assert isinstance(hello, frames.ClientHello) and not rest
    return frames.encode(dataclasses.replace(hello, **changes))


def test_downgrade_by_stripping_the_offer_is_detected() -> None:
    """A network attacker removes the national suite from the offer.

    The transcript (offer included) feeds both the handshake keys and the server's signature, so the client
    cannot even open the server's encrypted flight: it fails before any suite-dependent step completes.
    """
    config = client_config(suites=(Suite.NATIONAL, Suite.INTERNATIONAL))
    pair = Pair(config, server_config())
    pair.to_server = lambda data: (
        _rewrite_hello(data, suites=(Suite.INTERNATIONAL,)) if data[5] == FrameType.CLIENT_HELLO else data
    )
    pair.handshake()
    assert terminated(pair, "client").code is ErrorCode.BAD_RECORD_MAC
    assert not pair.of("client", HandshakeComplete)
    assert not pair.of("server", HandshakeComplete)


def test_server_choosing_an_unoffered_suite_is_a_downgrade() -> None:
    pair = Pair(client_config(Suite.NATIONAL), server_config())

    def rewrite(data: bytes) -> bytes:
        raws = FrameDecoder().feed(data)
        if raws[0].frame_type != FrameType.SERVER_HELLO:
            return data
        hello = frames.decode_frame(raws[0])
        assert isinstance(hello, frames.ServerHello)
        return frames.encode(dataclasses.replace(hello, suite=Suite.INTERNATIONAL)) + b"".join(
            r.header + r.body for r in raws[1:]
        )

    pair.to_client = rewrite
    pair.handshake()
    assert terminated(pair, "client").code is ErrorCode.DOWNGRADE_DETECTED


def test_invalid_key_share_is_refused() -> None:
    pair = Pair(client_config(Suite.NATIONAL), server_config())
    bad_point = b"\x04" + b"\x01" * 64
    pair.to_server = lambda data: _rewrite_hello(data, key_shares=(frames.KeyShareEntry(Suite.NATIONAL, bad_point),))
    pair.handshake()
    assert terminated(pair, "server").code is ErrorCode.BAD_KEY_SHARE


def test_client_prefers_nothing_weaker_on_its_own() -> None:
    """The client offers exactly its configured suites, in order, in one hello; there is no retry logic."""
    pair = Pair(client_config(suites=(Suite.NATIONAL,)), server_config(suites=(Suite.INTERNATIONAL,))).handshake()
    assert terminated(pair, "client").code is ErrorCode.NO_COMMON_SUITE
    hellos = [
        r for data in pair.wire_to_server for r in FrameDecoder().feed(data) if r.frame_type == FrameType.CLIENT_HELLO
    ]
    assert len(hellos) == 1
    assert pair.client.state is State.CLOSED


def test_handshake_timeout() -> None:
    pair = Pair(client_config(), server_config())
    pair.start()
    deadline = pair.server.get_timer()
    assert deadline is not None
    pair.server.handle_timer(deadline - 0.001)
    assert pair.server.state is State.START
    pair.server.handle_timer(deadline)
    assert pair.server.events_received()[0].code is ErrorCode.HANDSHAKE_TIMEOUT
