"""The protocol benchmarks run end to end at a tiny size (timings are never asserted: CI machines vary)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_script(name: str) -> Any:
    """bench/NAME.py, imported as its command imports it (its directory on sys.path: bench/ is not a package)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def bench() -> Any:
    """bench/bench_protocol.py."""
    return bench_script("bench_protocol")


@pytest.fixture(scope="module")
def sm2_timing() -> Any:
    """bench/bench_sm2_timing.py."""
    return bench_script("bench_sm2_timing")


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


# --- bench/bench_sm2_timing.py ---------------------------------------------------------------------------


def test_sm2_timing_runs_every_target(sm2_timing: Any, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setattr(sm2_timing, "WARM_UP", 2)
    assert sm2_timing.main(["--samples", "5"]) == 0
    document = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert [r["target"] for r in document["results"]] == list(sm2_timing.targets())
    for result in document["results"]:
        assert result["samples_per_class"] == 5 and result["short_median_us"] > 0
        assert result["verdict"] in {"LEAK", "no evidence", "unclear"}


def test_sm2_timing_scalar_classes(sm2_timing: Any) -> None:
    for _ in range(50):
        assert 0 < int.from_bytes(sm2_timing.short_scalar(8), "big") < 2**248
        assert 2**255 <= int.from_bytes(sm2_timing.full_scalar(), "big") < sm2_timing.N - 1


def test_sm2_timing_statistics_on_known_samples(sm2_timing: Any) -> None:
    assert sm2_timing.ks_statistic([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0
    assert sm2_timing.ks_statistic([1.0, 2.0], [3.0, 4.0]) == 1
    assert sm2_timing.ks_p_value(0.0, 100, 100) == 1.0
    assert sm2_timing.ks_p_value(0.5, 1000, 1000) < 1e-50
    assert sm2_timing.welch_t([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0
    assert sm2_timing.welch_t([10.0, 11.0, 12.0], [1.0, 2.0, 3.0]) > 10


def test_the_crash_loop_kills_restarts_and_counts(tmp_path: Path) -> None:
    crashloop = bench_script("bench_crashloop")
    out = tmp_path / "crashloop.jsonl"
    tiny = ["--conversations", "1", "--senders", "2", "--cycles", "1", "--min-up", "0.5", "--max-up", "0.5"]
    tiny += ["--server-env", "KEFU_SERVER_WORKERS=0"]  # one process: the quickest to start, twice
    result = crashloop.run_once(crashloop.parse_args([*tiny, "--drain", "20", "--out", str(out)]))
    assert result["cycles"] == 1 and result["acknowledged_sends"] > 0
    assert result["drained"] and result["lost"] == 0, "every acknowledged message reached every other member"
    assert result["frames"] >= result["distinct_deliveries"] > 0 and result["own_sender_frames"] == 0
    assert set(result["by_kind"]) == {"sender", "observer"}
    assert json.loads(out.read_text().splitlines()[-1])["frames"] == result["frames"]
