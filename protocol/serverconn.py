"""The server role of the handshake (spec/PROTOCOL.md section 5, server steps)."""

from __future__ import annotations

import os
from typing import NoReturn

from . import crypto
from .connection import Connection, Role, State
from .crypto import SUITES, KeyType, Suite
from .errors import CryptoError, ErrorCode, RemoteProtocolError
from .events import ConnectionTerminated, HandshakeComplete
from .frames import (
    AuthMode,
    ClientFinished,
    ClientHello,
    Goaway,
    NewTicket,
    PskMode,
    ServerFinished,
    ServerHello,
    encode,
)
from .handshake import (
    CLIENT_SIGNATURE_CONTEXT,
    MAX_SESSION_KEYS,
    SERVER_SIGNATURE_CONTEXT,
    Admission,
    AppCredential,
    HandshakeKind,
    ServerConfig,
    SessionKey,
    Transcript,
    check_app_proof,
    check_mac,
    choose_suite,
    clamp_keepalive,
    new_share,
    prefix16,
    random_bytes,
    server_signed_prefix,
    verify_signature,
)  # fmt: skip
from .keyschedule import KeySchedule
from .tickets import MAX_TICKET_LIFETIME_S, TICKET_VERSION, TicketState

AUTH_FAILED_REASON = "authentication failed"
"""The one reason an AUTH_FAILED gives on the wire, whatever failed (section 5.5)."""

_NO_STORED_KEY = bytes(crypto.HASH_LEN)
"""What an unknown app's proof is checked against (it never verifies: no key hashes to all zeros)."""


def is_app_id(app_id: str) -> bool:
    """The shape every registered app id has (section 5.5): 1-255 bytes of printable UTF-8, no spaces, no 0x00."""
    return bool(app_id) and app_id.isprintable() and not any(c.isspace() for c in app_id)


def _auth_failed(why: str) -> NoReturn:
    raise RemoteProtocolError(ErrorCode.AUTH_FAILED, AUTH_FAILED_REASON, detail=why)


