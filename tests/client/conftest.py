"""Fixtures of the client tests: an event-loop runner (asyncio and, when installed, uvloop) and the real
`kefu serve` as a subprocess on 127.0.0.1.

What the `kefu_server` fixture expects of the server (to be kept in line with server/cli.py):

- ``python -m kefu.server.cli app add NAME --data-dir D`` registers an app before the server starts and
  prints its secret, base64url, as the last line of stdout (an optional ``secret:`` prefix is accepted);
- ``python -m kefu.server.cli serve --data-dir D --host 127.0.0.1 --port P --metrics-port 0`` prints a
  line ``kefu: listening on 127.0.0.1:P`` once it accepts connections (the port is read from that line);
- the pins to trust are in D/keys/pins.txt (one per line) or, failing that, printed on stdout as lines of
  the form ``  sm2:<64 hex>`` / ``  ed25519:<64 hex>`` when the keys are generated at the first start;
- SIGTERM makes it send GOAWAY, drain and exit; restarting on the same data dir and port keeps the
  messages, the apps and the keys.

If the server package is missing, an app cannot be added, or the first start does not print the listening
line in time, the tests using the fixture are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kefu.client import Client, Suite
from kefu.server.identity.bulk import bulk_app_id, derive_secret
from kefu.server.runtime.launch import ServeProcess

T = TypeVar("T")

SERVER_STOP_S = 20.0
"""SIGTERM drains for up to the server's drain_timeout_s (10 s by default) before exiting."""
CLI_TIMEOUT_S = 30.0
TEST_TIMEOUT_S = 60.0
"""Upper bound of any one test coroutine."""

APPS = ("visitor", "agent", "agent2", "script")
"""Apps registered in every fixture server."""

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is optional for the client
    uvloop = None  # type: ignore[assignment]

LOOPS = ["asyncio"] + (["uvloop"] if uvloop is not None else [])

Runner = Callable[..., Any]


@pytest.fixture(params=LOOPS)
def loop_factory(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    """The default asyncio loop and uvloop (when installed)."""
    return uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop  # type: ignore[no-any-return]


@pytest.fixture
def run(loop_factory: Callable[[], asyncio.AbstractEventLoop]) -> Callable[..., Any]:
    """run(coro, timeout=TEST_TIMEOUT_S): run a coroutine to completion on a fresh loop, bounded in time."""

    def runner(coro: Coroutine[Any, Any, T], timeout: float = TEST_TIMEOUT_S) -> T:
        async def bounded() -> T:
            async with asyncio.timeout(timeout):
                return await coro

        with asyncio.Runner(loop_factory=loop_factory) as r:
            return r.run(bounded())

    return runner


# --- the real server --------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_PIN = re.compile(r"^\s*((?:sm2|ed25519):[0-9a-f]{64})\s*$")


def decode_secret(text: str) -> bytes:
    """An app secret as printed by `app add` (base64url, padding optional)."""
    text = text.strip().removeprefix("secret:").strip()
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class KefuServer(ServeProcess):
    """`kefu serve` in a subprocess (the one helper, `kefu.server.runtime.launch`), with its app secrets."""

    def __init__(self, data_dir: Path, port: int) -> None:
        super().__init__(data_dir, port=port, args=["--host", "127.0.0.1"])
        self.host = "127.0.0.1"
        self.secrets: dict[str, bytes] = {}

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run a `kefu` subcommand against this data dir."""
        cmd = [sys.executable, "-m", "kefu.server.cli", *args, "--data-dir", str(self.data_dir)]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)

    def add_app(self, name: str, role: str = "app") -> bytes:
        """Register an app and remember its secret (a running server finds it at once)."""
        done = self.cli("app", "add", name, "--role", role)
        lines = [line for line in done.stdout.splitlines() if line.strip()]
        if done.returncode != 0 or not lines:
            raise RuntimeError(f"app add {name} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        self.secrets[name] = decode_secret(lines[-1])
        return self.secrets[name]

    @property
    def pins(self) -> list[str]:
        """D/keys/pins.txt if the server wrote it, else the pins it printed."""
        path = self.data_dir / "keys" / "pins.txt"
        if path.is_file():
            return [line.strip() for line in path.read_text().splitlines() if line.strip()]
        return list(dict.fromkeys(pin.group(1) for line in self.stdout if (pin := _PIN.match(line))))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = SERVER_STOP_S) -> int:
        """Signal the server (by its PID) and wait for it to exit; kill it if it does not in time."""
        if self.proc is None:
            return 0
        try:
            return super().stop(sig, timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.wait()

    def client(self, app_id: str, **options: Any) -> Client:
        """A Client of this server for `app_id`."""
        options.setdefault("connect_timeout", 5)
        return Client(
            self.host, self.port, app_id=app_id, app_secret=self.secrets[app_id], server_pins=self.pins, **options
        )

    def url(self, app_id: str) -> str:
        """The kefu:// URL of this server for `app_id`, with the secret as `app add` prints it and every pin."""
        secret = base64.urlsafe_b64encode(self.secrets[app_id]).rstrip(b"=").decode()
        pins = "&".join(f"pin={pin}" for pin in self.pins)
        return f"kefu://{app_id}:{secret}@{self.host}:{self.port}?{pins}"

    def fresh_apps(self, count: int, role: str = "app") -> list[str]:
        """`count` apps registered now under new names (one `app add-bulk`), so that what other tests on the same
        server did cannot reach them; their secrets are in `secrets` like those of `add_app`."""
        prefix, seed = f"t{uuid.uuid4().hex[:10]}-", uuid.uuid4().hex
        done = self.cli("app", "add-bulk", prefix, str(count), "--secret-seed", seed, "--role", role)
        if done.returncode != 0:
            raise RuntimeError(f"app add-bulk failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        names = [bulk_app_id(prefix, index) for index in range(count)]
        self.secrets.update((name, derive_secret(seed.encode(), name)) for name in names)
        return names


@pytest.fixture
def kefu_server(tmp_path: Path) -> Iterator[KefuServer]:
    """A fresh `kefu serve` with the apps of APPS registered; stopped (by PID) after the test."""
    yield from _serve(tmp_path)


@pytest.fixture(scope="module")
def shared_kefu_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KefuServer]:
    """One `kefu serve` for the tests of a module that neither stop it nor rely on the apps of APPS: each takes apps of
    its own (`KefuServer.fresh_apps`), so a start of several seconds is paid once."""
    yield from _serve(tmp_path_factory.mktemp("shared"), apps=())


def _serve(tmp_path: Path, apps: tuple[str, ...] = APPS) -> Iterator[KefuServer]:
    try:
        import kefu.server.cli  # noqa: F401, PLC0415
    except ImportError as exc:
        pytest.skip(f"kefu.server.cli not importable: {exc}")
    server = KefuServer(tmp_path / "data", free_port())
    try:
        for name in apps:
            server.add_app(name)
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        server.stop()
        pytest.skip(f"kefu serve cannot start: {exc}")
    if not server.pins:
        server.stop()
        pytest.skip("kefu serve started but no pins were found (keys/pins.txt or printed)")
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop()


__all__ = ["APPS", "LOOPS", "KefuServer", "Suite", "free_port"]
