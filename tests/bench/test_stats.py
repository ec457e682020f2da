"""The harness's reading of a Prometheus histogram from two scrapes (`bench/kefu_bench/stats.py`)."""

from __future__ import annotations

import math

import pytest

from bench.kefu_bench.stats import bucket_quantile


def scrape(buckets: dict[str, float]) -> dict[str, float]:
    return {f"lat_bucket{{le={le}}}": n for le, n in buckets.items()}


def test_a_quantile_is_interpolated_within_its_bucket_as_promql_does() -> None:
    s = scrape({"0.001": 10.0, "0.005": 90.0, "0.01": 100.0, "+Inf": 100.0})
    assert bucket_quantile(s, "lat", 0.5) == pytest.approx(0.001 + 0.004 * 40 / 80)
    assert bucket_quantile(s, "lat", 0.95) == pytest.approx(0.005 + 0.005 * 0.5)
    assert bucket_quantile(s, "lat", 0.05) == pytest.approx(0.0005), "the first bucket starts at 0"


def test_unknown_quantiles_are_nan() -> None:
    assert math.isnan(bucket_quantile(scrape({"0.01": 100.0, "+Inf": 200.0}), "lat", 0.99)), "in the +Inf bucket"
    assert math.isnan(bucket_quantile(scrape({"0.01": 0.0, "+Inf": 0.0}), "lat", 0.5)), "no sample"
    assert math.isnan(bucket_quantile({}, "lat", 0.5))
