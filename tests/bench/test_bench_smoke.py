"""The protocol benchmarks run end to end at a tiny size (timings are never asserted: CI machines vary)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench() -> Any:
    """bench/bench_protocol.py, imported as the command imports it (its directory on sys.path)."""
    sys.path.insert(0, str(BENCH))
    try:
        import bench_protocol  # noqa: PLC0415 - bench/ is not a package
    finally:
        sys.path.remove(str(BENCH))
    return bench_protocol


def test_every_row_runs_and_is_reported(bench: Any, tmp_path: Path) -> None:
    tiny = bench.Sizes(runs=1, records=3, batches=2, handshakes=2, symmetric=40, asymmetric=2)
    out = tmp_path / "protocol.json"
    assert bench.report(tiny, "", out, "smoke") == 0
    document = json.loads(out.read_text())
    results = {r["name"]: r for r in document["results"]}
    planned = [row.name for row in bench.plan(bench.World(), tiny)]
    assert set(planned) | set(bench.baselines(1, 1)) == set(results)
    for name in planned:
        result = results[name]
        assert result["ops_per_run"] > 0 and len(result["wall_us"]) == 1 and result["wall_us"][0] > 0
        assert (result["target_us"] is None) == (result["passed"] is None)
    assert results["receive_sm4"]["ratio"] > 0
    assert set(results["handshake_full_national"]["sections_median_us"]) == {"client_hello", "client_finished"}
    assert {"date_utc", "nproc", "cpu_model", "python", "openssl_system"} <= set(document["machine"])


def test_command_line_subset(bench: Any, tmp_path: Path) -> None:
    out = tmp_path / "subset.json"
    assert bench.main(["--quick", "--runs", "1", "--only", "seal32_aes_connection", "--out", str(out)]) == 0
    names = [r["name"] for r in json.loads(out.read_text())["results"] if r["group"] != "baseline"]
    assert names == ["seal32_aes_connection"]
