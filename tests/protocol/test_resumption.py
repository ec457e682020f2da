"""Resumption tickets: symmetric-only resumption, the ECDHE option, single use, expiry, binders."""

from __future__ import annotations

import dataclasses

import pytest

from kefu.protocol import frames
from kefu.protocol.crypto import KeyType, Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionTerminated, HandshakeComplete, TicketReceived
from kefu.protocol.frames import FrameDecoder, FrameType, PskMode
from kefu.protocol.handshake import ServerConfig
from kefu.protocol.tickets import SessionTicket, TicketGuard

from .pairs import APP_ID, CLIENT_KEYS, Pair, client_config, server_config

SUITES = [Suite.NATIONAL, Suite.INTERNATIONAL]


def get_ticket(config: ServerConfig, suite: Suite, *, now: float = 0.0) -> SessionTicket:
    pair = Pair(client_config(suite), config, now=now)
    pair.start(now=now)
    pair.pump()
    (event,) = pair.of("client", TicketReceived)
    return dataclasses.replace(event.ticket, received_at=now)


def resume(
    config: ServerConfig,
    ticket: SessionTicket,
    mode: PskMode = PskMode.PSK_ONLY,
    *,
    now: float = 1.0,
) -> Pair:
    pair = Pair(client_config(ticket.suite, ticket=ticket, psk_mode=mode), config, now=now)
    pair.start(now=now)
    pair.pump()
    return pair


@pytest.mark.parametrize("mode", [PskMode.PSK_ONLY, PskMode.PSK_WITH_ECDHE], ids=lambda m: m.name)
@pytest.mark.parametrize("suite", SUITES, ids=lambda s: s.name)
def test_resumption(suite: Suite, mode: PskMode) -> None:
    config = server_config()
    pair = resume(config, get_ticket(config, suite), mode)
    (c_done,) = pair.of("client", HandshakeComplete)
    (s_done,) = pair.of("server", HandshakeComplete)
    assert c_done.resumed and s_done.resumed
    assert s_done.app_id == APP_ID
    server_hello = frames.decode_frame(FrameDecoder().feed(pair.wire_to_client[0])[0])
    assert isinstance(server_hello, frames.ServerHello)
    assert bool(server_hello.key_share) is (mode is PskMode.PSK_WITH_ECDHE)
    pair.client.send(frames.Ping(3))
    pair.pump()
    assert pair.of("client", frames.Pong) == [frames.Pong(3)]


def test_psk_only_server_flight_has_no_signature() -> None:
    config = server_config()
    pair = resume(config, get_ticket(config, Suite.NATIONAL))
    # SERVER_HELLO (plaintext) + one record holding SERVER_FINISHED without key or signature.
    raws = FrameDecoder().feed(pair.wire_to_client[0])
    assert [r.frame_type for r in raws] == [FrameType.SERVER_HELLO, FrameType.RECORD]
    assert len(raws[1].body) < 120


def test_ticket_is_single_use_and_a_replay_falls_back_to_a_full_handshake() -> None:
    config = server_config()
    ticket = get_ticket(config, Suite.INTERNATIONAL)
    first = resume(config, ticket)
    second = resume(config, ticket)
    assert first.of("server", HandshakeComplete)[0].resumed
    (done,) = second.of("server", HandshakeComplete)
    assert not done.resumed, "the replayed ticket was refused; the key shares allowed a full handshake"


def test_replayed_resumption_hello_without_key_shares_is_rejected() -> None:
    """Replaying the exact CLIENT_HELLO of a PSK_ONLY resumption, stripped of key shares, is refused."""
    config = server_config()
    ticket = get_ticket(config, Suite.NATIONAL)
    first = resume(config, ticket)
    assert first.of("server", HandshakeComplete)[0].resumed
    hello_wire = first.wire_to_server[0]
    replay = Pair(client_config(), config, now=2.0)
    replay.server.receive_data(hello_wire)
    assert replay.server.events_received() == []
    assert replay.server.state.value == "wait-client-finished"
    # The replayed hello got a fresh full handshake; without the client's ephemeral key it goes nowhere.
    stripped = Pair(client_config(), config, now=2.0)
    (raw,) = FrameDecoder().feed(hello_wire)
    hello = frames.decode_frame(raw)
    assert isinstance(hello, frames.ClientHello)
    stripped.server.receive_data(frames.encode(dataclasses.replace(hello, key_shares=())))
    (event,) = stripped.server.events_received()
    assert isinstance(event, ConnectionTerminated)
    assert event.code in (ErrorCode.BAD_BINDER, ErrorCode.TICKET_REJECTED)


