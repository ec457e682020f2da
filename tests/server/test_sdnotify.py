"""kefu.server.runtime.sdnotify: the notify address, the watchdog settings, the notifier loop, sd_listen_fds."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.server.runtime import sdnotify
from kefu.server.runtime.sdnotify import ActivationError, Notifier, listen_fds, notify_address


def test_notify_address() -> None:
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("@abstract/name") == "\0abstract/name"
    assert notify_address("") is None
    assert notify_address("vsock:2:1234") is None


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000"}, 15.0),
        ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "0"}, None),
        ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000"}, None),  # nobody to ping
    ],
)
def test_watchdog_interval_is_half_the_timeout_when_meant_for_us(env: dict[str, str], interval: float | None) -> None:
    assert Notifier.from_environment(env, pid=4242).watchdog_interval_s == interval


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket as systemd binds it: a path, or a name in the abstract namespace ("@...")."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if request.param == "abstract":
        name = f"kefu-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        address = "@" + name
    else:
        path = Path("/tmp") / f"kefu-{uuid.uuid4().hex[:12]}.sock"
        sock.bind(str(path))
        address = str(path)
    sock.settimeout(2)
    yield address, sock
    sock.close()
    if not address.startswith("@"):
        Path(address).unlink()


def test_notify_sends_one_datagram(receiver: tuple[str, socket.socket]) -> None:
    address, sock = receiver
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": address})
    notifier.ready("ok: 0 connections")
    assert sock.recv(4096) == b"READY=1\nSTATUS=ok: 0 connections"
    notifier.stopping("draining: 3 connections")
    assert sock.recv(4096) == b"STOPPING=1\nSTATUS=draining: 3 connections"
    notifier.close()


def test_without_a_manager_nothing_is_sent() -> None:
    notifier = Notifier.from_environment({})
    assert not notifier.enabled and not notifier.notify("READY=1")
    asyncio.run(notifier.run(lambda: "x"))  # returns at once


def test_a_vanished_manager_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(str(tmp_path / "gone"))
    assert notifier.notify("WATCHDOG=1") is False
    assert notifier.notify("WATCHDOG=1") is False
    assert [r.msg for r in caplog.records].count("systemd.notify_failed") == 1, "once per run of failures"
    notifier.close()


@pytest.mark.parametrize("receiver", ["path"], indirect=True)  # the address kinds: test_notify_sends_one_datagram
def test_run_pings_and_reports_status_changes(receiver: tuple[str, socket.socket]) -> None:
    address, sock = receiver
    notifier = Notifier(notify_address(address), watchdog_s=0.1)
    status = ["ok: 0 connections"]
    received: list[str] = []
    reader = threading.Thread(target=lambda: _drain(sock, received), daemon=True)
    reader.start()

    async def main() -> None:
        notifier.ready(status[0])
        task = asyncio.ensure_future(notifier.run(lambda: status[0]))
        await asyncio.sleep(0.3)
        status[0] = "ok: 5 connections"
        await asyncio.sleep(sdnotify.STATUS_INTERVAL_S + 0.2)
        task.cancel()

    asyncio.run(main())
    notifier.close()
    reader.join(5)
    assert received[:2] == ["READY=1", "STATUS=ok: 0 connections"]
    assert received.count("WATCHDOG=1") >= 10
    assert received.count("STATUS=ok: 5 connections") == 1, "a status is sent when it changes, once"
    assert received.count("STATUS=ok: 0 connections") == 1


def _drain(sock: socket.socket, into: list[str]) -> None:
    sock.settimeout(0.5)
    while True:
        try:
            into += sock.recv(4096).decode().split("\n")
        except TimeoutError:
            return


def test_listen_fds_ignores_sockets_meant_for_another_process_and_unsets_the_variables() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "kefu", "OTHER": "x"}
    assert listen_fds(env, pid=4242) == []
    assert env == {"OTHER": "x"}
    assert listen_fds({}, pid=4242) == []


def test_listen_fds_refuses_malformed_variables() -> None:
    with pytest.raises(ActivationError, match="malformed"):
        listen_fds({"LISTEN_PID": "4242", "LISTEN_FDS": "many"}, pid=4242)


CHILD = """\
import os, socket, sys, json
from kefu.server.runtime import sdnotify
fds = [int(fd) for fd in sys.argv[1].split(",")]
for i, fd in enumerate(fds):
    os.dup2(fd, 3 + i)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)), LISTEN_FDNAMES=sys.argv[2])
try:
    sock = sdnotify.listen_socket()
except sdnotify.ActivationError as exc:
    print(json.dumps({"error": str(exc)}))
    raise SystemExit(0)
fd = sock.fileno()
print(json.dumps({"port": sock.getsockname()[1], "blocking": sock.getblocking(), "fd": fd,
                  "cloexec": not os.get_inheritable(fd), "env": [k for k in os.environ if k.startswith("LISTEN_")]}))
"""


def adopt(*socks: socket.socket, names: str = "kefu") -> dict[str, object]:
    """Pass `socks` as fds 3, 4, ... to a child that calls listen_socket(); what it found, as JSON."""
    fds = [s.fileno() for s in socks]
    out = subprocess.run([sys.executable, "-c", CHILD, ",".join(map(str, fds)), names], pass_fds=fds,
                         capture_output=True, text=True, timeout=30, check=True)  # fmt: skip
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_listen_socket_adopts_fd_3_as_systemd_passes_it() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        got = adopt(listener)
        assert got == {"port": listener.getsockname()[1], "blocking": False, "fd": 3, "cloexec": True, "env": []}


def test_listen_socket_refuses_what_it_cannot_serve() -> None:
    with socket.socket() as unbound:
        assert "not listening" in str(adopt(unbound)["error"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        assert "not TCP" in str(adopt(udp)["error"])


def test_of_several_sockets_the_one_named_kefu_is_served() -> None:
    with socket.create_server(("127.0.0.1", 0)) as other, socket.create_server(("127.0.0.1", 0)) as ours:
        got = adopt(other, ours, names="metrics:kefu")
        assert got["port"] == ours.getsockname()[1] and got["fd"] == 4
        assert "name the client one FileDescriptorName=kefu" in str(adopt(other, ours, names="a:b")["error"])


def test_stall_hook_is_inert_without_its_variable() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert sdnotify.install_debug_stall(loop, {}) is None
        assert sdnotify.install_debug_stall(loop, {sdnotify.DEBUG_STALL_ENV: "nonsense"}) is None
        assert sdnotify.install_debug_stall(loop, {sdnotify.DEBUG_STALL_ENV: "-1"}) is None
    finally:
        loop.close()
    assert os.environ.get(sdnotify.DEBUG_STALL_ENV) is None
