"""The load harness (bench/kefu_bench) runs every scenario end to end at a tiny size against a spawned server.

Checked: the outputs exist and the numbers are sane (everything sent is delivered, no errors, the server did
not crash). Performance is never asserted: CI machines vary.
"""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NEEDED = ("hdrh", "matplotlib", "tqdm", "uvloop", "lmdb")

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in NEEDED),
    reason="needs the server and bench extras: pip install -e '.[server,test]'",
)


def run_smoke(scenario: str, out: Path) -> dict[str, Any]:
    """`python -m bench.kefu_bench SCENARIO --smoke`; returns its JSON document after checking every output. The
    deadline is a bound, not a duration: a phase starts only with its duration + 40 s left (scenario_seed), so 50 s
    skipped seed-table's phases whenever the server's start and the ramp took more than about 7 s (a loaded CI
    machine: no latency, no rows, a failure)."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.kefu_bench", scenario, "--smoke", "--out", str(out), "--max-seconds", "110"],
        cwd=ROOT, capture_output=True, text=True, timeout=170, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
    documents = list(out.glob(f"{scenario}-*.json"))
    assert len(documents) == 1
    doc: dict[str, Any] = json.loads(documents[0].read_text())
    for kind, path in doc["outputs"].items():
        assert Path(path).is_file() and Path(path).stat().st_size > 0, kind
    assert {"json", "markdown", "latency_png", "throughput_png"} <= set(doc["outputs"])
    assert f"kefu bench: {scenario}" in result.stdout
    assert doc["summary"]["server_crashed"] == 0
    assert {"nproc", "cpu_model", "memory_gib", "python", "date_utc"} <= set(doc["machine"])
    return doc


def test_connect(tmp_path: Path) -> None:
    s = run_smoke("connect", tmp_path)["summary"]
    assert s["sessions_connected"] == s["sessions_requested"] == s["sessions_alive_at_end_of_hold"] == 40
    assert s["connect_failures"] == s["lost_during_hold"] == 0
    assert s["rss_empty_kib"] > 0 and s["rss_holding_kib"] > 0 and math.isfinite(s["rss_per_idle_session_kib"])


def test_handshake(tmp_path: Path) -> None:
    doc = run_smoke("handshake", tmp_path)
    rows = {(r["suite"], r["mode"].split()[0]): r for r in doc["rows"]}
    assert set(rows) == {(s, m) for s in ("national", "international") for m in ("full", "resumed")}
    for (_, mode), row in rows.items():
        assert row["handshakes"] == 4 * 3 and row["failures"] == 0
        assert row["resumed_share"] == (1.0 if mode == "resumed" else 0.0)
    assert doc["latency"]["national full"]["summary"]["count"] == 12


def test_chat(tmp_path: Path) -> None:
    doc = run_smoke("chat", tmp_path)
    s = doc["summary"]
    assert s["sessions_connected"] == 20
    assert s["sent"] == s["acked"] == s["delivered"] == 200
    assert s["error_count"] == s["duplicates"] == s["unacked"] == 0
    assert 0 < s["deliver_p50_ms"] <= s["deliver_p99_ms"] <= s["deliver_max_ms"]
    assert sum(doc["series_per_second"]["delivered"]) == 200
    assert 0 <= s["mean_sender_lag_ms"] <= s["max_sender_lag_ms"]
    assert 0 < s["server_delivery_p99_ms"] <= 5000, "the server histogram's p99, from its buckets"


def test_throughput(tmp_path: Path) -> None:
    s = run_smoke("throughput", tmp_path)["summary"]
    assert s["sent"] == s["acked"] == s["delivered"] > 0
    assert s["error_count"] == s["unacked"] == 0
    assert s["delivered_in_window"] > 0 and s["messages_per_server_cpu_s"] > 0


def test_reconnect_storm(tmp_path: Path) -> None:
    s = run_smoke("reconnect-storm", tmp_path)["summary"]
    assert s["reconnected"] == s["clients"] == 22
    assert s["caught_up"] == s["receivers"] == 20
    assert s["resumed_share"] == 1.0  # tickets survive one restart
    assert s["all_reconnected_s"] > 0 and s["all_caught_up_s"] > 0


def test_seed_table(tmp_path: Path) -> None:
    doc = run_smoke("seed-table", tmp_path)
    assert len(doc["rows"]) == 2
    for row in doc["rows"]:
        assert row["concurrent users"] == 20 and row["crashes"] == 0 and row["errors"] == 0
        delivered, sent = row["delivered/sent"].split("/")
        assert delivered == sent != "0"
