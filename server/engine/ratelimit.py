"""Token buckets: per connection, per app, and per source address for new connections."""

from __future__ import annotations


class TokenBucket:
    """`rate` tokens per second up to `burst`; `take` spends if it can. The clock is passed in."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def take(self, amount: float, now: float) -> bool:
        """Spend `amount` tokens if available."""
        self._refill(now)
        if self._tokens >= amount:
            self._tokens -= amount
            return True
        return False

    def level(self, now: float) -> float:
        """The tokens there are at `now` (negative: in debt)."""
        self._refill(now)
        return self._tokens

    def spend(self, amount: float) -> None:
        """Spend `amount` (into debt if need be) after `level` said so; no refill."""
        self._tokens -= amount

    def force(self, amount: float, now: float) -> float:
        """Spend `amount` even into debt; returns seconds until the bucket is out of debt (0 if not in debt)."""
        self._refill(now)
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate


class BucketTable:
    """Buckets by key (app id, source address), created on first use and forgotten once full again."""

    MAX_KEYS = 1_000_000
    """Bound on tracked keys; past it the table is swept and, if still full, new keys are refused."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, amount: float, now: float) -> bool:
        """Spend from `key`'s bucket."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.MAX_KEYS:
                self.sweep(now)
                if len(self._buckets) >= self.MAX_KEYS:
                    return False
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now)
        return bucket.take(amount, now)

    def sweep(self, now: float) -> None:
        """Drop buckets that have refilled completely (they hold no state worth keeping)."""
        idle = self.burst / self.rate if self.rate else 0.0
        self._buckets = {k: b for k, b in self._buckets.items() if now - b._stamp < idle}

    def configure(self, rate: float, burst: float) -> None:
        """New limits (SIGHUP); existing buckets adopt them."""
        self.rate, self.burst = rate, burst
        for bucket in self._buckets.values():
            bucket.rate, bucket.burst = rate, burst
