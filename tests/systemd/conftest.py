"""The real server as systemd would run it: a notify socket, the watchdog, an inherited listener, journald."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from kefu.server.runtime.launch import ServeProcess
from tests.integration.conftest import add_apps, close_peers  # noqa: F401 - close_peers: the same autouse fixture

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
START_TIMEOUT = 20.0
MAX_UNIX_PATH = 100  # sun_path holds 108 bytes; pytest's tmp_path can be longer


class NotifyListener:
    """An AF_UNIX datagram socket standing in for systemd's $NOTIFY_SOCKET; records (monotonic time, text)."""

    def __init__(self, path: str) -> None:
        self.address = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path if not path.startswith("@") else "\0" + path[1:])
        self.sock.settimeout(0.05)
        self.received: list[tuple[float, str]] = []
        self.on_ready: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            text = data.decode()
            self.on_message(text)
            self.received.append((time.monotonic(), text))

    def on_message(self, text: str) -> None:
        """Called on the reader thread with each datagram, before it is recorded (a subclass's hook)."""

    def lines(self, name: str) -> list[tuple[float, str]]:
        """(time, value) of every `name=value` assignment received."""
        return [(t, line.partition("=")[2]) for t, text in list(self.received) for line in text.split("\n")
                if line.startswith(name + "=")]  # fmt: skip

    def wait_for(self, name: str, value: str | None = None, timeout: float = 10.0, *, after: float = 0.0) -> float:
        """Time at which `name`(=`value`) arrived (at or after `after`); fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, v in self.lines(name):
                if t >= after and (value is None or re.fullmatch(value, v)):
                    return t
            time.sleep(0.01)
        raise AssertionError(f"no {name}={value or '*'} within {timeout} s; got {self.received}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifyListener]:
    """A notify socket bound in tmp_path (or a short temporary directory if tmp_path is too long for AF_UNIX)."""
    short = None
    path = tmp_path / "notify"
    if len(str(path)) > MAX_UNIX_PATH:
        short = Path(tempfile.mkdtemp(prefix="kefu-"))
        path = short / "notify"
    listener = NotifyListener(str(path))
    yield listener
    listener.close()
    if short is not None:
        shutil.rmtree(short, ignore_errors=True)


ACTIVATE = """\
import os, sys
fd, whose, *command = sys.argv[1:]
os.dup2(int(fd), 3)
os.environ.update(LISTEN_FDS="1", LISTEN_FDNAMES="kefu")
os.environ["LISTEN_PID"] = str(os.getpid() if whose == "self" else os.getppid())
os.execv(command[0], command)  # the same pid: LISTEN_PID names the server
"""
"""The part of systemd between fork and exec that socket activation needs (fd 3 is inheritable after dup2)."""


class Served(ServeProcess):
    """A `kefu serve` subprocess (the one helper, `kefu.server.runtime.launch`) as systemd runs it: with a notify
    socket (start waits for READY=1), optionally passed a listening socket."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        args: Sequence[str] = (),
        notify: NotifyListener | None = None,
        systemd: bool = True,
    ) -> None:
        super().__init__(data_dir, args=args)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("KEFU_", "LISTEN_", "NOTIFY_"))}
        self._own_notify: Path | None = None
        if systemd and notify is None:  # start() waits for READY=1: signal handlers are installed by then
            self._own_notify = Path(tempfile.mkdtemp(prefix="kefu-"))
            notify = NotifyListener(str(self._own_notify / "notify"))
        self.notify = notify
        if notify is not None:
            self.env["NOTIFY_SOCKET"] = notify.address
        self.env |= env or {}
        self.secrets: dict[str, bytes] = {}

    @property
    def log(self) -> Path:
        """The server's log (its standard error)."""
        return self.log_path

    def start(  # type: ignore[override]
        self, *, activate: socket.socket | None = None, listen_pid: str = "self"
    ) -> Served:
        """Start and wait for the metrics line (and READY=1 when there is a notify socket).

        `activate`: pass this socket as systemd does, on fd 3 with LISTEN_FDS=1, LISTEN_FDNAMES=kefu and
        LISTEN_PID set to the server's own pid ("self", as systemd does between fork and exec) or to its
        parent's ("parent": sockets meant for another process).
        """
        started = time.monotonic()
        prefix: list[str] = []
        fds: tuple[int, ...] = ()
        if activate is not None:
            fds = (activate.fileno(),)
            prefix = [sys.executable, "-c", ACTIVATE, str(fds[0]), listen_pid]
        super().start(prefix=prefix, pass_fds=fds, timeout=START_TIMEOUT)
        if self.notify is not None:
            assert self.notify.wait_for("READY", "1", after=started) >= started
        return self

    @property
    def pins(self) -> frozenset[str]:
        return frozenset((self.data_dir / "keys" / "pins.txt").read_text().split())

    def send(self, sig: int) -> None:
        """Signal the server by PID."""
        self.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the process by PID and wait; returns its exit status."""
        return super().stop(sig, timeout)

    def kill(self) -> None:
        """SIGKILL if still running (by PID); release everything the test started."""
        try:
            super().kill()
        finally:
            if self._own_notify is not None and self.notify is not None:
                self.notify.close()
                shutil.rmtree(self._own_notify, ignore_errors=True)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[list[Served]]:
    """Every Served a test starts is appended here and killed (by PID) at the end if still running."""
    started: list[Served] = []
    yield started
    for s in started:
        s.kill()


def with_apps(s: Served, *names: str) -> Served:
    """Register apps (before start, so that no development app is made) and keep their secrets."""
    s.secrets.update(add_apps(s.data_dir, names))
    return s


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that run the server need the server extra; say so rather than fail obscurely."""
    try:
        import lmdb  # noqa: F401, PLC0415
        import uvloop  # noqa: F401, PLC0415
    except ImportError:
        skip = pytest.mark.skip(reason="needs the server extra: pip install -e '.[server,test]'")
        for item in items:
            if "systemd" in str(item.fspath) and "served" in getattr(item, "fixturenames", ()):
                item.add_marker(skip)


__all__ = ["UNITS", "NotifyListener", "Served", "with_apps"]
