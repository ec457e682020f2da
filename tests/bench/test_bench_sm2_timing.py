"""bench/bench_sm2_timing.py runs end to end at a tiny size (timings are never asserted: CI machines vary)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> Any:
    """bench/bench_sm2_timing.py, imported as the command imports it (its directory on sys.path)."""
    sys.path.insert(0, str(BENCH))
    try:
        import bench_sm2_timing  # noqa: PLC0415 - bench/ is not a package
    finally:
        sys.path.remove(str(BENCH))
    return bench_sm2_timing


def test_every_target_runs_and_is_reported(bench: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr(bench, "WARM_UP", 2)
    assert bench.main(["--samples", "5"]) == 0
    document = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [r["target"] for r in document["results"]] == list(bench.targets())
    for result in document["results"]:
        assert result["samples_per_class"] == 5 and result["short_median_us"] > 0
        assert result["verdict"] in {"LEAK", "no evidence", "unclear"}


def test_scalar_classes(bench: Any) -> None:
    for _ in range(50):
        assert 0 < int.from_bytes(bench.short_scalar(8), "big") < 2**248
        assert 2**255 <= int.from_bytes(bench.full_scalar(), "big") < bench.N - 1


def test_statistics_on_known_samples(bench: Any) -> None:
    assert bench.ks_statistic([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0
    assert bench.ks_statistic([1.0, 2.0], [3.0, 4.0]) == 1
    assert bench.ks_p_value(0.0, 100, 100) == 1.0
    assert bench.ks_p_value(0.5, 1000, 1000) < 1e-50
    assert bench.welch_t([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0
    assert bench.welch_t([10.0, 11.0, 12.0], [1.0, 2.0, 3.0]) > 10
