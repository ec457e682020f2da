"""CLIENT_FINISHED under the right keys: the server's authentication checks, fuzzed (spec/PROTOCOL.md section 5.5).

Mutating an encrypted flight (test_fuzz_protocol) never gets past the record's AEAD tag or the finished MAC, so the
checks behind them are never fuzzed there. Here a client holding the real handshake keys sends CLIENT_FINISHED fields
of any shape -- any auth mode (RESUMED in a full handshake too), app ids empty, with NUL, the longest or not UTF-8,
proofs and signatures random, altered, by the wrong key or over the wrong message, any key type and public key --
sealed under c_hs with a correct verify_data. Each attempt starts from what the holder of a secret or a client key
(the app's or not) would send, and each field is replaced by a wild value or not, so most attempts are wrong in one
or two fields only and get as far into the checks as they can.

The server must not raise, must end with a code a peer may cause (never INTERNAL_ERROR, never BAD_FINISHED: the MAC
is right), must say only AUTH_FAILED_REASON on the wire when authentication fails, and must complete the handshake
exactly when the fields are a valid credential.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kefu.protocol import crypto, frames
from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.codes import ErrorCode
from kefu.protocol.crypto import SUITES, KeyType, SigningKey, Suite
from kefu.protocol.events import ConnectionTerminated, HandshakeComplete, TicketReceived
from kefu.protocol.frames import AuthMode, FrameType
from kefu.protocol.handshake import CLIENT_SIGNATURE_CONTEXT, ClientConfig, Transcript, app_proof, prefix16
from kefu.protocol.keyschedule import KeySchedule
from kefu.protocol.serverconn import AUTH_FAILED_REASON
from kefu.protocol.tickets import SessionTicket

from ..protocol.pairs import APP_ID, APP_SECRET, CLIENT_KEYS, Pair, client_config, server_config
from .test_fuzz_protocol import FROM_PEER_INPUT, mutation

STRANGERS = {key_type: SigningKey.generate(key_type) for key_type in KeyType}
"""Client keys of the right types that no app registered."""
WRONG_SECRET = b"\x12" * 32


@dataclass(frozen=True)
class Proof:
    """How the forger makes `proof`: by `holder` (a client key signs, an app secret makes APP_SECRET's proof) over
    the covered hash, or `fixed` bytes when there is no holder; then maybe altered."""

    holder: SigningKey | bytes | None
    fixed: bytes = b""
    context: bytes = CLIENT_SIGNATURE_CONTEXT
    alter: Callable[[bytes], bytes] | None = None

    def make(self, hash_name: str, covered: bytes) -> tuple[bytes, bytes]:
        """(what the holder made, what is sent)."""
        match self.holder:
            case SigningKey() as key:
                made = key.sign(self.context + covered)
            case bytes() as secret:
                made = app_proof(hash_name, APP_ID, secret, covered)
            case _:
                made = self.fixed
        return made, made if self.alter is None else self.alter(made)


@dataclass(frozen=True)
class Attempt:
    """One CLIENT_FINISHED a client sends in a full or a resumed handshake of `suite`."""

    suite: Suite
    resumed: bool
    app_id: bytes
    auth_mode: int
    key_type: int
    public_key: bytes
    proof: Proof


class ForgingClient(ClientConnection):
    """The real client role, but its CLIENT_FINISHED carries `attempt`'s fields, with the MAC an honest client's
    would have over them (app_id as raw bytes, so that it need not be UTF-8)."""

    __slots__ = ("attempt", "made", "sent")

    def __init__(self, config: ClientConfig, attempt: Attempt) -> None:
        super().__init__(config, now=0.0)
        self.attempt = attempt
        self.made = self.sent = b""

    def _send_client_finished(self, spec: crypto.SuiteSpec, transcript: Transcript, schedule: KeySchedule) -> None:
        a = self.attempt
        body = bytes((len(a.app_id),)) + a.app_id + bytes((a.auth_mode,)) + a.key_type.to_bytes(2, "big")
        body += prefix16(a.public_key)
        self.made, self.sent = a.proof.make(spec.hash_name, transcript.digest(body))
        body += prefix16(self.sent)
        assert self._send is not None
        mac = crypto.hmac_digest(spec.hash_name, schedule.finished_key(self._send.secret), transcript.digest(body))
        body += bytes((len(mac),)) + mac
        self._queue(frames.HEADER.pack(len(body), frames.PROTOCOL_VERSION, FrameType.CLIENT_FINISHED, 0, 0) + body)


def is_credential(a: Attempt, made: bytes, sent: bytes) -> bool:
    """Whether section 5.5 accepts these fields. RESUMED: empty app id and proof (key_type and public_key are not
    looked at). APP_SECRET: the proof from the app's secret over these fields, whatever key_type and public_key say
    (the acceptance rule reads only the proof). CLIENT_KEY: the suite's key type, a registered key, its signature."""
    if a.resumed:
        return a.auth_mode == AuthMode.RESUMED and not a.app_id and not sent
    if a.app_id != APP_ID.encode() or sent != made:
        return False
    if a.auth_mode == AuthMode.APP_SECRET:
        return a.proof.holder == APP_SECRET
    key = CLIENT_KEYS[SUITES[a.suite].key_type]
    return (
        a.auth_mode == AuthMode.CLIENT_KEY
        and a.proof.holder is key
        and a.proof.context == CLIENT_SIGNATURE_CONTEXT
        and (a.key_type, a.public_key) == (key.key_type, key.verify_key.public_bytes)
    )


def honest(suite: Suite, resumed: bool, holder: SigningKey | bytes) -> Attempt:
    """What a client holding `holder` (a client key or an app secret, registered for APP_ID or not) sends."""
    if resumed:
        return Attempt(suite, True, b"", AuthMode.RESUMED, 0, b"", Proof(None))
    if isinstance(holder, bytes):
        return Attempt(suite, False, APP_ID.encode(), AuthMode.APP_SECRET, 0, b"", Proof(holder))
    public = holder.verify_key.public_bytes
    return Attempt(suite, False, APP_ID.encode(), AuthMode.CLIENT_KEY, holder.key_type, public, Proof(holder))


def holders(suite: Suite) -> list[SigningKey | bytes]:
    """The app's secret, its client key of the suite's type, then what it does not hold or may not use here."""
    own, other = SUITES[suite].key_type, KeyType(3 - SUITES[suite].key_type)
    return [APP_SECRET, CLIENT_KEYS[own], WRONG_SECRET, STRANGERS[own], CLIENT_KEYS[other], STRANGERS[other]]


PUBLIC_KEYS = [k.verify_key.public_bytes for k in (*CLIENT_KEYS.values(), *STRANGERS.values())]
WILD_APP_IDS = st.one_of(
    st.sampled_from(
        ["", "nobody", "a\x00b", APP_ID + "\x00", " " + APP_ID, "tab\tid", "\u200b", "é", APP_ID.upper(), "a" * 255]
    ).map(str.encode),
    st.text(max_size=40).map(str.encode),
    st.binary(max_size=255),  # mostly not UTF-8
)
WILD_AUTH_MODES = st.one_of(st.sampled_from(AuthMode), st.integers(0, 255))
WILD_KEY_TYPES = st.one_of(st.sampled_from([0, *KeyType]), st.integers(0, 0xFFFF))
WILD_PUBLIC_KEYS = st.one_of(
    st.sampled_from([b"", *PUBLIC_KEYS, b"\x04" + bytes(64), PUBLIC_KEYS[0][:-1] + b"\x00", PUBLIC_KEYS[1][:-1]]),
    st.binary(max_size=100),
)
WILD_PROOFS = st.one_of(
    st.builds(
        Proof,
        st.sampled_from([APP_SECRET, WRONG_SECRET, *CLIENT_KEYS.values(), *STRANGERS.values()]),
        context=st.sampled_from([CLIENT_SIGNATURE_CONTEXT, b"", CLIENT_SIGNATURE_CONTEXT[:-1]]),
    ),
    st.builds(Proof, st.none(), st.binary(max_size=120)),
    st.builds(Proof, st.none(), st.sampled_from([bytes(32), b"\x30\x06\x02\x01\x01\x02\x01\x01", bytes(64)])),
)


@st.composite
def attempts(draw: st.DrawFn) -> Attempt:
    """A credential sent as its holder would, each field then kept (two times in three: most attempts are wrong in
    one or two fields) or replaced by a wild value, the proof maybe altered after it is made. Shrinks towards the
    app's own secret and the fields as sent, so that a failure shows the fewest wild ones."""
    suite, resumed = draw(st.sampled_from(list(Suite))), draw(st.sampled_from([False, False, False, True]))
    a = honest(suite, resumed, draw(st.sampled_from(holders(suite))))

    def kept_or(value: Any, wild: st.SearchStrategy[Any]) -> Any:
        return value if draw(st.sampled_from([True, True, False])) else draw(wild)

    proof = kept_or(a.proof, WILD_PROOFS)
    return replace(
        a,
        app_id=kept_or(a.app_id, WILD_APP_IDS),
        auth_mode=kept_or(a.auth_mode, WILD_AUTH_MODES),
        key_type=kept_or(a.key_type, WILD_KEY_TYPES),
        public_key=kept_or(a.public_key, WILD_PUBLIC_KEYS),
        proof=replace(proof, alter=kept_or(None, mutation())),
    )


def ticket(suite: Suite) -> SessionTicket:
    pair = Pair(client_config(suite), server_config()).handshake()
    received: list[TicketReceived] = pair.of("client", TicketReceived)
    (event,) = received
    return replace(event.ticket, received_at=0.0)


TICKETS = {suite: ticket(suite) for suite in Suite}
"""One per suite: every example's server has a fresh ticket guard, so each may use it."""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(attempts())
def test_server_authenticates_exactly_the_valid_client_finished(a: Attempt) -> None:
    config = client_config(a.suite, ticket=TICKETS[a.suite] if a.resumed else None)
    pair = Pair(config, server_config())
    pair.client = client = ForgingClient(config, a)
    pair.start()
    pair.server.receive_data(client.data_to_send())
    client.receive_data(pair.server.data_to_send())
    pair.server.receive_data(client.data_to_send())  # an exception here is a bug the core let escape
    events = pair.server.events_received()
    if is_credential(a, client.made, client.sent):
        (done,) = events
        assert isinstance(done, HandshakeComplete), done
        pin = a.proof.holder.verify_key.fingerprint() if isinstance(a.proof.holder, SigningKey) else ""
        assert (done.app_id, done.resumed, done.client_key) == (APP_ID, a.resumed, "" if a.resumed else pin)
        return
    assert not any(isinstance(e, HandshakeComplete) for e in events), f"{a} authenticated, proof {client.sent.hex()}"
    (end,) = events
    assert isinstance(end, ConnectionTerminated) and not end.by_peer, end
    assert end.code in FROM_PEER_INPUT, end
    assert end.code is not ErrorCode.BAD_FINISHED, "the forger's MAC is wrong: the checks behind it went untested"
    if end.code is ErrorCode.AUTH_FAILED:  # the client learns nothing of what failed
        client.events_received()
        client.receive_data(pair.server.data_to_send())
        told = [e for e in client.events_received() if isinstance(e, ConnectionTerminated)]
        assert told == [ConnectionTerminated(ErrorCode.AUTH_FAILED, AUTH_FAILED_REASON, True)]
