"""The client role of the handshake (spec/PROTOCOL.md section 5, client steps)."""

from __future__ import annotations

from . import crypto
from .connection import Connection, Role, State
from .crypto import SUITES, Suite
from .errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from .events import HandshakeComplete, TicketReceived
from .frames import (
    AuthMode,
    ClientFinished,
    ClientHello,
    KeyShareEntry,
    NewTicket,
    PskMode,
    ServerFinished,
    ServerHello,
    encode,
)  # fmt: skip
from .handshake import (
    CLIENT_SIGNATURE_CONTEXT,
    MAX_KEEPALIVE_MS,
    MIN_KEEPALIVE_MS,
    SERVER_SIGNATURE_CONTEXT,
    ClientConfig,
    Transcript,
    app_proof,
    check_mac,
    new_share,
    prefix16,
    random_bytes,
    server_signed_prefix,
    verify_signature,
)  # fmt: skip
from .keyschedule import KeySchedule
from .tickets import MAX_TICKET_LIFETIME_S, SessionTicket

_BINDER_PLACEHOLDER = bytes(crypto.HASH_LEN)


class ClientConnection(Connection):
    """A client connection: call `connect(now=...)`, then drive it with the five verbs."""

    __slots__ = (
        "_c_hs",
        "_keepalive_ms",
        "_resumed",
        "_resumption",
        "_schedule",
        "_shares",
        "_ticket",
        "_transcript",
        "_transcripts",
        "config",
    )

    role = Role.CLIENT

    def __init__(self, config: ClientConfig, *, now: float) -> None:
        super().__init__(now=now)
        if not config.suites:
            raise LocalProtocolError("a client must offer at least one suite")
        if config.app_secret is None and config.client_key is None:
            raise LocalProtocolError("a client needs an app secret or a client key (tickets can be refused)")
        self.config = config
        self._shares: dict[Suite, crypto.KeyShare] = {}
        self._ticket: SessionTicket | None = None
        self._transcripts: dict[Suite, Transcript] = {}
        self._schedule: KeySchedule | None = None
        self._transcript: Transcript | None = None
        self._c_hs = b""
        self._resumption = b""
        self._keepalive_ms = config.keepalive_ms
        self._resumed = False

    def connect(self, *, now: float) -> None:
        """Queue CLIENT_HELLO: one key share per offered suite, and a binder when resuming."""
        if self.state is not State.START:
            raise LocalProtocolError("connect() once, from the start state")
        config = self.config
        for suite in config.suites:
            self._shares[suite] = new_share(SUITES[suite], config.fixed)
        ticket = config.ticket if isinstance(config.ticket, SessionTicket) else None
        if ticket is not None and (ticket.suite not in config.suites or ticket.expired(now)):
            ticket = None
        self._ticket = ticket
        hello = ClientHello(
            random_bytes(config.fixed),
            tuple(int(s) for s in config.suites),
            tuple(KeyShareEntry(s, share.public_bytes()) for s, share in self._shares.items()),
            config.keepalive_ms,
            config.psk_mode if ticket else PskMode.NONE,
            ticket.ticket if ticket else b"",
            self._obfuscated_age(ticket, now),
            _BINDER_PLACEHOLDER if ticket else b"",
        )
        if ticket is not None:
            hello.binder = self._binder(ticket, encode(hello))
        encoded = encode(hello)
        for suite in config.suites:
            transcript = Transcript(SUITES[suite].hash_name)
            transcript.add(encoded)
            self._transcripts[suite] = transcript
        self._queue_plain(encoded)
        self.state = State.WAIT_SERVER_HELLO

    @staticmethod
    def _obfuscated_age(ticket: SessionTicket | None, now: float) -> int:
        if ticket is None:
            return 0
        return (int((now - ticket.received_at) * 1000) + ticket.age_add) % (1 << 32)

    def _binder(self, ticket: SessionTicket, encoded_with_placeholder: bytes) -> bytes:
        spec = SUITES[ticket.suite]
        covered = encoded_with_placeholder[12 : -(1 + crypto.HASH_LEN)]
        schedule = KeySchedule(spec.hash_name, ticket.psk)
        return crypto.hmac_digest(spec.hash_name, schedule.binder_key(), crypto.hash_digest(spec.hash_name, covered))

    # --- server flight ----------------------------------------------------------------------------------

    def _on_server_hello(self, hello: ServerHello, encoded: bytes) -> None:
        if hello.suite not in self._shares:
            raise RemoteProtocolError(ErrorCode.DOWNGRADE_DETECTED, f"server chose unoffered suite {hello.suite}")
        suite = Suite(hello.suite)
        spec = SUITES[suite]
        self.suite = suite
        psk = self._accepted_psk(hello, suite)
        shared = None
        if hello.key_share or psk is None:
            if not hello.key_share:
                raise RemoteProtocolError(ErrorCode.BAD_KEY_SHARE, "full handshake without a key share")
            shared = self._shares[suite].exchange(hello.key_share)
        self._transcript = self._transcripts[suite]
        self._transcripts.clear()
        self._transcript.add(encoded)
        self._resumed = psk is not None
        self._schedule = KeySchedule(spec.hash_name, psk)
        self._schedule.add_shared_secret(shared)
        self._c_hs, s_hs = self._schedule.handshake_traffic(self._transcript.digest())
        self._set_recv(s_hs)
        if not MIN_KEEPALIVE_MS <= hello.keepalive_ms <= MAX_KEEPALIVE_MS:
            raise RemoteProtocolError(ErrorCode.HANDSHAKE_FAILURE, f"keepalive {hello.keepalive_ms} ms out of bounds")
        self._keepalive_ms = hello.keepalive_ms
        self.state = State.WAIT_SERVER_FINISHED

    def _accepted_psk(self, hello: ServerHello, suite: Suite) -> bytes | None:
        if not hello.psk_accepted:
            return None
        ticket = self._ticket
        if ticket is None or ticket.suite != suite:
            raise RemoteProtocolError(ErrorCode.HANDSHAKE_FAILURE, "server accepted a ticket we did not offer")
        dhe = self.config.psk_mode is PskMode.PSK_WITH_ECDHE
        if dhe != bool(hello.key_share):
            raise RemoteProtocolError(ErrorCode.BAD_KEY_SHARE, "key share does not match the PSK mode")
        return ticket.psk

    def _on_server_finished(self, finished: ServerFinished, encoded: bytes) -> None:
        assert self._transcript is not None and self._schedule is not None and self.suite is not None
        assert self._recv is not None
        spec = SUITES[self.suite]
        transcript, schedule = self._transcript, self._schedule
        signed = server_signed_prefix(finished.key_type, finished.public_key)
        if self._resumed:
            if finished.key_type or finished.public_key or finished.signature:
                raise RemoteProtocolError(ErrorCode.HANDSHAKE_FAILURE, "resumed handshake carries a server key")
            server_key = ""
        else:
            server_key = self._check_server_key(finished, spec, transcript.digest(signed))
        covered = signed + prefix16(finished.signature)
        expected = crypto.hmac_digest(
            spec.hash_name, schedule.finished_key(self._recv.secret), transcript.digest(covered)
        )
        check_mac(expected, finished.verify_data, ErrorCode.BAD_FINISHED, "server Finished")
        transcript.add(encoded)
        c_ap, s_ap = schedule.application_traffic(transcript.digest())
        self._set_send(self._c_hs)
        self._send_client_finished(spec, transcript, schedule)
        self._set_send(c_ap)
        self._set_recv(s_ap)
        event = HandshakeComplete(
            self.suite,
            self._resumed,
            self.config.app_id,
            self._keepalive_ms,
            server_key,
            self._client_key_pin(),
        )
        self._handshake_done(event, self._keepalive_ms)
        self._shares.clear()  # ephemeral keys and the transcript are not needed after the handshake
        self._transcript = None

    def _check_server_key(self, finished: ServerFinished, spec: crypto.SuiteSpec, covered_hash: bytes) -> str:
        if finished.key_type != spec.key_type:
            raise RemoteProtocolError(ErrorCode.BAD_SIGNATURE, "server key type does not match the suite")
        key = verify_signature(
            finished.key_type,
            finished.public_key,
            finished.signature,
            SERVER_SIGNATURE_CONTEXT + covered_hash,
        )
        pin = key.fingerprint()
        if pin not in self.config.server_pins:
            raise RemoteProtocolError(ErrorCode.SERVER_KEY_NOT_PINNED, f"server key {pin} is not pinned")
        return pin

    def _client_key_pin(self) -> str:
        key = self.config.client_key
        if self._resumed or key is None or self.config.app_secret is not None:
            return ""
        return key.verify_key.fingerprint()

    def _send_client_finished(self, spec: crypto.SuiteSpec, transcript: Transcript, schedule: KeySchedule) -> None:
        config = self.config
        app_id = "" if self._resumed else config.app_id
        if self._resumed:
            mode, key_type, public, proof = AuthMode.RESUMED, 0, b"", b""
        elif config.app_secret is not None:
            mode, key_type, public = AuthMode.APP_SECRET, 0, b""
            covered = transcript.digest(self._cf_prefix(app_id, mode, key_type, public))
            proof = app_proof(spec.hash_name, app_id, config.app_secret, covered)
        else:
            assert config.client_key is not None
            key = config.client_key
            mode, key_type, public = (
                AuthMode.CLIENT_KEY,
                int(key.key_type),
                key.verify_key.public_bytes,
            )
            covered = transcript.digest(self._cf_prefix(app_id, mode, key_type, public))
            k = config.fixed.sm2_k if config.fixed else None
            proof = key.sign(CLIENT_SIGNATURE_CONTEXT + covered, sm2_k=k)
        prefix = self._cf_prefix(app_id, mode, key_type, public) + prefix16(proof)
        assert self._send is not None
        mac = crypto.hmac_digest(spec.hash_name, schedule.finished_key(self._send.secret), transcript.digest(prefix))
        encoded = encode(ClientFinished(app_id, mode, key_type, public, proof, mac))
        self._queue(encoded)
        transcript.add(encoded)
        self._resumption = schedule.resumption_secret(transcript.digest())

    @staticmethod
    def _cf_prefix(app_id: str, mode: int, key_type: int, public: bytes) -> bytes:
        """CLIENT_FINISHED body bytes before `proof`: what the client's proof covers."""
        raw = app_id.encode()
        return bytes((len(raw),)) + raw + bytes((mode,)) + key_type.to_bytes(2, "big") + prefix16(public)

    def _on_new_ticket(self, frame: NewTicket, _encoded: bytes) -> None:
        assert self.suite is not None and self._schedule is not None
        if not 0 < frame.lifetime_s <= MAX_TICKET_LIFETIME_S:
            return  # section 5.6: a ticket with an out-of-range lifetime is ignored
        psk = self._schedule.ticket_psk(self._resumption, frame.nonce)
        ticket = SessionTicket(self.suite, frame.ticket, psk, frame.lifetime_s, frame.age_add)
        self._events.append(TicketReceived(ticket))
