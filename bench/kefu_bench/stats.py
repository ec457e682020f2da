"""Latency histograms (HdrHistogram) and per-second counters, mergeable across worker processes.

Latencies are recorded in microseconds from 1 us to 10 minutes at 3 significant digits: a few tens of KB
per histogram whatever the count, and exact enough that p99.9 is a real reading rather than an estimate.
A worker sends its histogram encoded (the standard compressed HdrHistogram form); the harness decodes
and adds them, so percentiles are those of all samples, never an average of per-process percentiles.
"""

from __future__ import annotations

import math
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 600_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


def new_histogram() -> HdrHistogram:
    """An empty latency histogram in microseconds."""
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def record_ns(histogram: HdrHistogram, nanoseconds: int) -> None:
    """Record one latency given in nanoseconds (clamped into the histogram's range)."""
    histogram.record_value(min(max(nanoseconds // 1000, LOWEST_US), HIGHEST_US))


def encode(histogram: HdrHistogram) -> str:
    """The histogram as text, to cross a process boundary or be stored in the JSON results."""
    data: bytes = histogram.encode()
    return data.decode("ascii")


def merge(encoded: list[str]) -> HdrHistogram:
    """One histogram holding every sample of the encoded ones."""
    total = new_histogram()
    for text in encoded:
        if text:
            total.add(HdrHistogram.decode(text.encode("ascii")))
    return total


def summary_ms(histogram: HdrHistogram) -> dict[str, Any]:
    """count, mean, p50/p90/p99/p99.9 and max in milliseconds."""
    count = histogram.get_total_count()
    if not count:
        return {"count": 0}
    out: dict[str, Any] = {"count": count, "mean_ms": histogram.get_mean_value() / 1000}
    for p in PERCENTILES:
        out[f"p{p:g}_ms"] = histogram.get_value_at_percentile(p) / 1000
    out["max_ms"] = histogram.get_max_value() / 1000
    return out


def distribution_ms(histogram: HdrHistogram) -> list[tuple[float, float]]:
    """(percentile, latency ms) points of the percentile distribution, for the plot."""
    if not histogram.get_total_count():
        return []
    return [
        (item.percentile_level_iterated_to, item.value_iterated_to / 1000)
        for item in histogram.get_percentile_iterator(5)
    ]


class PerSecond:
    """Counts per whole second since a start time (monotonic ns)."""

    __slots__ = ("counts", "t0_ns")

    def __init__(self, t0_ns: int) -> None:
        self.t0_ns = t0_ns
        self.counts: list[int] = []

    def add(self, now_ns: int, n: int = 1) -> None:
        """Count `n` events at `now_ns`."""
        second = (now_ns - self.t0_ns) // 1_000_000_000
        if second < 0:
            second = 0
        counts = self.counts
        while len(counts) <= second:
            counts.append(0)
        counts[second] += n


def add_series(series: list[list[int]]) -> list[int]:
    """Element-wise sum of per-second series of different lengths."""
    total: list[int] = []
    for s in series:
        if len(s) > len(total):
            total += [0] * (len(s) - len(total))
        for i, v in enumerate(s):
            total[i] += v
    return total


def bucket_quantile(metrics: dict[str, float], name: str, q: float) -> float:
    """The q-quantile (0 to 1) of the Prometheus histogram `name` in a scrape (or a difference of two scrapes:
    keys like ``name_bucket{le=0.005}``), interpolated within its bucket as PromQL's histogram_quantile does;
    nan when it holds no sample or the quantile falls in the +Inf bucket."""
    prefix = f"{name}_bucket{{le="
    buckets = sorted(
        (float(key[len(prefix) : -1]), count) for key, count in metrics.items() if key.startswith(prefix)
    )  # fmt: skip
    if not buckets or buckets[-1][1] <= 0:
        return math.nan
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return math.nan
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below else 1.0)
        lower, below = bound, count
    return math.nan
