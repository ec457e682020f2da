"""Handshake admission: full handshakes cost what the gateway can afford, and a flood does not lock others out.

Theory of operation (spec section 5.9). A full national handshake costs the gateway about 1 ms of CPU, most of it
SM2 (an ECDHE key, the shared point and a signature); a resumption with PSK_ONLY costs symmetric crypto only. Any
peer that can open TCP connections can ask for handshakes, so without a bound a flood takes the whole process and
established sessions wait behind it. `HandshakeAdmission` is asked by the protocol core after CLIENT_HELLO is parsed
and before anything asymmetric is computed (`ServerConnection.admission`); it answers None (go on) or a GOAWAY with
code OVERLOADED and the delay after which a retry would be admitted, which costs the server a few microseconds.

- **Budget.** Handshakes are paid for in CPU seconds from one token bucket per gateway. `handshake_cpu_share` is a
  share of the host's usable cores (a quarter by default), split evenly over the gateways: each gateway's bucket
  fills at share x cores / gateways CPU seconds per second, with a burst of `BURST_S` seconds of it. What each kind of
  handshake costs is measured when the gateway starts (`measure_costs`: the suite's key generation, key exchange
  and signature, timed here, divided by `CRYPTO_SHARE` for the per-connection work around them), so the number of
  handshakes a second that the budget buys is this machine's, not a constant.
- **Per address.** While more than half the bucket is left, nobody is refused. Below it, one address gets at most
  `PER_ADDRESS_SHARE` of the budget (derived from the measured budget, not configured: with the default share, about
  22 full national handshakes a second on the machine of bench/RESULTS.md), so ten addresses are needed to hold the
  bucket down.
- **Refusals stay cheap, and flooding does not pay.** A refused address is told when to come back, and the delay
  doubles with each refusal in a row (from `RETRY_MIN_MS` to `RETRY_MAX_MS`; an admission resets it). A connection
  from that address that arrives before the delay is over is held, unread and unanswered, until it is over
  (`early_wait`; the gateway holds at most `MAX_HELD` such connections), and then handled like any other: the core
  is not asked about it and nothing is parsed meanwhile. An attacker that ignores the delay thus gets one answer per
  socket per delay, while a client that opened several connections at once sees them go through as the delay ends.
- **Fairness under a flood.** The last `RESERVE_S` seconds of the bucket are kept for quiet addresses: ones that
  asked for no full handshake (admitted or not) in the last `QUIET_S` seconds. A flooding address asks all the time,
  so it stops at the reserve line; a client on a quiet address (a teller after a restart, a new visitor) still finds
  the reserve at its first try. An attacker reaches the reserve only with addresses that each ask once per `QUIET_S`:
  exhausting it needs more addresses than the budget buys handshakes in `QUIET_S` seconds (thousands here).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Final

from kefu.protocol.crypto import SUITES, SigningKey, Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import Goaway
from kefu.protocol.handshake import HandshakeKind, new_share

from ..engine.ratelimit import TokenBucket

__all__ = ["HandshakeAdmission", "measure_costs"]

BURST_S: Final = 0.05
"""The bucket holds this many seconds of the budget (about 20 full national handshakes at the default share on two
cores): small, so that handshakes are spread out rather than run back to back while messages wait behind them. 0.5 s
measured 65 ms p99 delivery during bench_hostile's flood, 0.05 s 31-42 ms, 0.01 s 31 ms but wasted budget between
checks more than 10 ms apart."""
RESERVE_S: Final = 0.02
"""Seconds of the budget that only quiet addresses may spend."""
QUIET_S: Final = 10.0
"""An address is quiet when no full handshake of its was admitted for this long."""
PER_ADDRESS_SHARE: Final = 0.1
"""The share of the budget one address may take."""
CRYPTO_SHARE: Final = 0.6
"""The asymmetric crypto's share of a full handshake's gateway CPU (py-spy, bench/RESULTS.md: 60 % for SM2)."""
MAX_ADDRESSES: Final = 200_000
"""Bound on the addresses tracked; past it, the ones that are quiet and whose bucket is full are forgotten."""
RETRY_MIN_MS: Final = 250
"""The shortest delay a refusal gives, and so the shortest time its address's new connections are dropped at once."""
RETRY_MAX_MS: Final = 5_000
JITTER_PERMILLE: Final = 500
"""Clients spread their retries over half the delay again, so refused clients do not return together."""
REASON: Final = "handshake capacity reached; retry after the delay"


