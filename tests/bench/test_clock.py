"""The harness's timerfd sleeper (`bench/kefu_bench/clock.py`), on uvloop as the workers run it."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import pytest
import uvloop

from bench.kefu_bench.clock import PreciseTimer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux only")


def test_wakes_at_each_deadline_never_before_it() -> None:
    async def main() -> list[int]:
        timer = PreciseTimer.create(asyncio.get_running_loop())
        assert timer is not None
        late = []
        try:
            start = time.monotonic_ns()
            for k in range(1, 21):  # deadlines 0.7 ms apart, closer than asyncio's 1 ms timer resolution
                deadline = start + k * 700_000
                await timer.wait_until(deadline)
                late.append(time.monotonic_ns() - deadline)
            await asyncio.wait_for(timer.wait_until(time.monotonic_ns() - 5_000_000), 1.0)  # past: returns at once
        finally:
            timer.close()
        return late

    late = uvloop.run(main())
    assert len(late) == 20 and min(late) >= 0, "a wait never ends before its deadline"


def test_a_closed_timer_releases_its_descriptor() -> None:
    async def main() -> int:
        timer = PreciseTimer.create(asyncio.get_running_loop())
        assert timer is not None
        fd = timer._fd
        os.fstat(fd)
        timer.close()
        return fd

    fd = uvloop.run(main())
    with pytest.raises(OSError):
        os.fstat(fd)
