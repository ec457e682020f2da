"""The data directory lock and `kefu restore`, on real LMDB files, through the real command."""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import lmdb
import pytest

from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage import datadir
from kefu.server.storage.datadir import DataDirBusy, RestoreError, holder, inspect_backup, lock_data_dir
from kefu.server.storage.store import SCHEMA_VERSION, Store

TIMEOUT = 30.0


def kefu(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    return subprocess.run([sys.executable, "-m", "kefu.server.cli", *args], env=clean | dict(env or {}),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)  # fmt: skip


def apps(data_dir: Path, store_dir: str = "store") -> list[str]:
    store = Store(data_dir / store_dir, sealer=sealer_of(data_dir, "sm4-gcm"))
    try:
        return store.list_apps()
    finally:
        store.close()


@pytest.fixture(scope="module")
def backed_up_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with data/ (app "early" in a backup and app "late" added after it) and backup/, made once for the
    module by the real commands (three processes); each test gets a copy (`backed_up`)."""
    root = tmp_path_factory.mktemp("backed-up")
    data = root / "data"
    assert kefu("app", "add", "early", "--data-dir", str(data)).returncode == 0
    backup = root / "backup"
    assert kefu("backup", str(backup), "--data-dir", str(data)).returncode == 0
    assert kefu("app", "add", "late", "--data-dir", str(data)).returncode == 0
    return root


@pytest.fixture
def backed_up(backed_up_once: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of `backed_up_once` of the test's own (files copied with their modes; no process holds them)."""
    for name in ("data", "backup"):
        shutil.copytree(backed_up_once / name, tmp_path / name)
    return tmp_path / "data", tmp_path / "backup"


def test_restore_replaces_the_store_and_keeps_the_old_one_aside(backed_up: tuple[Path, Path]) -> None:
    data, backup = backed_up
    keys_before = sorted(p.name for p in (data / "keys").iterdir()) if (data / "keys").exists() else []
    result = kefu("restore", str(backup), "--data-dir", str(data))
    assert result.returncode == 0, result.stderr
    assert f"schema {SCHEMA_VERSION}" in result.stdout and "1 apps" in result.stdout
    assert apps(data) == ["early"]
    [aside] = data.glob("store.before-restore-*")
    assert apps(data, aside.name) == ["early", "late"], "nothing is deleted"
    assert str(aside) in result.stderr and "keys" in result.stderr
    assert stat.S_IMODE((data / "store").stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "store" / "data.mdb").stat().st_mode) == 0o600
    assert not (data / "store.restoring").exists()
    assert (sorted(p.name for p in (data / "keys").iterdir()) if (data / "keys").exists() else []) == keys_before
    assert list(backup.iterdir()) == [backup / "data.mdb"], "the backup is only read"


def test_restore_into_an_empty_data_dir(backed_up: tuple[Path, Path], tmp_path: Path) -> None:
    data, backup = backed_up
    fresh = tmp_path / "fresh"
    (fresh / "keys").mkdir(parents=True, mode=0o700)  # the data key comes from the keys' own backup
    (fresh / "keys" / "data-1.key").write_bytes((data / "keys" / "data-1.key").read_bytes())
    result = kefu("restore", str(backup), "--data-dir", str(fresh))
    assert result.returncode == 0, result.stderr
    assert apps(fresh) == ["early"] and not list(fresh.glob("store.before-restore-*"))


def test_restore_twice_keeps_both_previous_stores(backed_up: tuple[Path, Path]) -> None:
    data, backup = backed_up
    for _ in range(2):
        datadir.restore(backup, data, data / "store", now=1_700_000_000.0)
    assert sorted(p.name for p in data.glob("store.before-restore-*")) == [
        "store.before-restore-20231114T221320Z",
        "store.before-restore-20231114T221320Z-1",
    ]


def test_restore_is_refused_while_the_data_dir_is_held(backed_up: tuple[Path, Path]) -> None:
    data, backup = backed_up
    with lock_data_dir(data):
        result = kefu("restore", str(backup), "--data-dir", str(data))
        held = holder(data)
        assert held is not None and held[0] == os.getpid()
    assert result.returncode == 1
    assert f"in use by another kefu process (pid {os.getpid()})" in result.stderr
    assert apps(data) == ["early", "late"]


def test_the_lock_refuses_a_second_holder_and_names_the_first(tmp_path: Path) -> None:
    first = lock_data_dir(tmp_path)
    with pytest.raises(DataDirBusy, match=f"pid {os.getpid()}"):
        lock_data_dir(tmp_path)
    first.release()
    lock_data_dir(tmp_path).release()


def test_holder_reports_another_process(tmp_path: Path) -> None:
    code = "import sys, time; from kefu.server.storage.datadir import lock_data_dir; l = lock_data_dir(sys.argv[1]);"
    code += " print('locked', flush=True); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "locked"
        held = holder(tmp_path)
        assert held is not None and held[0] == child.pid
    finally:
        child.kill()
        child.wait(10)
        assert child.stdout is not None
        child.stdout.close()
    assert holder(tmp_path) is None, "the kernel drops the lock with the process"


@pytest.mark.parametrize("case", ["missing", "partial", "empty", "foreign", "newer"])
def test_restore_refuses_what_is_not_a_compatible_backup(
    backed_up: tuple[Path, Path], tmp_path: Path, case: str
) -> None:
    data, backup = backed_up
    target = {"missing": tmp_path / "nope", "partial": tmp_path / "b.partial", "empty": tmp_path / "empty",
              "foreign": tmp_path / "foreign", "newer": backup}[case]  # fmt: skip
    if case in ("partial", "empty"):
        target.mkdir()
    if case == "partial":
        (target / "data.mdb").write_bytes((backup / "data.mdb").read_bytes())
    if case == "foreign":
        env = lmdb.open(str(target), max_dbs=2)
        with env.begin(write=True) as txn:
            txn.put(b"hello", b"world")
        env.close()
    if case == "newer":
        env = lmdb.open(str(target), max_dbs=10)
        with env.begin(write=True) as txn:
            txn.put(b"schema_version", struct.pack("!I", 99), db=env.open_db(b"meta", txn=txn))
        env.close()
    with pytest.raises(RestoreError):
        inspect_backup(target)
    result = kefu("restore", str(target), "--data-dir", str(data))
    assert result.returncode == 1
    assert {"missing": "no data.mdb", "partial": "unfinished", "empty": "no data.mdb", "foreign": "not a kefu store",
            "newer": f"newer than {SCHEMA_VERSION}"}[case] in result.stderr  # fmt: skip
    assert apps(data) == ["early", "late"], "the store was not touched"
    assert not list(data.glob("store.before-restore-*"))