def test_tampered_binder_is_refused() -> None:
    config = server_config()
    ticket = get_ticket(config, Suite.NATIONAL)
    pair = Pair(client_config(Suite.NATIONAL, ticket=ticket), config, now=1.0)

    def flip_binder(data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if data[5] == FrameType.CLIENT_HELLO else data

    pair.to_server = flip_binder
    pair.start(now=1.0)
    pair.pump()
    (event,) = pair.of("server", ConnectionTerminated)
    assert event.code is ErrorCode.BAD_BINDER


def test_expired_ticket_falls_back_to_full_handshake() -> None:
    config = server_config(ticket_lifetime_s=60)
    ticket = get_ticket(config, Suite.NATIONAL)
    pair = Pair(
        client_config(Suite.NATIONAL, ticket=dataclasses.replace(ticket, received_at=100.0)),
        config,
        now=100.0,
    )
    pair.start(now=100.0)
    pair.pump()
    (done,) = pair.of("server", HandshakeComplete)
    assert not done.resumed


def test_client_drops_its_own_expired_ticket() -> None:
    config = server_config(ticket_lifetime_s=60)
    ticket = get_ticket(config, Suite.NATIONAL)
    pair = Pair(client_config(Suite.NATIONAL, ticket=ticket), config, now=61.0)
    pair.start(now=61.0)
    (raw,) = FrameDecoder().feed(pair.client.data_to_send())
    hello = frames.decode_frame(raw)
    assert isinstance(hello, frames.ClientHello)
    assert hello.ticket == b"" and hello.binder == b""


def test_ticket_from_another_server_or_suite_is_ignored() -> None:
    ticket = get_ticket(server_config(), Suite.NATIONAL)
    other = server_config(ticket_keys=None)
    pair = resume(other, ticket)
    assert not pair.of("server", HandshakeComplete)[0].resumed
    forged = dataclasses.replace(ticket, suite=Suite.INTERNATIONAL)
    pair = resume(server_config(), forged)
    assert not pair.of("server", HandshakeComplete)[0].resumed


def test_revoked_app_cannot_resume() -> None:
    config = server_config()
    ticket = get_ticket(config, Suite.NATIONAL)
    revoked = dataclasses.replace(config, apps={})
    pair = resume(revoked, ticket)
    assert not pair.of("server", HandshakeComplete)
    (event,) = pair.of("server", ConnectionTerminated)
    assert event.code is ErrorCode.AUTH_FAILED


def test_a_ticket_of_a_retired_client_key_does_not_resume() -> None:
    """A ticket issued to a session that authenticated with a client key resumes only while the key is registered."""
    config = server_config()
    key = CLIENT_KEYS[KeyType.SM2]
    pair = Pair(client_config(Suite.NATIONAL, app_secret=None, client_key=key), config)
    pair.start()
    pair.pump()
    (event,) = pair.of("client", TicketReceived)
    ticket = dataclasses.replace(event.ticket, received_at=0.0)
    retired = dataclasses.replace(
        config, apps={APP_ID: dataclasses.replace(config.apps[APP_ID], client_keys=frozenset())}
    )
    refused = Pair(client_config(Suite.NATIONAL, app_secret=None, client_key=key, ticket=ticket), retired, now=1.0)
    refused.start(now=1.0)
    refused.pump()
    assert not any(e.resumed for e in refused.of("server", HandshakeComplete))
    assert refused.of("server", ConnectionTerminated)[0].code is ErrorCode.AUTH_FAILED  # and the full one fails too
    still = resume(config, ticket, now=1.0)
    assert still.of("server", HandshakeComplete)[0].resumed


def test_guard_forgets_expired_ids() -> None:
    guard = TicketGuard()
    assert guard.claim(b"a" * 16, 10.0, now=0.0)
    assert not guard.claim(b"a" * 16, 10.0, now=1.0)
    guard.purge(now=11.0)
    assert len(guard) == 0
