"""Files at rest are kefu's user's alone (issue #13, point 9; kefu.server.storage.modes): every directory 0700 and every
file 0600 under the data directory and in backups, whatever the umask kefu was started with; wider modes left from
before are narrowed at start and reported by `kefu check-config`."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from kefu.protocol import frames
from kefu.server import log
from kefu.server.engine.messages import StoredMessage, encode_message
from kefu.server.storage import maintenance
from kefu.server.storage.modes import private_dir, tighten, too_wide
from kefu.server.storage.schema import message_key
from kefu.server.storage.store import Store
from tests.integration.conftest import ServerProcess, add_apps
from tests.integration.peer import Peer

TIMEOUT = 30.0
WIDE_UMASK = 0o022
"""The usual login umask, under which files are made 0644 and directories 0755 unless kefu says otherwise."""


@pytest.fixture
def wide_umask() -> Iterator[None]:
    """This process (and every subprocess it starts: the server, `kefu app add`, `kefu backup`) under umask 022."""
    before = os.umask(WIDE_UMASK)
    try:
        yield
    finally:
        os.umask(before)


def kefu(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    return subprocess.run([sys.executable, "-m", "kefu.server.cli", *args], env=clean | dict(env or {}),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)  # fmt: skip


def modes(root: Path) -> dict[str, str]:
    """Every directory and file at and under `root`, relative name -> octal mode."""
    found = {".": f"{stat.S_IMODE(root.lstat().st_mode):04o}"}
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(directory) / name
            found[str(path.relative_to(root))] = f"{stat.S_IMODE(path.lstat().st_mode):04o}"
    return found


def not_private(root: Path) -> dict[str, str]:
    """What under `root` is not 0700 (directories) or 0600 (files)."""
    wrong = {}
    for name, mode in modes(root).items():
        want = "0700" if (root / name).is_dir() else "0600"
        if mode != want:
            wrong[name] = mode
    return wrong


def _fields(record: logging.LogRecord) -> dict[str, object]:
    """The fields of one of kefu's log events (kefu.server.log)."""
    return dict(getattr(record, log._FIELDS))


# --- the helpers ----------------------------------------------------------------------------------------------


def test_private_dir_makes_every_missing_directory_0700_under_a_wide_umask(tmp_path: Path, wide_umask: None) -> None:
    made = private_dir(tmp_path / "a" / "b" / "c")
    assert made.is_dir()
    assert not_private(tmp_path / "a") == {}


def test_tighten_narrows_what_is_wider_and_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = tmp_path / "data"
    (root / "keys").mkdir(parents=True)
    os.chmod(root, 0o755)
    os.chmod(root / "keys", 0o750)
    (root / "data.mdb").write_bytes(b"x")
    os.chmod(root / "data.mdb", 0o644)
    (root / "fine").write_bytes(b"x")
    os.chmod(root / "fine", 0o600)
    os.symlink("/etc/passwd", root / "link")  # neither followed nor changed

    found = {(w.path.name, w.mode & 0o777, w.want) for w in too_wide(root)}
    assert found == {("data", 0o755, 0o700), ("keys", 0o750, 0o700), ("data.mdb", 0o644, 0o600)}
    tighten(root)
    assert {k: v for k, v in not_private(root).items() if k != "link"} == {}
    assert stat.S_IMODE(os.stat("/etc/passwd").st_mode) & 0o004, "a link's target is never changed"
    narrowed = [_fields(r) for r in caplog.records if r.msg == "files.mode_narrowed"]
    assert len(narrowed) == 3 and {"path": str(root / "data.mdb"), "mode": "0644", "now": "0600"} in narrowed
    assert list(too_wide(root)) == []


def test_store_backup_and_archives_are_private_under_a_wide_umask(tmp_path: Path, wide_umask: None) -> None:
    store = Store(tmp_path / "data" / "store")
    try:
        maintenance.backup(store, tmp_path / "backups" / "one")
    finally:
        store.close()
    archives = private_dir(tmp_path / "data" / "archive")
    message = StoredMessage(1, 1, 1, 1_700_000_000_000, "alice", b"c" * 16, 1, b"hello", ())
    maintenance.write_archive(archives, [(message_key(1, 1), encode_message(message), message.timestamp_ms)])
    assert not_private(tmp_path / "data") == {}
    assert not_private(tmp_path / "backups" / "one") == {}


# --- every kefu process ---------------------------------------------------------------------------------------

