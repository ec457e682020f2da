"""The real server as a subprocess on loopback, with real LMDB in a temporary directory."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from kefu.server.runtime.launch import ServeProcess

from .peer import Peer

APPS = ("alice", "bob", "carol", "dave")


def add_app(data_dir: Path, name: str) -> bytes:
    """`kefu app add NAME`; returns the secret it prints once."""
    out = subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", "app", "add", name, "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    secret = [line for line in out.stdout.splitlines() if line.strip()][-1].strip()
    return _decode_secret(secret)


_ADD_APPS = """
import sys
from kefu.server.cli import main
for name in sys.argv[2:]:
    if main(["app", "add", name, "--data-dir", sys.argv[1]]):
        sys.exit(1)
"""
"""`kefu app add NAME` for each name, in one interpreter: the same command, without paying Python's and the CLI's
start-up once per app (most of a server fixture's set-up time when each app had its own process)."""


def add_apps(data_dir: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    """`kefu app add` for every name of `names` (one process); their secrets by name."""
    if not names:
        return {}
    out = subprocess.run(
        [sys.executable, "-c", _ADD_APPS, str(data_dir), *names], capture_output=True, text=True, check=True, timeout=60
    )
    secrets = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    assert len(secrets) == len(names), out.stdout
    return {name: _decode_secret(secret) for name, secret in zip(names, secrets, strict=True)}


def _decode_secret(secret: str) -> bytes:
    return base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))


class ServerProcess(ServeProcess):
    """A `kefu serve` subprocess (the one helper, `kefu.server.runtime.launch`); start/stop/kill/restart keep the same
    data directory and port. `secrets`: the apps' secrets the test registered."""

    def __init__(self, data_dir: Path, extra: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        super().__init__(data_dir, args=extra or [], env=env)
        self.secrets: dict[str, bytes] = {}

    @property
    def log(self) -> Path:
        """The server's log (its standard error)."""
        return self.log_path

    @property
    def pins(self) -> frozenset[str]:
        """The server key pins it wrote."""
        return frozenset((self.data_dir / "keys" / "pins.txt").read_text().split())


LOAD_LIMITS = {
    "KEFU_LIMITS_CONN_FRAMES_PER_S": "100000",
    "KEFU_LIMITS_CONN_FRAMES_BURST": "100000",
    "KEFU_LIMITS_CONN_BYTES_PER_S": "100000000",
    "KEFU_LIMITS_CONN_BYTES_BURST": "100000000",
}
"""Rate limits out of the way, for tests that push thousands of frames from one connection."""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A fresh server with apps alice, bob, carol and dave."""
    yield from running_server(tmp_path, {})


@pytest.fixture
def loaded_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Like `server`, with the per-connection rate limits lifted."""
    yield from running_server(tmp_path, LOAD_LIMITS)


async def kefu_command(server: ServerProcess, *args: str) -> tuple[int, str, str, float]:
    """Run a `kefu` command on the server's data directory: (status, stdout, stderr, seconds it took)."""
    t0 = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kefu.server.cli", *args, "--data-dir", str(server.data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode(), time.monotonic() - t0


async def app_peer(server: ServerProcess, name: str) -> Peer:
    """A Peer logged in to `server` as its registered app `name`."""
    return await Peer.connect(server.port, name, server.secrets[name], server.pins)


def served_pair(data_dir: Path, env: dict[str, str]) -> ServerProcess:
    """A server (not started) on `data_dir` with the apps alice and bob registered."""
    server = ServerProcess(data_dir, env=env)
    server.secrets.update(add_apps(data_dir, ("alice", "bob")))
    return server


def running_server(tmp_path: Path, env: dict[str, str], apps: tuple[str, ...] = APPS) -> Iterator[ServerProcess]:
    """A started server on `tmp_path`/data with `apps` registered (a fixture's body: `yield from`); killed after."""
    data_dir = tmp_path / "data"
    proc = ServerProcess(data_dir, env=env)
    proc.secrets.update(add_apps(data_dir, apps))
    proc.start()
    try:
        yield proc
    finally:
        proc.kill()


@pytest_asyncio.fixture(autouse=True)
async def close_peers() -> AsyncIterator[None]:
    """Abort every test peer's socket after the test and let the loop finish closing them."""
    yield
    for peer in Peer.open_peers:
        peer.close()
    Peer.open_peers.clear()
    await asyncio.sleep(0.01)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Integration tests need the server extra; say so rather than fail obscurely."""
    try:
        import lmdb  # noqa: F401, PLC0415
        import uvloop  # noqa: F401, PLC0415
    except ImportError:
        skip = pytest.mark.skip(reason="needs the server extra: pip install -e '.[server,test]'")
        for item in items:
            if "integration" in str(item.fspath):
                item.add_marker(skip)


__all__ = ["APPS", "ServerProcess", "add_app", "add_apps", "os"]