class ServerConnection(Connection):
    """A server connection, created when a client connects; `now` is the accept time (ticket ages)."""

    __slots__ = (
        "_c_ap",
        "_credential_expires",
        "_keepalive_ms",
        "_now",
        "_schedule",
        "_ticket_state",
        "_transcript",
        "admission",
        "app_id",
        "claimed_app_id",
        "client_key",
        "config",
    )

    role = Role.SERVER

    def __init__(self, config: ServerConfig, *, now: float) -> None:
        super().__init__(now=now, handshake_timeout=config.handshake_timeout_s, tally=config.frame_tally)
        self.config = config
        self._now = now
        self._schedule: KeySchedule | None = None
        self._transcript: Transcript | None = None
        self._c_ap = b""
        self._ticket_state: TicketState | None = None
        self._keepalive_ms = 0
        self._credential_expires = 0.0
        """When the session credential this session authenticated with expires (0: not one): its tickets' bound."""
        self.app_id = ""
        self.claimed_app_id = ""
        """The app id a failed CLIENT_FINISHED claimed, for the server's log ("" until one arrives)."""
        self.client_key = ""
        self.admission: Admission | None = None
        """Asked before any asymmetric work whether this handshake may go on (set by the adapter; None: always)."""

    # --- CLIENT_HELLO -----------------------------------------------------------------------------------

    def _on_client_hello(self, hello: ClientHello, encoded: bytes) -> None:
        suite, opened = self._pick_suite(hello)
        if self.admission is not None:
            kind = HandshakeKind.FULL if opened is None else HandshakeKind.RESUMED
            if opened is not None and hello.psk_mode == PskMode.PSK_WITH_ECDHE:
                kind = HandshakeKind.RESUMED_ECDHE
            refusal = self.admission(suite, kind)
            if refusal is not None:
                self._refuse(refusal)
                return
        spec = SUITES[suite]
        self.suite = suite
        state, schedule = self._resume(hello, opened, suite, encoded) if hello.ticket else (None, None)
        if self.admission is not None and opened is not None and state is None:
            # A ticket that opened but does not resume (used already, expired, its app revoked: a replayed hello)
            # makes this a full handshake after all: it is charged as one, before any asymmetric work, and refused
            # like one when the budget says so. Otherwise a captured resumption hello would buy full handshakes at
            # the price of resumptions.
            refusal = self.admission(suite, HandshakeKind.FULL)
            if refusal is not None:
                self._refuse(refusal)
                return
        self._ticket_state = state
        psk = state.psk if state else None
        share_bytes, shared = b"", None
        if state is None or hello.psk_mode == PskMode.PSK_WITH_ECDHE:
            share_bytes, shared = self._key_exchange(hello, spec)
        self._keepalive_ms = clamp_keepalive(hello.keepalive_ms, self.config)
        reply = encode(
            ServerHello(
                random_bytes(self.config.fixed),
                suite,
                share_bytes,
                int(psk is not None),
                self._keepalive_ms,
            )
        )
        transcript = Transcript(spec.hash_name)
        transcript.add(encoded)
        transcript.add(reply)
        schedule = schedule or KeySchedule(spec.hash_name, None)
        schedule.add_shared_secret(shared)
        c_hs, s_hs = schedule.handshake_traffic(transcript.digest())
        self._transcript, self._schedule = transcript, schedule
        self._queue_plain(reply)
        self._set_send(s_hs)
        self._set_recv(c_hs)
        self._send_server_finished(spec, transcript, schedule, resumed=state is not None)
        self.state = State.WAIT_CLIENT_FINISHED

    def _refuse(self, goaway: Goaway) -> None:
        """Answer CLIENT_HELLO with a plaintext GOAWAY (section 5.9) and close: the handshake costs more than the
        server can afford now; nothing asymmetric was computed."""
        self._queue_plain(encode(goaway))
        self._events.append(ConnectionTerminated(ErrorCode(goaway.code), goaway.reason, by_peer=False))
        self.state = State.CLOSED
        self._timer = None

    def _pick_suite(self, hello: ClientHello) -> tuple[Suite, TicketState | None]:
        """The suite, and the ticket's state if the ticket opens under it (each ticket is opened once)."""
        keys = self.config.ticket_keys
        if hello.ticket and keys is not None:
            # A ticket's suite wins when the client still offers it, so that resumption can succeed.
            for suite in self.config.suites:
                if suite in hello.suites and (state := keys.open(hello.ticket, suite)) is not None:
                    return suite, state
        return choose_suite(hello.suites, self.config.suites), None

    def _key_exchange(self, hello: ClientHello, spec: crypto.SuiteSpec) -> tuple[bytes, bytes]:
        entry = next((e for e in hello.key_shares if e.suite == spec.suite), None)
        if entry is None:
            raise RemoteProtocolError(ErrorCode.BAD_KEY_SHARE, f"no key share for {spec.name}")
        share = new_share(spec, self.config.fixed)
        return share.public_bytes(), share.exchange(entry.key)

    def _resume(
        self, hello: ClientHello, state: TicketState | None, suite: Suite, encoded: bytes
    ) -> tuple[TicketState | None, KeySchedule | None]:
        """The ticket's state and its key schedule if it is valid, unused and its binder verifies; else Nones."""
        refused = (None, None)
        if state is None or hello.psk_mode not in (PskMode.PSK_ONLY, PskMode.PSK_WITH_ECDHE):
            self._no_resumption(hello, "ticket unreadable")
            return refused
        spec = SUITES[suite]
        covered = encoded[12 : -(1 + len(hello.binder))]
        schedule = KeySchedule(spec.hash_name, state.psk)
        binder_key = schedule.binder_key()
        expected = crypto.hmac_digest(spec.hash_name, binder_key, crypto.hash_digest(spec.hash_name, covered))
        check_mac(expected, hello.binder, ErrorCode.BAD_BINDER, "resumption binder")
        age_ms = (hello.obfuscated_age - state.age_add) % (1 << 32)
        issued = state.issued_at_ms / 1000
        expires = issued + state.lifetime_s
        if self._now >= expires or age_ms > state.lifetime_s * 1000:
            self._no_resumption(hello, "ticket expired")
            return refused
        credential = self.config.apps.get(state.app_id)
        if credential is None:
            self._no_resumption(hello, "ticket's app is revoked")
            return refused
        if not credential.allows(state.client_key, now=self._now):
            self._no_resumption(hello, "ticket's client key is retired or its session credential revoked or expired")
            return refused
        if not self.config.ticket_guard.claim(state.ticket_id, expires, now=self._now):
            self._no_resumption(hello, "ticket already used")
            return refused
        return state, schedule

    @staticmethod
    def _no_resumption(hello: ClientHello, why: str) -> None:
        """Refuse the ticket: go on with a full handshake, or fail when the hello has no key share."""
        if not hello.key_shares:
            raise RemoteProtocolError(ErrorCode.TICKET_REJECTED, why)

    def _send_server_finished(
        self,
        spec: crypto.SuiteSpec,
        transcript: Transcript,
        schedule: KeySchedule,
        *,
        resumed: bool,
    ) -> None:
        key_type, public, signature = 0, b"", b""
        if not resumed:
            key = self.config.keys.get(spec.key_type)
            if key is None:
                raise RemoteProtocolError(ErrorCode.NO_COMMON_SUITE, f"server has no {spec.key_type.name} key")
            key_type, public = int(key.key_type), key.verify_key.public_bytes
            signed = transcript.digest(server_signed_prefix(key_type, public))
            k = self.config.fixed.sm2_k if self.config.fixed else None
            signature = key.sign(SERVER_SIGNATURE_CONTEXT + signed, sm2_k=k)
        covered = server_signed_prefix(key_type, public) + prefix16(signature)
        assert self._send is not None
        mac = crypto.hmac_digest(spec.hash_name, schedule.finished_key(self._send.secret), transcript.digest(covered))
        encoded = encode(ServerFinished(key_type, public, signature, mac))
        self._queue(encoded)
        transcript.add(encoded)
        c_ap, s_ap = schedule.application_traffic(transcript.digest())
        self._c_ap = c_ap
        self._set_send(s_ap)

    # --- CLIENT_FINISHED --------------------------------------------------------------------------------

    def _on_client_finished(self, finished: ClientFinished, encoded: bytes) -> None:
        assert self._transcript is not None and self._schedule is not None and self.suite is not None
        assert self._recv is not None
        spec = SUITES[self.suite]
        transcript = self._transcript
        prefix = encoded[12 : -(1 + len(finished.verify_data))]
        expected = crypto.hmac_digest(
            spec.hash_name,
            self._schedule.finished_key(self._recv.secret),
            transcript.digest(prefix),
        )
        check_mac(expected, finished.verify_data, ErrorCode.BAD_FINISHED, "client Finished")
        proof_prefix = encoded[12 : -(1 + len(finished.verify_data) + 2 + len(finished.proof))]
        self._authenticate(finished, spec, transcript.digest(proof_prefix))
        transcript.add(encoded)
        resumption = self._schedule.resumption_secret(transcript.digest())
        self._set_recv(self._c_ap)
        self._handshake_done(
            HandshakeComplete(
                self.suite,
                self._ticket_state is not None,
                self.app_id,
                self._keepalive_ms,
                "",
                self.client_key,
            ),
            self._keepalive_ms,
        )
        if self.config.issue_tickets and self.config.ticket_keys is not None:
            self._issue_ticket(spec, resumption)
        # An idle session keeps only its traffic keys: the handshake state goes (issue #3 counts bytes per session).
        self._transcript = self._schedule = self._ticket_state = None
        self._c_ap = b""

    def _authenticate(self, finished: ClientFinished, spec: crypto.SuiteSpec, covered: bytes) -> None:
        """Set app_id and client_key from a proof that verifies, or fail with AUTH_FAILED.

        Every failure says the same on the wire (AUTH_FAILED_REASON), so that anyone holding the public pins cannot
        learn which app ids exist; why it failed is the event's reason, for the server's log (section 5.5)."""
        state = self._ticket_state
        if state is not None:
            if finished.auth_mode != AuthMode.RESUMED or finished.app_id or finished.proof:
                _auth_failed("a resumed handshake must use auth mode RESUMED with no app id or proof")
            self.app_id, self.client_key = state.app_id, state.client_key
            return
        self.claimed_app_id = finished.app_id
        if finished.auth_mode == AuthMode.RESUMED:
            _auth_failed("auth mode RESUMED in a full handshake")
        if finished.auth_mode not in (AuthMode.APP_SECRET, AuthMode.CLIENT_KEY):
            _auth_failed(f"unknown auth mode {finished.auth_mode}")
        if not is_app_id(finished.app_id):
            _auth_failed("malformed app id")
        app = self.config.apps.get(finished.app_id)
        if finished.auth_mode == AuthMode.APP_SECRET:
            # An unknown app costs the same HMAC and hash as a known one: the time says nothing either.
            stored = app.stored_keys.get(spec.hash_name) if app is not None else None
            valid = check_app_proof(spec.hash_name, stored or _NO_STORED_KEY, finished.proof, covered)
            session = self._check_session_keys(app, finished.proof, covered, spec)
            if app is None:
                _auth_failed("unknown app")
            if session is not None:
                self.client_key, self._credential_expires = session.credential_id, session.expires_at
            elif stored is None or not valid:
                _auth_failed("app proof does not verify")
        elif app is None:
            _auth_failed("unknown app")
        else:
            self.client_key = self._check_client_key(finished, app.client_keys, covered, spec)
        assert app is not None
        self.app_id = app.app_id

    def _check_session_keys(
        self, app: AppCredential | None, proof: bytes, covered: bytes, spec: crypto.SuiteSpec
    ) -> SessionKey | None:
        """The unexpired session credential (section 16) the proof verifies against, or None. Always MAX_SESSION_KEYS
        checks, padded, each in constant time: the time does not say how many credentials the app holds."""
        keys = list(app.session_keys())[:MAX_SESSION_KEYS] if app is not None else []
        found: SessionKey | None = None
        for i in range(MAX_SESSION_KEYS):
            key = keys[i] if i < len(keys) else None
            stored = key.stored_keys.get(spec.hash_name) if key is not None else None
            valid = check_app_proof(spec.hash_name, stored or _NO_STORED_KEY, proof, covered)
            if valid and key is not None and stored is not None and key.expires_at > self._now and found is None:
                found = key
        return found

    @staticmethod
    def _check_client_key(
        finished: ClientFinished, allowed: frozenset[str], covered: bytes, spec: crypto.SuiteSpec
    ) -> str:
        if finished.key_type != spec.key_type:
            # A national session is national end to end: an SM2 client key, never an Ed25519 one (and vice versa).
            _auth_failed(f"client key type must be {spec.key_type.name}")
        pin = crypto.fingerprint(KeyType(finished.key_type), finished.public_key)
        if pin not in allowed:
            _auth_failed("client key not registered for this app")
        try:
            verify_signature(
                finished.key_type,
                finished.public_key,
                finished.proof,
                CLIENT_SIGNATURE_CONTEXT + covered,
            )
        except CryptoError:
            _auth_failed("client signature does not verify")
        return pin

    def _issue_ticket(self, spec: crypto.SuiteSpec, resumption: bytes) -> None:
        assert self._schedule is not None and self.config.ticket_keys is not None and self.suite is not None
        fixed = self.config.fixed
        nonce = fixed.ticket_nonce if fixed else os.urandom(12)
        ticket_id = fixed.ticket_id if fixed else os.urandom(16)
        age_add = fixed.age_add if fixed else int.from_bytes(os.urandom(4), "big")
        lifetime = min(self.config.ticket_lifetime_s, MAX_TICKET_LIFETIME_S)
        if self._credential_expires:  # a ticket never outlives the session credential it stands for
            lifetime = max(0, min(lifetime, int(self._credential_expires - self._now)))
        state = TicketState(
            TICKET_VERSION,
            self.suite,
            int(self._now * 1000),
            lifetime,
            age_add,
            ticket_id,
            self.app_id,
            self.client_key,
            self._schedule.ticket_psk(resumption, nonce),
        )
        ticket = self.config.ticket_keys.seal(state, nonce)
        self._queue(encode(NewTicket(lifetime, age_add, nonce, ticket)))
