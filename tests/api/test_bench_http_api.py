"""bench/bench_http_api.py runs end to end at a tiny size (no figures checked: bench/ measures speed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_bench_runs(tmp_path: Path) -> None:
    out = tmp_path / "http_api.json"
    args = ["--pairs", "2", "--seconds", "0.5", "--runs", "1", "--window", "1", "--server-workers", "0"]
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_http_api.py"), *args, "--out", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert {"tcp", "http"} == set(report["runs"])
    assert report["runs"]["http"][0]["messages"] > 0 and report["runs"]["http"][0]["refused"] == 0
