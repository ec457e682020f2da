"""Server key rotation through the real command: keygen adds, both keys are pinned, `key retire` ends the overlap."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kefu.server.identity import keys
from kefu.server.storage.datadir import lock_data_dir

TIMEOUT = 30.0


def kefu(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    return subprocess.run([sys.executable, "-m", "kefu.server.cli", *args], env=env, capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)  # fmt: skip


def listed(data: Path) -> dict[str, tuple[str, str]]:
    """file -> (status, pin) from `kefu key list`."""
    result = kefu("key", "list", "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    return {row[0]: (row[1], row[2]) for row in rows}


@pytest.fixture
def rotated(tmp_path: Path) -> Path:
    """sm2-1 (old) and sm2-2 (new) on disk, as after `kefu keygen` twice."""
    data = tmp_path / "data"
    assert kefu("keygen", "--data-dir", str(data), "--type", "sm2").returncode == 0
    assert kefu("keygen", "--data-dir", str(data), "--type", "sm2").returncode == 0
    return data


def test_the_newest_signs_and_both_are_pinned_during_the_overlap(rotated: Path) -> None:
    rows = listed(rotated)
    assert {name: status for name, (status, _) in rows.items()} == {"sm2-1.key": "pinned", "sm2-2.key": "signs"}
    assert [f.pin for f in keys.load_keys(rotated)[keys.KeyType.SM2]] == [rows["sm2-1.key"][1], rows["sm2-2.key"][1]]


def test_retire_removes_the_old_key_and_its_pin(rotated: Path) -> None:
    old_pin, new_pin = listed(rotated)["sm2-1.key"][1], listed(rotated)["sm2-2.key"][1]
    (rotated / "keys" / "pins.txt").write_text(f"{new_pin}\n{old_pin}\n")  # as the server wrote it at start
    result = kefu("key", "retire", old_pin, "--data-dir", str(rotated))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["sm2-1.key", old_pin, "retired"]
    assert not (rotated / "keys" / "sm2-1.key").exists()
    assert (rotated / "keys" / "pins.txt").read_text() == f"{new_pin}\n"
    assert listed(rotated) == {"sm2-2.key": ("signs", new_pin)}
    again = kefu("key", "retire", old_pin, "--data-dir", str(rotated))
    assert again.returncode == 1 and "no server key with pin" in again.stderr


def test_the_signing_key_cannot_be_retired(rotated: Path) -> None:
    new_pin = listed(rotated)["sm2-2.key"][1]
    result = kefu("key", "retire", new_pin, "--data-dir", str(rotated))
    assert result.returncode == 1 and "newest sm2 key and signs" in result.stderr
    assert (rotated / "keys" / "sm2-2.key").exists()


def test_retire_waits_for_a_running_server_to_restart_onto_the_new_key(rotated: Path) -> None:
    old_pin = listed(rotated)["sm2-1.key"][1]
    with lock_data_dir(rotated) as held:  # a "server" that started before sm2-2 was generated
        started = (rotated / "keys" / "sm2-2.key").stat().st_mtime - 60
        os.utime(held.path, (started, started))
        result = kefu("key", "retire", old_pin, "--data-dir", str(rotated))
        assert result.returncode == 1 and "restart it first" in result.stderr
        now = time.time()
        os.utime(held.path, (now, now))  # "restarted": it signs with sm2-2 now
        result = kefu("key", "retire", old_pin, "--data-dir", str(rotated))
        assert result.returncode == 0, result.stderr
