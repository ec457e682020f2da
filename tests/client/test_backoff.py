"""The reconnect schedule: exponential growth, cap, GOAWAY's parameters, jitter bounds."""

from __future__ import annotations

import itertools
import random

import pytest

from kefu.client.backoff import Backoff
from kefu.protocol.frames import Goaway


def take(policy: Backoff, n: int, rng: random.Random | None = None) -> list[float]:
    return list(itertools.islice(policy.delays((rng or random.Random(1)).random), n))


def test_without_jitter_doubles_from_initial_to_the_cap() -> None:
    policy = Backoff(initial=0.5, maximum=30, jitter=0)
    assert take(policy, 9) == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_first_delay_comes_before_the_exponential_part() -> None:
    policy = Backoff(initial=0.5, maximum=4, jitter=0, first=1.0)
    assert take(policy, 6) == [1.0, 0.5, 1, 2, 4, 4]
    assert take(policy.without_first(), 3) == [0.5, 1, 2]


def test_jitter_stays_within_its_bounds_and_spreads() -> None:
    policy = Backoff(initial=1.0, maximum=8.0, jitter=0.2)
    rng = random.Random(7)
    nominal = [1, 2, 4, 8, 8, 8]
    samples = [take(policy, 6, rng) for _ in range(2000)]
    for column, base in enumerate(nominal):
        values = [s[column] for s in samples]
        assert all(base * 0.8 <= v <= base * 1.2 for v in values)
        # uniform over the whole band: both ends are reached closely, the middle is the mean
        assert min(values) < base * 0.82 and max(values) > base * 1.18
        assert abs(sum(values) / len(values) - base) < base * 0.02


def test_jitter_extremes() -> None:
    policy = Backoff(initial=1.0, jitter=0.2)
    assert policy.jittered(10, 0.0) == pytest.approx(8.0)
    assert policy.jittered(10, 0.5) == pytest.approx(10.0)
    assert policy.jittered(10, 0.999999) == pytest.approx(12.0, rel=1e-5)
    assert Backoff(jitter=1.0).jittered(10, 0.0) == 0.0


def test_defaults_are_500_ms_to_30_s_with_20_percent() -> None:
    policy = Backoff()
    assert (policy.initial, policy.maximum, policy.jitter, policy.first) == (0.5, 30.0, 0.2, None)


def test_from_goaway() -> None:
    goaway = Goaway(503, 1500, 250, 8000, 100, "draining")
    policy = Backoff.from_goaway(goaway)
    assert (policy.first, policy.initial, policy.maximum, policy.jitter) == (1.5, 0.25, 8.0, 0.1)


def test_from_goaway_clamps_nonsense() -> None:
    policy = Backoff.from_goaway(Goaway(503, 0, 0, 0, 5000, ""))
    assert policy.initial == 0.001 and policy.maximum == 0.001 and policy.jitter == 1.0 and policy.first == 0.0


@pytest.mark.parametrize(("initial", "maximum", "jitter"), [(0, 1, 0.1), (2, 1, 0.1), (1, 2, -0.1), (1, 2, 1.5)])
def test_rejects_invalid_policies(initial: float, maximum: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial=initial, maximum=maximum, jitter=jitter)