_UMASK_AFTER_MAIN = """
import importlib, os, sys
try:
    importlib.import_module(sys.argv[1]).main(sys.argv[2:])
finally:
    print(f"{os.umask(0):04o}")
"""
"""Run a kefu entry point's main with the given arguments, then print the umask it left."""


@pytest.mark.parametrize(
    "command",
    [
        ["kefu.server.cli", "check-config", "--config", "missing.toml"],
        ["kefu.server.runtime.worker", "--control-fd", "0", "core", "--", "--config", "missing.toml"],
    ],
    ids=["kefu", "worker"],
)
def test_every_kefu_process_sets_a_private_umask_first(tmp_path: Path, wide_umask: None, command: list[str]) -> None:
    """Layer 1 alone: what kefu creates without an explicit mode (a library's files) is private only through it.
    Both commands stop at the missing configuration file, after the umask and before creating anything."""
    done = subprocess.run([sys.executable, "-c", _UMASK_AFTER_MAIN, *command], cwd=tmp_path,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)  # fmt: skip
    assert done.stdout.split()[-1:] == ["0077"], (done.stdout, done.stderr[-2000:])
    assert list(tmp_path.iterdir()) == []


# --- a real server -------------------------------------------------------------------------------------------


async def _send_one(server: ServerProcess) -> None:
    peer = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins)
    try:
        peer.send(4242, b"a message at rest", to=("bob",))
        assert (await peer.next(frames.SendAck)).status == 0
    finally:
        peer.close()
        await asyncio.sleep(0.01)


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_a_server_started_under_umask_022_keeps_every_file_private(
    tmp_path: Path, wide_umask: None, workers: int
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)  # as an installer or an older kefu left it
    server = ServerProcess(data_dir, env={"KEFU_SERVER_WORKERS": str(workers)})
    server.secrets.update(add_apps(data_dir, ("alice", "bob")))
    # before the server narrows anything: what `kefu app add` made is private already (kefu's umask and the modes
    # it asks for), only the directory made above is wide
    assert not_private(data_dir) == {".": "0755"}
    server.start()
    try:
        asyncio.run(_send_one(server))
        backup = tmp_path / "backups" / "b1"
        made = kefu("backup", str(backup), "--data-dir", str(data_dir))
        assert made.returncode == 0, made.stderr
        assert not_private(data_dir) == {}, "while serving"
        assert not_private(tmp_path / "backups") == {}
        assert {"data.mdb"} <= set(modes(backup)), modes(backup)
    finally:
        assert server.stop() == 0
    assert not_private(data_dir) == {}, "after the drain"
    seen = modes(data_dir)
    assert {"store/data.mdb", "store/lock.mdb", "keys", "ticket-claims/data.mdb", "kefu.lock"} <= set(seen), seen
    assert any(name.startswith("store/log/") and name.endswith(".wal") for name in seen), seen
    # at the start, only what the test widened itself: nothing `kefu app add` made had to be narrowed
    log_lines = server.log_tail(100_000).splitlines()
    narrowed = [line.split("files.mode_narrowed ", 1)[1] for line in log_lines if "files.mode_narrowed " in line]
    assert narrowed == [f"path={data_dir} mode=0755 now=0700"]


# --- kefu check-config ---------------------------------------------------------------------------------------------


def test_check_config_warns_about_a_wide_data_dir_and_a_writable_config_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "keys").mkdir(parents=True)
    os.chmod(data_dir, 0o755)
    os.chmod(data_dir / "keys", 0o700)
    (data_dir / "keys" / "sm2-1.key").write_bytes(b"k" * 32)
    os.chmod(data_dir / "keys" / "sm2-1.key", 0o644)
    config = tmp_path / "kefu.toml"
    config.write_text("[server]\nport = 0\n")
    os.chmod(config, 0o666)

    result = kefu("check-config", "--config", str(config), "--data-dir", str(data_dir))
    assert result.returncode == 0, "a warning, not a refusal: kefu serve narrows these itself"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("kefu: warning:")]
    assert f"kefu: warning: {data_dir}: directory mode 0755, wanted 0700 (kefu serve narrows it at start)" in warnings
    assert any(f"{data_dir / 'keys' / 'sm2-1.key'}: file mode 0644, wanted 0600" in w for w in warnings)
    assert any(f"{config}: file mode 0666, wanted 0644" in w for w in warnings)
    assert len(warnings) == 3, warnings
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o755, "check-config changes nothing"


def test_check_config_is_quiet_about_a_private_data_dir(tmp_path: Path) -> None:
    data_dir = private_dir(tmp_path / "data")
    result = kefu("check-config", "--data-dir", str(data_dir))
    assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
