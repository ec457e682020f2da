"""The unit files, the sysctl drop-in and install.sh: parsed and checked here, verified by systemd's own tools."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kefu.server.config import ServerSection
from kefu.server.runtime.sdnotify import ACTIVATION_FD_NAME
from kefu.server.runtime.single import LISTEN_BACKLOG

from .conftest import UNITS

Unit = dict[str, dict[str, list[str]]]


def parse_unit(path: Path) -> Unit:
    """section -> key -> every value assigned, in order (systemd keys may repeat; "" resets a list)."""
    unit: Unit = {}
    section: dict[str, list[str]] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if m := re.fullmatch(r"\[(\w+)\]", line):
            section = unit.setdefault(m.group(1), {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not key=value: {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def one(unit: Unit, section: str, key: str) -> str:
    values = unit[section].get(key)
    assert values, f"[{section}] {key} is missing"
    return values[-1]


def seconds(value: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(ms|s|min)?", value)
    assert m, value
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "min": 60, None: 1}[m.group(2)]


SERVICE = parse_unit(UNITS / "kefu.service")
SOCKET = parse_unit(UNITS / "kefu.socket")

REQUIRED_SERVICE = {
    "Type": "notify",
    "NotifyAccess": "main",
    "ExecStart": "/opt/kefu/venv/bin/kefu serve --config /etc/kefu/kefu.toml --data-dir /var/lib/kefu",
    "ExecReload": "/bin/kill -HUP $MAINPID",
    "KillSignal": "SIGTERM",
    "Restart": "on-failure",
    "LimitNOFILE": "1048576",
    "User": "kefu",
    "Group": "kefu",
    "StateDirectory": "kefu",
    "ConfigurationDirectory": "kefu",
    "UMask": "0077",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "SystemCallArchitectures": "native",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
}


@pytest.mark.parametrize(("key", "value"), REQUIRED_SERVICE.items())
def test_service_directive(key: str, value: str) -> None:
    assert one(SERVICE, "Service", key) == value


def test_service_needs_its_socket_and_is_enabled_at_boot() -> None:
    assert one(SERVICE, "Unit", "Requires") == "kefu.socket"
    assert "kefu.socket" in one(SERVICE, "Unit", "After").split()
    assert one(SERVICE, "Install", "WantedBy") == "multi-user.target"


def test_system_calls_are_the_service_set_without_privileged_ones() -> None:
    assert SERVICE["Service"]["SystemCallFilter"] == ["@system-service", "~@privileged @resources", "setpriority"]
    assert one(SERVICE, "Service", "LimitNICE") == "-5", "what [delivery] commit_thread_nice's default needs"
    assert one(SERVICE, "Service", "SystemCallErrorNumber") == "EPERM"


def test_stop_timeout_leaves_room_for_the_drain_and_the_watchdog_for_a_busy_loop() -> None:
    drain = ServerSection().drain_timeout_s
    assert seconds(one(SERVICE, "Service", "TimeoutStopSec")) >= drain + 10
    assert seconds(one(SERVICE, "Service", "WatchdogSec")) >= 10  # pings every 15 s; a GC pause is not a stall


def test_socket_unit() -> None:
    assert SOCKET["Socket"]["ListenStream"] == ["127.0.0.1:7420"]
    assert one(SOCKET, "Socket", "Accept") == "no"
    assert one(SOCKET, "Socket", "FileDescriptorName") == ACTIVATION_FD_NAME
    assert one(SOCKET, "Socket", "Service") == "kefu.service"
    assert one(SOCKET, "Install", "WantedBy") == "sockets.target"


def sysctl() -> dict[str, str]:
    lines = (UNITS / "sysctl.d" / "90-kefu.conf").read_text().splitlines()
    return {k.strip(): v.strip() for k, _, v in (ln.partition("=") for ln in lines if ln and ln[0] not in "#;")}


def test_backlogs_agree() -> None:
    """kefu's listen() backlog, the socket unit's and the kernel's cap are the same number."""
    assert int(one(SOCKET, "Socket", "Backlog")) == LISTEN_BACKLOG == int(sysctl()["net.core.somaxconn"])


def test_nofile_limit_fits_under_nr_open() -> None:
    assert int(sysctl()["fs.nr_open"]) >= int(one(SERVICE, "Service", "LimitNOFILE"))


def test_every_sysctl_setting_is_explained_and_exists() -> None:
    lines = (UNITS / "sysctl.d" / "90-kefu.conf").read_text().splitlines()
    for i, line in enumerate(lines):
        if line and not line.startswith("#"):
            assert lines[i - 1].startswith("#") or "=" in lines[i - 1], f"no comment above {line!r}"
    expected = {"net.core.somaxconn", "net.ipv4.tcp_max_syn_backlog", "net.ipv4.tcp_tw_reuse", "fs.file-max",
                "net.ipv4.ip_local_port_range", "fs.nr_open", "net.core.netdev_max_backlog", "net.ipv4.tcp_rmem",
                "net.ipv4.tcp_wmem", "net.ipv4.tcp_fin_timeout"}  # fmt: skip
    assert expected <= set(sysctl())
    if not Path("/proc/sys/net/core/somaxconn").exists():
        pytest.skip("no /proc/sys here to check the names against")
    missing = [k for k in sysctl() if not Path("/proc/sys", *k.split(".")).exists()]
    assert missing == [], f"no such kernel setting: {missing}"


def fake_root(tmp_path: Path) -> Path:
    """A root for `systemd-analyze verify --root`: the host's system units, ours, and the programs they run."""
    root = tmp_path / "root"
    host_units = next((p for p in (Path("/usr/lib/systemd/system"), Path("/lib/systemd/system")) if p.is_dir()), None)
    if host_units is None:
        pytest.skip("no system units on this host to verify against")
    shutil.copytree(host_units, root / "usr/lib/systemd/system", symlinks=True)
    for name in ("kefu.service", "kefu.socket"):
        (root / "etc/systemd/system").mkdir(parents=True, exist_ok=True)
        shutil.copy(UNITS / name, root / "etc/systemd/system" / name)
    for program in ("opt/kefu/venv/bin/kefu", "bin/kill"):
        (root / program).parent.mkdir(parents=True, exist_ok=True)
        (root / program).write_text("#!/bin/sh\n")
        (root / program).chmod(0o755)
    return root


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd); the parsed checks above still ran")
    root = fake_root(tmp_path)
    result = subprocess.run([analyze, "verify", f"--root={root}", "kefu.socket", "kefu.service"],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    # verify exits 0 on unknown keys and bad values too: every complaint is printed, so none may be.
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stdout + result.stderr


def test_systemd_analyze_verify_catches_a_bad_unit(tmp_path: Path) -> None:
    """The check above would see a mistake: a misspelt directive makes verify speak."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    root = fake_root(tmp_path)
    unit = root / "etc/systemd/system/kefu.service"
    unit.write_text(unit.read_text().replace("ProtectHome=yes", "ProtectHomme=yes"))
    result = subprocess.run([analyze, "verify", f"--root={root}", "kefu.service"],
                            capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert "ProtectHomme" in result.stdout + result.stderr
