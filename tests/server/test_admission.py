"""Handshake admission (spec section 5.9): the budget, the per-address share, the quiet addresses' reserve, the
refusal's delay, and that a refusal costs the server no public-key work."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from kefu.protocol import serverconn
from kefu.protocol.crypto import Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionTerminated, HandshakeComplete
from kefu.protocol.frames import FrameDecoder, FrameType, Goaway, decode_frame
from kefu.protocol.handshake import HandshakeKind, ServerConfig
from kefu.protocol.tickets import SessionTicket
from kefu.server.edge.admission import (
    BURST_S,
    PER_ADDRESS_SHARE,
    QUIET_S,
    RETRY_MAX_MS,
    RETRY_MIN_MS,
    HandshakeAdmission,
    measure_costs,
    per_gateway,
)

from ..protocol.pairs import Pair, client_config, server_config
from ..protocol.test_resumption import get_ticket

FULL_COST = 0.002
COSTS = {
    (suite, kind): FULL_COST * factor
    for suite in Suite
    for kind, factor in ((HandshakeKind.FULL, 1.0), (HandshakeKind.RESUMED_ECDHE, 0.5), (HandshakeKind.RESUMED, 0.05))
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def admitted(admission: HandshakeAdmission, address: str, n: int, kind: HandshakeKind = HandshakeKind.FULL) -> int:
    return sum(admission.check(address, Suite.NATIONAL, kind) is None for _ in range(n))


def test_the_budget_bounds_full_handshakes_per_second_over_time() -> None:
    clock = Clock()
    admission = HandshakeAdmission(0.5, COSTS, clock=clock)  # 0.5 CPU s/s at 2 ms: 250 a second
    total = 0
    for step in range(2000):  # 10 s, from 2,000 addresses, 4 tries every 5 ms
        clock.now += 0.005
        total += sum(admitted(admission, f"10.0.{step % 500}.{i}", 1) for i in range(4))
    assert 0.9 * 2500 <= total <= 2500 + 0.5 * BURST_S / FULL_COST + 2


def test_alone_an_address_may_use_the_budget_and_under_contention_its_share() -> None:
    clock = Clock()
    admission = HandshakeAdmission(0.5, COSTS, clock=clock)
    budget_per_s = 0.5 / FULL_COST
    alone = 0
    for _ in range(2000):  # 10 s, one address asking 800 times a second
        clock.now += 0.005
        alone += admitted(admission, "10.0.0.1", 4)
    assert 0.9 * budget_per_s <= alone / 10 <= budget_per_s * 1.1
    crowded = 0
    shuffle = random.Random(7).shuffle
    addresses = ["10.0.0.1", *(f"10.0.1.{i}" for i in range(40))]
    for _ in range(2000):  # 10 s more, 40 other addresses asking as often, in a random order each time
        clock.now += 0.005
        shuffle(addresses)
        for address in addresses:
            n = admitted(admission, address, 4)
            crowded += n if address == "10.0.0.1" else 0
    assert crowded / 10 <= budget_per_s * PER_ADDRESS_SHARE * 1.2


def test_a_quiet_address_gets_through_a_flood_from_many_addresses() -> None:
    """240 flooding addresses try every 10 ms; a new client every 200 ms, each from its own address, gets in at
    its first try once the flood is under way (at its very start the flooders are new addresses too, and a refused
    newcomer gets in when it retries after the refusal's delay)."""
    clock = Clock()
    admission = HandshakeAdmission(0.5, COSTS, clock=clock)
    flooders = [f"10.1.0.{i}" for i in range(240)]
    first_try: list[bool] = []
    waits: list[float] = []
    retry_at: dict[str, float] = {}
    for step in range(1500):  # 15 s
        clock.now += 0.01
        for address in flooders:
            admission.check(address, Suite.NATIONAL, HandshakeKind.FULL)
        for address, when in list(retry_at.items()):
            if clock.now >= when:
                refusal = admission.check(address, Suite.NATIONAL, HandshakeKind.FULL)
                if refusal is None:
                    del retry_at[address]
                    waits.append(clock.now - float(address.rsplit(".", 1)[1]) * 0.01 - 1000.0)
                else:
                    retry_at[address] = clock.now + refusal.reconnect_delay_ms / 1000
        if step % 20 == 10:
            address = f"10.2.{step // 256}.{step}"
            refusal = admission.check(address, Suite.NATIONAL, HandshakeKind.FULL)
            if step >= 100:
                first_try.append(refusal is None)
            if refusal is not None:
                retry_at[address] = clock.now + refusal.reconnect_delay_ms / 1000
    assert first_try and all(first_try)
    assert not retry_at
    assert all(wait < 1.0 for wait in waits)


def test_an_address_is_quiet_again_after_quiet_s_without_asking() -> None:
    clock = Clock()
    admission = HandshakeAdmission(0.5, COSTS, clock=clock)
    assert admitted(admission, "10.0.0.9", 1) == 1
    flooders = [f"10.1.0.{i}" for i in range(240)]
    for _ in range(int((QUIET_S + 1) / 0.01)):
        clock.now += 0.01
        for address in flooders:
            admission.check(address, Suite.NATIONAL, HandshakeKind.FULL)
    assert admitted(admission, "10.0.0.9", 1) == 1


def test_resumptions_cost_less_and_may_use_the_reserve() -> None:
    clock = Clock()
    admission = HandshakeAdmission(0.5, COSTS, clock=clock)
    full = admitted(admission, "10.0.0.1", 1000)
    clock.now += 10
    resumed = admitted(admission, "10.0.0.2", 1000, HandshakeKind.RESUMED)
    assert resumed > 10 * full


def test_a_refusal_is_a_goaway_overloaded_with_a_bounded_delay() -> None:
    clock = Clock()
    admission = HandshakeAdmission(0.01, COSTS, clock=clock)
    admitted(admission, "10.0.0.1", 5)
    refusal = admission.check("10.0.0.1", Suite.NATIONAL, HandshakeKind.FULL)
    assert isinstance(refusal, Goaway)
    assert refusal.code == ErrorCode.OVERLOADED
    assert RETRY_MIN_MS <= refusal.reconnect_delay_ms <= RETRY_MAX_MS
    clock.now += refusal.reconnect_delay_ms / 1000 + 0.001
    assert admission.check("10.0.0.1", Suite.NATIONAL, HandshakeKind.FULL) is None


def test_a_refused_address_waits_until_its_delay_is_over_and_each_refusal_in_a_row_doubles_it() -> None:
    clock = Clock()
    admission = HandshakeAdmission(0.5, COSTS, clock=clock)

    rounds = iter(range(100))

    def drain() -> None:  # many new addresses at once take the whole bucket, reserve included
        k = next(rounds)
        for i in range(400):
            admission.check(f"10.{k}.{i // 200}.{i % 200}", Suite.NATIONAL, HandshakeKind.FULL)

    drain()
    delays = []
    for _ in range(6):  # each time it comes back when told, and is refused again
        refusal = admission.check("10.0.0.1", Suite.NATIONAL, HandshakeKind.FULL)
        assert isinstance(refusal, Goaway)
        delays.append(refusal.reconnect_delay_ms)
        assert admission.early_wait("10.0.0.2") == 0
        assert admission.early_wait("10.0.0.1") == pytest.approx(refusal.reconnect_delay_ms / 1000, abs=0.002)
        clock.now += 0.001
        again = admission.check("10.0.0.1", Suite.NATIONAL, HandshakeKind.FULL)  # one opened before: the time left
        assert again is not None and again.reconnect_delay_ms == pytest.approx(refusal.reconnect_delay_ms - 1, abs=2)
        clock.now += refusal.reconnect_delay_ms / 1000 - 0.001
        drain()
    assert delays[:4] == [RETRY_MIN_MS, 2 * RETRY_MIN_MS, 4 * RETRY_MIN_MS, 8 * RETRY_MIN_MS]
    assert delays[-1] == RETRY_MAX_MS
    assert admission.early_wait("10.0.0.1") == 0
    clock.now += 10
    assert admission.check("10.0.0.1", Suite.NATIONAL, HandshakeKind.FULL) is None  # the bucket refilled
    drain()
    refusal = admission.check("10.0.0.1", Suite.NATIONAL, HandshakeKind.FULL)
    assert refusal is not None and refusal.reconnect_delay_ms == RETRY_MIN_MS  # admitted: the count starts again


def test_the_host_share_is_split_over_the_gateways() -> None:
    assert per_gateway(0.25, cores=8, gateways=4) == 0.5
    assert per_gateway(0.25, cores=2, gateways=0) == 0.5


def test_share_zero_turns_admission_off_and_configure_turns_it_on() -> None:
    admission = HandshakeAdmission(0.0, COSTS, clock=Clock())
    assert admitted(admission, "10.0.0.1", 10_000) == 10_000
    admission.configure(0.01)
    assert admitted(admission, "10.0.0.1", 100) < 100


def test_measured_costs_are_positive_and_national_full_costs_most() -> None:
    costs = measure_costs(rounds=3)
    assert all(cost > 0 for cost in costs.values())
    assert costs[(Suite.NATIONAL, HandshakeKind.FULL)] > costs[(Suite.NATIONAL, HandshakeKind.RESUMED)]


def test_a_refused_client_hello_gets_a_plaintext_goaway_and_no_public_key_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_share(*_: object) -> None:
        raise AssertionError("public-key work for a refused handshake")

    monkeypatch.setattr(serverconn, "new_share", no_share)
    refusal = Goaway(ErrorCode.OVERLOADED, 250, 250, 5000, 500, "busy")
    asked: list[tuple[Suite, HandshakeKind]] = []
    pair = Pair(client_config(Suite.NATIONAL), server_config())
    pair.server.admission = lambda suite, kind: asked.append((suite, kind)) or refusal
    pair.handshake()
    assert asked == [(Suite.NATIONAL, HandshakeKind.FULL)]
    (wire,) = pair.wire_to_client
    (raw,) = FrameDecoder().feed(wire)
    assert raw.frame_type == FrameType.GOAWAY
    assert decode_frame(raw) == refusal
    assert pair.of("client", Goaway) == [refusal]
    assert pair.of("client", ConnectionTerminated) == [ConnectionTerminated(ErrorCode.OVERLOADED, "busy", True)]
    assert pair.of("server", ConnectionTerminated) == [ConnectionTerminated(ErrorCode.OVERLOADED, "busy", False)]
    assert not pair.of("server", HandshakeComplete)


def test_an_admitted_handshake_is_unchanged() -> None:
    pair = Pair(client_config(Suite.INTERNATIONAL), server_config())
    pair.server.admission = lambda suite, kind: None
    pair.handshake()
    assert pair.of("server", HandshakeComplete)
    assert pair.server.admission is not None  # the server core keeps it; the gateway drops it when ready


def test_a_plaintext_goaway_is_refused_from_a_client_and_after_the_handshake() -> None:
    pair = Pair(client_config(Suite.INTERNATIONAL), server_config())
    goaway = Goaway(ErrorCode.OVERLOADED, 1, 1, 1, 0, "")
    from kefu.protocol.frames import encode  # noqa: PLC0415

    pair.server.receive_data(encode(goaway))
    assert pair.of("server", ConnectionTerminated) == [] and pair.server.closed
    connected = Pair(client_config(Suite.INTERNATIONAL), server_config()).handshake()
    connected.client.receive_data(encode(goaway))
    (ended,) = [e for e in connected.client.events_received() if isinstance(e, ConnectionTerminated)]
    assert ended.code == ErrorCode.UNEXPECTED_FRAME


def _resume_with(config: ServerConfig, ticket: SessionTicket, admission: Callable[..., Goaway | None]) -> Pair:
    pair = Pair(client_config(ticket.suite, ticket=ticket), config, now=1.0)
    pair.server.admission = admission
    pair.start(now=1.0)
    pair.pump()
    return pair


def test_a_ticket_that_opens_but_does_not_resume_is_charged_and_refused_as_a_full_handshake(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replayed resumption hello (its ticket used already) opens and verifies, then falls back to a full handshake:
    it must pay for one, before the key exchange and the signature, not the price of a resumption."""
    config = server_config()
    ticket = get_ticket(config, Suite.NATIONAL)
    asked: list[HandshakeKind] = []

    def admit_all(suite: Suite, kind: HandshakeKind) -> None:
        asked.append(kind)

    first = _resume_with(config, ticket, admit_all)
    assert first.of("server", HandshakeComplete)[0].resumed
    assert asked == [HandshakeKind.RESUMED]
    asked.clear()
    replay = _resume_with(config, ticket, admit_all)
    assert not replay.of("server", HandshakeComplete)[0].resumed, "the used ticket fell back to a full handshake"
    assert asked == [HandshakeKind.RESUMED, HandshakeKind.FULL], "the full handshake it became was charged as one"

    def no_share(*_: object) -> None:
        raise AssertionError("public-key work for a handshake refused as a full one")

    monkeypatch.setattr(serverconn, "new_share", no_share)
    refusal = Goaway(ErrorCode.OVERLOADED, 250, 250, 5000, 500, "busy")
    refused = _resume_with(config, ticket, lambda suite, kind: refusal if kind is HandshakeKind.FULL else None)
    assert refused.of("client", Goaway) == [refusal]
    assert not refused.of("server", HandshakeComplete)
