"""The real server as a subprocess on loopback, with real LMDB in a temporary directory."""

from __future__ import annotations

import asyncio
import base64
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from .peer import Peer

START_TIMEOUT = 20.0
APPS = ("alice", "bob", "carol", "dave")


def add_app(data_dir: Path, name: str) -> bytes:
    """`kefu app add NAME`; returns the secret it prints once."""
    out = subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", "app", "add", name, "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    secret = [line for line in out.stdout.splitlines() if line.strip()][-1].strip()
    return base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))


class ServerProcess:
    """A `kefu serve` subprocess; start/stop/kill/restart keep the same data directory and port."""

    def __init__(self, data_dir: Path, extra: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra = extra or []
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.metrics_port = 0
        self.secrets: dict[str, bytes] = {}
        self.log = data_dir.parent / f"{data_dir.name}.log"

    @property
    def pins(self) -> frozenset[str]:
        """The server key pins it wrote."""
        return frozenset((self.data_dir / "keys" / "pins.txt").read_text().split())

    def start(self) -> ServerProcess:
        """Start and wait for the listening line."""
        args = [sys.executable, "-m", "kefu.server.cli", "serve", "--data-dir", str(self.data_dir),
                "--port", str(self.port), "--metrics-port", str(self.metrics_port), *self.extra]  # fmt: skip
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=self.env)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            if m := re.search(r"listening on [\d.]+:(\d+)", line):
                self.port = int(m.group(1))
            if m := re.search(r"metrics on http://[\d.]+:(\d+)", line):
                self.metrics_port = int(m.group(1))
                return self
        raise RuntimeError("server did not start in time")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the process and wait for it (by PID)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit; returns its exit status."""
        assert self.proc is not None
        code = self.proc.wait(timeout=timeout)
        if self.proc.stdout:
            self.proc.stdout.close()
        return code

    def kill(self) -> None:
        """SIGKILL: no drain, no flush."""
        self.stop(signal.SIGKILL)


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
    yield from _server(tmp_path, {})


@pytest.fixture
def loaded_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """Like `server`, with the per-connection rate limits lifted."""
    yield from _server(tmp_path, LOAD_LIMITS)


def _server(tmp_path: Path, env: dict[str, str]) -> Iterator[ServerProcess]:
    data_dir = tmp_path / "data"
    proc = ServerProcess(data_dir, env=env)
    for name in APPS:
        proc.secrets[name] = add_app(data_dir, name)
    proc.start()
    try:
        yield proc
    finally:
        if proc.proc is not None and proc.proc.poll() is None:
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


__all__ = ["APPS", "ServerProcess", "add_app", "os"]
