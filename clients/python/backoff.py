"""Reconnect and retry delays: exponential backoff with symmetric jitter (spec/PROTOCOL.md section 4.8).

Theory of operation: a `Backoff` is a policy (frozen), `delays()` a fresh schedule drawn from it. The
schedule is `initial`, 2*initial, 4*initial ... capped at `maximum`, preceded by the policy's `first`
(GOAWAY's reconnect_delay_ms) when it is set. Every delay is multiplied by a uniform
factor in [1 - jitter, 1 + jitter], so clients dropped together do not come back together. The schedule is
endless: the caller decides when to stop (the client never does while `reconnect=True`; every attempt
still waits its delay).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from kefu.protocol.frames import Goaway

DEFAULT_INITIAL_S = 0.5
"""First retry after 500 ms: a restarting server is typically back within a second or two."""
DEFAULT_MAX_S = 30.0
"""Never wait more than 30 s: a customer-service chat must come back quickly once the server is up."""
DEFAULT_JITTER = 0.2
"""+-20 %: spreads 100,000 clients dropped at once over a window as wide as 40 % of each delay."""


@dataclass(frozen=True, slots=True)
class Backoff:
    """A backoff policy: delays in seconds, `jitter` as a fraction (0.2 = +-20 %)."""

    initial: float = DEFAULT_INITIAL_S
    maximum: float = DEFAULT_MAX_S
    jitter: float = DEFAULT_JITTER
    first: float | None = None
    """Delay before the first attempt, ahead of the exponential part; None: start with `initial`."""

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError(f"need 0 < initial <= maximum, got {self.initial} and {self.maximum}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be within [0, 1], got {self.jitter}")

    @classmethod
    def from_goaway(cls, goaway: Goaway) -> Backoff:
        """The policy a GOAWAY asks for (its reconnect delay becomes `first`)."""
        initial = max(goaway.backoff_initial_ms, 1) / 1000
        return cls(
            initial=initial,
            maximum=max(goaway.backoff_max_ms / 1000, initial),
            jitter=min(goaway.jitter_permille, 1000) / 1000,
            first=goaway.reconnect_delay_ms / 1000,
        )

    def without_first(self) -> Backoff:
        """The same policy for later losses (a GOAWAY's delay applies to the reconnect right after it)."""
        return replace(self, first=None)

    def jittered(self, delay: float, uniform: float) -> float:
        """`delay` scaled by 1 + jitter * (2 * uniform - 1), for `uniform` in [0, 1)."""
        return max(0.0, delay * (1 + self.jitter * (2 * uniform - 1)))

    def delays(self, rng: Callable[[], float] = random.random) -> Iterator[float]:
        """An endless schedule of jittered delays (seconds)."""
        if self.first is not None:
            yield self.jittered(self.first, rng())
        delay = self.initial
        while True:
            yield self.jittered(delay, rng())
            delay = min(delay * 2, self.maximum)