def measure_costs(rounds: int = 8) -> dict[tuple[Suite, HandshakeKind], float]:
    """CPU seconds a handshake of each suite and kind costs this process, measured now: the median of `rounds` runs of
    its asymmetric work (ephemeral key, key exchange, and for a full handshake a signature), over CRYPTO_SHARE."""
    costs: dict[tuple[Suite, HandshakeKind], float] = {}
    for suite, spec in SUITES.items():
        key = SigningKey.generate(spec.key_type)
        peer = new_share(spec, None).public_bytes()
        ecdhe: list[float] = []
        full: list[float] = []
        for _ in range(rounds):
            started = time.thread_time()
            new_share(spec, None).exchange(peer)
            middle = time.thread_time()
            key.sign(os.urandom(32))
            ended = time.thread_time()
            ecdhe.append(middle - started)
            full.append(ended - started)
        exchange = sorted(ecdhe)[rounds // 2] / CRYPTO_SHARE
        costs[(suite, HandshakeKind.FULL)] = sorted(full)[rounds // 2] / CRYPTO_SHARE
        costs[(suite, HandshakeKind.RESUMED_ECDHE)] = exchange
        costs[(suite, HandshakeKind.RESUMED)] = exchange / 10  # symmetric only; bounded below, never free
    return costs


def per_gateway(share: float, cores: int, gateways: int) -> float:
    """Each gateway's budget, in CPU seconds per second, for a host-wide `share` of `cores` over `gateways`."""
    return share * cores / max(gateways, 1)


MAX_HELD: Final = 10_000
"""Connections a gateway holds back until their address's delay is over; past it, new ones are dropped at once."""


class _Address:
    __slots__ = ("asked_at", "blocked_until", "bucket", "strikes")

    def __init__(self, bucket: TokenBucket, now: float) -> None:
        self.bucket = bucket
        """The address's share of the budget."""
        self.asked_at = now - QUIET_S
        self.blocked_until = 0.0
        self.strikes = 0
        """Refusals in a row (an admission resets it): each doubles the delay the next refusal gives."""


class HandshakeAdmission:
    """One gateway's handshake budget (`ServerConnection.admission` for each of its connections, through the
    gateway)."""

    def __init__(
        self,
        cpu_share: float,
        costs: dict[tuple[Suite, HandshakeKind], float],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.costs = costs
        self._clock = clock
        self._addresses: dict[str, _Address] = {}
        self._bucket = TokenBucket(0.0, 0.0, clock())
        self.configure(cpu_share)
        self._bucket.spend(-self._bucket.burst)  # starts full

    def configure(self, cpu_share: float) -> None:
        """A new budget for this gateway, in CPU seconds per second (SIGHUP); 0 turns admission off. However small
        the budget, the bucket holds three of the dearest handshakes and the reserve one, so that a quiet address
        always finds room for its own."""
        dearest = max(self.costs.values())
        self.rate = cpu_share
        self._bucket.rate, self._bucket.burst = cpu_share, max(cpu_share * BURST_S, 3 * dearest)
        self._reserve = max(cpu_share * RESERVE_S, dearest)
        self._address_rate = cpu_share * PER_ADDRESS_SHARE
        self._address_burst = self._bucket.burst * PER_ADDRESS_SHARE
        for entry in self._addresses.values():
            entry.bucket.rate, entry.bucket.burst = self._address_rate, self._address_burst

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def check(self, address: str, suite: Suite, kind: HandshakeKind) -> Goaway | None:
        """None if a handshake of `kind` from `address` is admitted (and paid for), else the refusal to send."""
        if not self.enabled:
            return None
        now = self._clock()
        cost = self.costs[(suite, kind)]
        entry = self._addresses.get(address)
        if entry is None:
            if len(self._addresses) >= MAX_ADDRESSES:
                self._sweep(now)
            entry = self._addresses[address] = _Address(TokenBucket(self._address_rate, self._address_burst, now), now)
        quiet = kind is not HandshakeKind.FULL or now - entry.asked_at >= QUIET_S
        if kind is HandshakeKind.FULL:
            entry.asked_at = now
        tokens, own = self._bucket.level(now), entry.bucket.level(now)
        # While more than half the burst is left the gateway is not short of handshake CPU: nobody is refused, and no
        # address is charged its share. Below it, an address keeps to its share, and only quiet addresses may spend
        # the reserve. A quiet address and an address's own share may go into debt by one handshake, so that a budget
        # smaller than a handshake still admits one now and then, at the configured rate.
        half = self._bucket.burst / 2
        if tokens > half or (own > 0 and (tokens > 0 if quiet else tokens - cost >= self._reserve)):
            self._bucket.spend(cost)
            if tokens <= half:
                entry.bucket.spend(cost)
            entry.strikes = 0
            return None
        if now < entry.blocked_until:  # already told to wait (a connection opened before that): the time left
            delay_ms = max(1, int((entry.blocked_until - now) * 1000))
        else:
            need = -tokens if quiet else min(cost + self._reserve, half) - tokens
            wait = max(need / self.rate, -own / self._address_rate, 0.0)
            floor_ms = RETRY_MIN_MS << min(entry.strikes, 16)
            entry.strikes += 1
            delay_ms = int(min(max(wait * 1000, floor_ms), RETRY_MAX_MS))
            entry.blocked_until = now + delay_ms / 1000
        return Goaway(ErrorCode.OVERLOADED, delay_ms, delay_ms, RETRY_MAX_MS, JITTER_PERMILLE, REASON)

    def early_wait(self, address: str) -> float:
        """Seconds until `address` may ask again, for a connection it opened before its delay is over (0: none)."""
        entry = self._addresses.get(address)
        return 0.0 if entry is None else max(0.0, entry.blocked_until - self._clock())

    def _sweep(self, now: float) -> None:
        self._addresses = {
            address: entry
            for address, entry in self._addresses.items()
            if now - entry.asked_at < QUIET_S or entry.bucket.level(now) < self._address_burst
        }
