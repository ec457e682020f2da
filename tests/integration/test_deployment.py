"""A real `kefu serve` on a damaged data directory refuses to start, says why, and creates nothing (issue #14 points 2
and 3): a store truncated to 0 bytes, a store directory removed, a store cut to half (no SIGBUS)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import APPS, ServerProcess, add_apps

START_TIMEOUT_S = 60


def damaged_copy(server: ServerProcess, tmp_path: Path, damage: str) -> Path:
    """A copy of the stopped server's data directory, damaged."""
    copy = tmp_path / damage.replace(" ", "-")
    shutil.copytree(server.data_dir, copy)
    data = copy / "store" / "data.mdb"
    if damage == "truncated to 0 bytes":
        data.write_bytes(b"")
    elif damage == "store dir removed":
        shutil.rmtree(copy / "store")
    elif damage == "cut to half":
        size = data.stat().st_size
        with data.open("r+b") as f:
            f.truncate(size // 2 // 4096 * 4096)
    return copy


def serve(data_dir: Path) -> subprocess.CompletedProcess[str]:
    command = ServerProcess(data_dir).command()
    return subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False)


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    """A data directory with four apps (more than a few pages) that a server started in and stopped cleanly: one
    start for every case, each of which damages a copy."""
    server = ServerProcess(tmp_path_factory.mktemp("deployed") / "data")
    add_apps(server.data_dir, APPS)
    server.start()
    try:
        assert server.stop() == 0
    finally:
        server.kill()
    return server


@pytest.mark.parametrize(
    ("damage", "says"),
    [
        ("truncated to 0 bytes", "is empty (0 bytes), but"),
        ("store dir removed", "is missing, but"),
        ("cut to half", "the file is cut short"),
    ],
)
def test_a_damaged_store_is_refused_at_start(stopped: ServerProcess, tmp_path: Path, damage: str, says: str) -> None:
    copy = damaged_copy(stopped, tmp_path, damage)
    data = copy / "store" / "data.mdb"
    size = data.stat().st_size if data.exists() else None
    result = serve(copy)
    assert result.returncode == 1, f"a clean refusal, not a crash (SIGBUS is -7): {result.returncode} {result.stderr}"
    assert says in result.stderr
    assert "kefu restore BACKUP" in result.stderr or "restore a backup" in result.stderr
    assert "listening" not in result.stdout and "secret" not in result.stdout, "no new development app"
    assert "Traceback" not in result.stderr
    assert not (copy / "keys" / "dev-app.secret").exists()
    assert (data.stat().st_size if data.exists() else None) == size, "the store was left as it was found"
