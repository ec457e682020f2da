"""The C load generator (bench/cgen) against spec/vectors and against a real `kefu serve` subprocess.

Each test would fail if the generator were wrong: the self-test compares bytes with the vectors (and is
shown to fail on a corrupted vector), the hold needs the server to accept every proof, the chat counts
every message acknowledged and delivered exactly once by index, and the storm needs the server to accept
the resumptions the generator's PSK binders claim.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.kefu_bench import cgen

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("gcc") is None, reason="needs gcc")

VECTORS = Path(__file__).resolve().parents[2] / "spec" / "vectors"


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cgen.Target]:
    """`kefu serve` on loopback with the harness's load limits (target.LOAD_ENV), output to a file."""
    from bench.kefu_bench.target import LOAD_ENV  # noqa: PLC0415 - the server's dependencies

    root = tmp_path_factory.mktemp("cgen-server")
    log = root / "server.out"
    argv = [sys.executable, "-m", "kefu.server.cli", "serve", "--data-dir", str(root / "data"), "--port", "0",
            "--metrics-port", "0", "--web-port", "0", "--api-port", "0", "--log-level", "warning"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **LOAD_ENV})
    try:
        port = 0
        for _ in range(600):
            if m := re.search(r"listening on [\d.]+:(\d+)", log.read_text()):
                port = int(m.group(1))
                break
            assert proc.poll() is None, log.read_text()
            time.sleep(0.05)
        assert port, "the server did not start"
        yield cgen.Target(port, root / "data", pid=proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_selftest_reproduces_the_vectors() -> None:
    result = cgen.selftest(VECTORS)
    assert result["returncode"] == 0, result["failed"]
    assert result["failed"] == []
    groups = result["groups"]
    assert groups["SM3"] == 6 and groups["HMAC-SM3"] == 4 and groups["HKDF-SHA256"] == 3
    assert groups["SM4-GCM"] == 2  # the RFC 8998 vector both ways, and a tampered tag refused
    assert groups["GCM over AES-CTR (NIST AES-GCM)"] == 750  # our GHASH on every NIST vector
    assert groups["key schedule (records.json)"] == 4 and groups["records (records.json)"] == 8
    assert groups["handshakes (handshakes.json)"] == 16  # two full, two resumed, played byte for byte
    assert groups["handshakes refused"] == 4  # a wrong pin, a tampered SERVER_FINISHED, per suite


def test_selftest_fails_on_a_corrupted_vector(tmp_path: Path) -> None:
    vectors = tmp_path / "vectors"
    shutil.copytree(VECTORS, vectors)
    path = vectors / "crypto-known-answers.json"
    doc = json.loads(path.read_text())
    for vector in doc["vectors"]:
        if vector["alg"] == "SM4-GCM":
            vector["tag"] = ("0" if vector["tag"][0] != "0" else "1") + vector["tag"][1:]
    path.write_text(json.dumps(doc))
    result = cgen.selftest(vectors)
    assert result["returncode"] == 1
    assert "sm4-gcm-rfc8998-a1" in result["failed"]


@pytest.mark.parametrize("suite", ["national", "international"])
def test_hold_keeps_every_session(target: cgen.Target, suite: str) -> None:
    result = cgen.run_hold(target, 50, 2.0, processes=2, suite=suite, prefix="cgenhold", max_seconds=60)
    assert result["connected"] == 50 and result["failed"] == 0, result["fail_codes"]
    assert result["still_connected"] == 50
    assert result["dropped"] == 0 and result["drop_codes"] == {}
    assert result["handshake"].get_total_count() == 50
    assert result["hold_s"] >= 2.0
    assert result["cpu_s"] > 0


def test_hold_refuses_a_server_key_that_is_not_pinned(target: cgen.Target, tmp_path: Path) -> None:
    target.add_bulk("cgenpin", 5, "kefu-bench")
    (tmp_path / "keys").mkdir()
    pins = target.pins_file.read_text().split()
    (tmp_path / "keys" / "pins.txt").write_text("\n".join(p[:-1] + ("0" if p[-1] != "0" else "1") for p in pins))
    wrong = cgen.Target(target.port, tmp_path)
    result = cgen.run_hold(wrong, 5, 0.5, processes=1, prefix="cgenpin", max_seconds=60, add_users=False)
    assert result["connected"] == 0 and result["failed"] == 5
    assert result["fail_codes"] == {"204": 5}  # SERVER_KEY_NOT_PINNED


def test_chat_delivers_every_message_exactly_once(target: cgen.Target) -> None:
    result = cgen.run_chat(target, 20, 200.0, 2.0, processes=2, prefix="cgenchat", drain_s=10, max_seconds=60)
    assert result["connected"] == 40 and result["failed"] == 0
    assert result["setup"]["acked"] == 20 and result["setup"]["delivered"] == 20
    assert result["sent"] == 400 and sum(result["sent_per_s"]) == 400
    assert result["acked"] == 400 and result["refused"] == 0 and result["unacked"] == 0
    assert result["delivered"] == 400 and result["undelivered"] == 0
    assert result["duplicates"] == 0 and result["own_echoes"] == 0 and result["errors"] == {}
    assert result["deliver"].get_total_count() == 400  # every receiver recorded its latency
    assert result["ack"].get_total_count() == 400
    assert 0 < result["deliver"].get_value_at_percentile(50) < 2_000_000  # microseconds, under 2 s


def test_throughput_keeps_the_window_full(target: cgen.Target) -> None:
    result = cgen.run_chat(target, 4, 0, 1.0, processes=1, prefix="cgentp", closed_window=4, max_seconds=60)
    assert result["acked_in_window"] > 8 * 4  # more than one window per connection came back
    assert result["acked"] == result["sent"] and result["undelivered"] == 0 and result["errors"] == {}


def test_handshake_storm_resumes(target: cgen.Target) -> None:
    result = cgen.run_handshake(target, 4, 5, processes=2, prefix="cgenstorm", max_seconds=60)
    stages = {(s["suite"], s["mode"]): s for s in result["stages"]}
    assert set(stages) == {(su, m) for su in ("national", "international") for m in ("full", "resumed")}
    for (suite, mode), stage in stages.items():
        assert stage["handshakes"] == 20 and stage["failures"] == 0, (suite, mode, stage["fail_codes"])
        assert stage["resumed"] == (20 if mode == "resumed" else 0), (suite, mode)
        assert stage["latency"].get_total_count() == 20
