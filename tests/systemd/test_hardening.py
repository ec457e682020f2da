"""The real server under kefu.service's sandbox, as far as a container allows without systemd as pid 1.

MemoryDenyWriteExecute=yes: the server runs under the kernel's own write-xor-execute lock (prctl PR_SET_MDWE,
Linux 6.3+; inherited across exec), serves both suites and drains. SystemCallFilter=: the server runs under
strace, and every system call it makes must be in the unit's allow list as `systemd-analyze syscall-filter`
expands it; no mprotect/mmap may ask for executable memory the way systemd's seccomp version of
MemoryDenyWriteExecute forbids.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kefu.protocol import frames
from kefu.protocol.crypto import Suite
from tests.integration.peer import Peer

from .conftest import Served, with_apps
from .test_units import SERVICE

MDWE = """\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    raise SystemExit(f"PR_SET_MDWE: errno {ctypes.get_errno()}")
os.execv(sys.argv[1], sys.argv[1:])
"""
"""Lock the process into write-xor-execute, then exec the server (the lock survives exec)."""


def mdwe_supported() -> bool:
    probe = subprocess.run([sys.executable, "-c", MDWE, sys.executable, "-c", "pass"], capture_output=True,
                           timeout=30, check=False)  # fmt: skip
    return probe.returncode == 0


async def exercise(server: Served) -> None:
    """Handshakes in both suites, a message each way, a delivery."""
    alice = await Peer.connect(server.port, "alice", server.secrets["alice"], server.pins, suite=Suite.NATIONAL)
    bob = await Peer.connect(server.port, "bob", server.secrets["bob"], server.pins, suite=Suite.INTERNATIONAL)
    alice.send(1, "您好".encode(), to=("bob",))
    assert (await alice.next(frames.SendAck)).status == 0
    assert (await bob.next(frames.Deliver)).body == "您好".encode()
    bob.send(1, b"hello")
    assert (await bob.next(frames.SendAck)).status == 0


class Wrapped(Served):
    """A server started through a wrapper command (which must exec, keeping the pid, or be signalled itself)."""

    def __init__(self, data_dir: Path, wrapper: list[str]) -> None:
        super().__init__(data_dir)
        self.wrapper = wrapper

    def command(self) -> list[str]:
        return [*self.wrapper, *super().command()]


@pytest.mark.asyncio
async def test_the_server_runs_with_write_xor_execute_memory(tmp_path: Path, served: list[Served]) -> None:
    if not mdwe_supported():
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    server = with_apps(Wrapped(tmp_path / "data", [sys.executable, "-c", MDWE]), "alice", "bob")
    served.append(server)
    server.start()
    assert server.proc is not None
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    assert re.search(r"^Name:\s+python", status, re.M), "the wrapper exec'd the server in place"
    await exercise(server)
    assert server.stop() == 0


def allowed_syscalls() -> set[str]:
    """@system-service minus @privileged and @resources, expanded by this host's systemd, plus the unit's single
    calls allowed back (setpriority)."""
    text = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, timeout=30,
                          check=True).stdout  # fmt: skip
    groups: dict[str, set[str]] = {}
    current: set[str] = set()
    for line in text.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), set())
        elif line.strip() and not line.strip().startswith("#"):
            current.add(line.strip())

    def expand(group: str) -> set[str]:
        return set().union(*((expand(i) if i.startswith("@") else {i}) for i in groups.get(group, ())))

    extra = {call for line in SERVICE["Service"]["SystemCallFilter"] for call in line.split() if call.isidentifier()}
    return (expand("@system-service") - expand("@privileged") - expand("@resources")) | extra


@pytest.mark.asyncio
async def test_system_calls_stay_inside_the_units_filter(tmp_path: Path, served: list[Served]) -> None:
    strace, analyze = shutil.which("strace"), shutil.which("systemd-analyze")
    if strace is None or analyze is None:
        pytest.skip("needs strace and systemd-analyze (apt-get install strace systemd)")
    trace = tmp_path / "strace.log"
    probe = subprocess.run([strace, "-f", "-o", "/dev/null", "true"], capture_output=True, timeout=30, check=False)
    if probe.returncode != 0:
        pytest.skip(f"strace cannot trace here: {probe.stderr.decode()[-200:]}")
    server = with_apps(Wrapped(tmp_path / "data", [strace, "-f", "-qq", "-o", str(trace)]), "alice", "bob")
    served.append(server)
    server.start()
    await exercise(server)
    server.send(signal.SIGHUP)
    time.sleep(0.3)
    assert server.proc is not None
    tracee = int(Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read_text().split()[0])
    os.kill(tracee, signal.SIGTERM)  # the server itself: strace would not pass the signal on
    assert server.proc.wait(20) == 0
    calls = trace.read_text().splitlines()
    used = {m.group(1) for line in calls if (m := re.match(r"\d+\s+(\w+)\(", line))}
    assert used, "strace recorded nothing"
    assert used - allowed_syscalls() == set(), "calls the unit's SystemCallFilter= would refuse"
    exec_gain = [ln for ln in calls if re.match(r"\d+\s+(mprotect|pkey_mprotect)\(.*PROT_EXEC", ln)]
    write_exec = [ln for ln in calls if re.match(r"\d+\s+mmap\(.*PROT_WRITE\|PROT_EXEC", ln)]
    assert exec_gain + write_exec == [], "MemoryDenyWriteExecute=yes would refuse these"
