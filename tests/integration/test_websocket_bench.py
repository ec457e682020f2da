"""bench/bench_websocket.py runs end to end at a tiny size against a real server (its timings are never asserted:
what is checked is that both transports carried messages and the report holds what RESULTS.md quotes)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.slow


def test_the_websocket_benchmark_runs_both_transports(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        bench = importlib.import_module("bench_websocket")
    finally:
        sys.path.remove(str(BENCH))
    out = tmp_path / "websocket.json"
    argv = ["--pairs", "3", "--seconds", "0.5", "--runs", "1", "--server-workers", "0", "--out", str(out)]
    assert bench.main(argv) == 0
    report = json.loads(out.read_text())
    for transport in ("tcp", "ws"):
        (run,) = report["runs"][transport]
        assert run["messages"] > 0 and run["refused"] == 0 and run["server_cpu_us_per_msg"] > 0
    assert set(report["ws_over_tcp"]) == {"messages_per_s", "server_cpu_us_per_msg", "client_cpu_us_per_msg"}
