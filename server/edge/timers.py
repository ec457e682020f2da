"""One timer wheel for every connection (no call_later per connection per message).

Theory of operation: time is cut into ticks of `resolution` seconds. Each tick with something due is a
bucket (a set of targets) in a dict, and a heap of tick numbers says which bucket comes next. The wheel
keeps exactly one `loop.call_at` armed, for the earliest bucket. A target is in at most one bucket: moving
its deadline is O(1) removal plus insertion. When a bucket fires, each target's `on_timer(now)` runs and
the target reschedules itself if it still needs to. A target carries its own tick (`wheel_tick`), rather than the
wheel keeping a dict of them: with 100k idle sessions that dict alone cost about 60 bytes a session.
"""

from __future__ import annotations

import asyncio
import heapq
from typing import Protocol


class TimerTarget(Protocol):
    """Anything with a timer: a session. `wheel_tick` belongs to the wheel (0: no deadline); start it at 0."""

    wheel_tick: int

    def on_timer(self, now: float) -> None:
        """The deadline passed."""


DEFAULT_RESOLUTION = 0.05
"""50 ms: far finer than the shortest deadline (a 1 s retry), coarse enough that 100k sessions with 30 s
keepalives land on a few hundred buckets rather than one heap entry each."""


class TimerWheel:
    """Deadlines of many targets on one event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, resolution: float = DEFAULT_RESOLUTION) -> None:
        self._loop = loop
        self._resolution = resolution
        self._buckets: dict[int, set[TimerTarget]] = {}
        self._ticks: list[int] = []
        self._armed: tuple[int, asyncio.TimerHandle] | None = None

    def __len__(self) -> int:
        return sum(len(bucket) for bucket in self._buckets.values())

    def schedule(self, target: TimerTarget, when: float | None) -> None:
        """Fire `target.on_timer` at (or just after) `when`; None cancels."""
        self.cancel(target)
        if when is None:
            return
        tick = int(when / self._resolution) + 1
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = set()
            heapq.heappush(self._ticks, tick)
        bucket.add(target)
        target.wheel_tick = tick
        self._arm()

    def cancel(self, target: TimerTarget) -> None:
        """Forget `target`'s deadline."""
        tick = target.wheel_tick
        if tick:
            target.wheel_tick = 0
            bucket = self._buckets.get(tick)
            if bucket is not None:
                bucket.discard(target)

    def _arm(self) -> None:
        while self._ticks and not self._buckets.get(self._ticks[0]):
            self._buckets.pop(heapq.heappop(self._ticks), None)
        if not self._ticks:
            return
        first = self._ticks[0]
        if self._armed is not None:
            if self._armed[0] <= first:
                return
            self._armed[1].cancel()
        self._armed = (first, self._loop.call_at(first * self._resolution, self._fire))

    def _fire(self) -> None:
        self._armed = None
        now = self._loop.time()
        limit = int(now / self._resolution)
        while self._ticks and self._ticks[0] <= limit:
            tick = heapq.heappop(self._ticks)
            for target in self._buckets.pop(tick, ()):
                if target.wheel_tick == tick:
                    target.wheel_tick = 0
                    target.on_timer(now)
        self._arm()
