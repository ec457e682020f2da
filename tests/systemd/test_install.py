"""systemd/install.sh: what its dry run plans on each OS family, with and without keys, flags and a wheelhouse; its
functions (sourced) on real files; shellcheck finds nothing. The offline install itself: test_offline_install.py."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from kefu.protocol.crypto import KeyType
from kefu.server.identity.keys import DEV_SECRET_FILE, add_key, load_keys

from ..debian import debian_tool
from .conftest import ROOT, UNITS

SCRIPT = UNITS / "install.sh"
WRITES = ("/etc/systemd/system/kefu.service", "/etc/sysctl.d/90-kefu.conf", "/etc/kefu", "/opt/kefu",
          "/usr/local/bin/kefu", "/var/lib/kefu")  # fmt: skip
HOST_KEYS = Path("/var/lib/kefu/keys")
OS_RELEASES = {
    "debian": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    "ubuntu": "ID=ubuntu\nID_LIKE=debian\n",
    "rhel": 'ID="rhel"\nID_LIKE="fedora"\nVERSION_ID="9.4"\n',
    "rocky": 'ID="rocky"\nID_LIKE="rhel centos fedora"\n',
    "almalinux": 'ID="almalinux"\nID_LIKE="rhel centos fedora"\n',
    "fedora": "ID=fedora\n",
    "amzn": 'ID="amzn"\nID_LIKE="centos rhel fedora"\n',
    "alpine": "ID=alpine\n",
    "arch": "ID=arch\n",
}
FAMILY = {"debian": "debian", "ubuntu": "debian", "rhel": "rhel", "rocky": "rhel", "almalinux": "rhel",
          "fedora": "rhel", "amzn": "rhel", "alpine": "other", "arch": "other"}  # fmt: skip


def install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """install.sh ARGS; with this interpreter for the venv unless `env` says otherwise (a search costs 0.3 s here)."""
    env = {**os.environ, "KEFU_PYTHON": sys.executable, **(env or {})}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False,
                          env=env)  # fmt: skip


def sourced(script: str) -> subprocess.CompletedProcess[str]:
    """Run `script` in bash after sourcing install.sh (which then only defines its functions)."""
    command = f"source {shlex.quote(str(SCRIPT))}\n{script}"
    env = {**os.environ, "KEFU_PYTHON": sys.executable}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False, env=env)


def plain(out: str) -> str:
    """The dry run's shell-quoted commands as a reader sees them."""
    return out.replace("\\ ", " ").replace("\\[", "[").replace("\\]", "]")


def host_has_keys() -> bool:
    try:
        return all(load_keys(HOST_KEYS.parent).values())
    except OSError:
        return False


def test_dry_run_prints_the_plan_and_changes_nothing() -> None:
    before = {path: Path(path).exists() for path in WRITES}
    result = install("--dry-run", "--sysctl", "--allow-development-keys", str(ROOT))
    assert result.returncode == 0, result.stderr
    out = plain(result.stdout)
    assert "dry run" in out
    planned = [
        "useradd --system",
        "-m venv /opt/kefu/venv",
        f"/opt/kefu/venv/bin/pip install --quiet --upgrade kefu[server] @ file://{ROOT}",
        "install -D -m 0644 -o root -g root " + str(UNITS / "kefu.service") + " /etc/systemd/system/kefu.service",
        str(UNITS / "kefu.socket") + " /etc/systemd/system/kefu.socket",
        str(UNITS / "sysctl.d/90-kefu.conf") + " /etc/sysctl.d/90-kefu.conf",
        "sysctl --quiet --system",
        "install -d -m 0750 -o root -g kefu /etc/kefu",
        "check-config --example",
        "chmod 0640 /etc/kefu/kefu.toml",
        "systemctl daemon-reload",
        "systemctl enable --now kefu.socket kefu.service",
    ]
    for step in planned:
        if step.startswith("useradd") and "system user kefu\n    exists" in out:
            continue  # the host already has the user: nothing to plan
        assert step in out, step
    assert out.index("-m venv") < out.index("pip install") < out.index("daemon-reload") < out.index("enable --now")
    assert "--no-index" not in out  # no wheelhouse: pip as the host configures it
    assert {path: Path(path).exists() for path in WRITES} == before, "a dry run wrote to the system"


def test_the_host_wide_settings_need_the_flag_and_are_listed_before_anything_is_done() -> None:
    settings = [line.split("=")[0].strip() for line in (UNITS / "sysctl.d/90-kefu.conf").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    assert len(settings) >= 10
    default = install("--dry-run", str(ROOT))
    assert default.returncode == 0, default.stderr
    assert "sysctl --" not in default.stdout and "/etc/sysctl.d/90-kefu.conf\n" not in default.stdout
    assert "not changed" in default.stdout and "--sysctl" in default.stdout
    flagged = install("--dry-run", "--sysctl", str(ROOT)).stdout
    first_command = flagged.index("\n+ ")
    for key in settings:
        assert key in default.stdout, key
        assert flagged.index(key) < first_command, f"{key} is not listed before the first change"
    assert flagged.index("/etc/sysctl.d/90-kefu.conf") < flagged.index("sysctl --quiet --system")


@pytest.mark.skipif(host_has_keys(), reason="this host has kefu's production keys in /var/lib/kefu/keys")
@pytest.mark.parametrize("flag", [[], ["--no-start"]])
def test_without_keys_the_service_is_neither_enabled_nor_started(flag: list[str]) -> None:
    result = install("--dry-run", *flag, str(ROOT))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "+ systemctl enable" not in out and "+ systemctl start" not in out
    assert "systemctl restart" not in out
    assert "not enabled, not started: /var/lib/kefu/keys holds no server keys yet" in out
    next_steps = out.split("Next, as root", 1)[1]
    assert next_steps.index("kefu keygen") < next_steps.index("kefu app add") < next_steps.index("enable --now")
    assert "--allow-development-keys" in next_steps


@pytest.mark.parametrize(
    ("flags", "active", "planned", "absent"),
    [
        ([], False, ["systemctl enable --now kefu.socket kefu.service"], ["restart"]),
        (["--no-start"], False, ["systemctl enable kefu.socket kefu.service", "not started (--no-start)"], ["--now"]),
        ([], True, ["systemctl enable kefu.socket kefu.service", "systemctl restart kefu.service"], ["--now"]),
    ],
    ids=["production-keys", "no-start", "upgrade"],
)
def test_with_production_keys(flags: list[str], active: bool, planned: list[str], absent: list[str]) -> None:
    """main() as run, with the host's answers replaced: the keys are production ones; the service is (not) active."""
    fake_host = "development_keys() { return 1; }\n"
    if active:
        fake_host += "systemctl() { [[ $1 == is-active ]]; }\n"
    result = sourced(fake_host + shlex.join(["main", "--dry-run", *flags, str(ROOT)]))
    assert result.returncode == 0, result.stderr
    systemd_step = result.stdout.split("==> systemd", 1)[1]
    for text in planned:
        assert text in systemd_step, text
    for text in absent:
        assert text not in systemd_step, text
    assert "DEVELOPMENT" not in result.stdout + result.stderr


def test_an_upgrade_with_development_keys_restarts_and_warns() -> None:
    result = sourced("systemctl() { [[ $1 == is-active ]]; }\n" + shlex.join(["main", "--dry-run", str(ROOT)]))
    assert result.returncode == 0, result.stderr
    assert "systemctl restart kefu.service" in result.stdout
    assert "warning: /var/lib/kefu/keys" in result.stderr or host_has_keys()


def test_after_a_development_first_start_the_next_steps_replace_its_keys_and_app() -> None:
    fake_host = 'development_keys() { echo "/var/lib/kefu/keys/dev-app.secret exists"; }\n'
    result = sourced(fake_host + shlex.join(["main", "--dry-run", str(ROOT)]))
    assert result.returncode == 0, result.stderr
    next_steps = result.stdout.split("Next, as root", 1)[1]
    assert "+ systemctl enable" not in result.stdout
    assert next_steps.index("kefu keygen") < next_steps.index("kefu app revoke dev") < next_steps.index("enable --now")
    assert "rm /var/lib/kefu/keys/dev-app.secret" in next_steps


def test_development_keys_are_detected_as_the_server_marks_them(tmp_path: Path) -> None:
    """No key of a type: the first start generates one (load_or_create). dev-app.secret: it did (ensure_dev_app)."""

    def development(data_dir: Path) -> str:
        result = sourced(f"development_keys {shlex.quote(str(data_dir / 'keys'))} || echo production")
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "holds no server keys yet" in development(tmp_path)
    add_key(tmp_path, KeyType.SM2)
    assert "holds no server keys yet" in development(tmp_path)
    add_key(tmp_path, KeyType.ED25519)
    assert development(tmp_path) == "production\n"
    (tmp_path / "keys" / DEV_SECRET_FILE).write_text("x\n")
    assert "a first start made development app 'dev'" in development(tmp_path)


def test_os_family_from_id_and_id_like(tmp_path: Path) -> None:
    calls = []
    for name, text in OS_RELEASES.items():
        (tmp_path / name).write_text(text)
        calls.append(f"echo {name}=$(os_family {shlex.quote(str(tmp_path / name))})")
    calls.append(f"echo missing=$(os_family {shlex.quote(str(tmp_path / 'absent'))})")
    result = sourced("\n".join(calls))
    assert result.returncode == 0, result.stderr
    found = dict(line.split("=") for line in result.stdout.split())
    assert found == FAMILY | {"missing": "other"}


@pytest.mark.parametrize(
    ("os_release", "wheelhouse_tag", "command"),
    [
        ("debian", None, "+ apt-get update\n+ apt-get install -y python3 python3-venv\n"),
        ("ubuntu", "cp311", "+ apt-get install -y python3.11 python3.11-venv\n"),
        ("rocky", None, " install -y python3.11\n"),
        ("fedora", "cp312", " install -y python3.12\n"),
    ],
)
def test_each_os_family_installs_a_missing_python_with_its_own_package_manager(
    tmp_path: Path, os_release: str, wheelhouse_tag: str | None, command: str
) -> None:
    (tmp_path / "os-release").write_text(OS_RELEASES[os_release])
    args = ["--dry-run"]
    if wheelhouse_tag is not None:  # the venv's Python is the one the wheelhouse's compiled wheels are for
        (tmp_path / "wheelhouse").mkdir()
        (tmp_path / "wheelhouse" / f"lmdb-1.0-{wheelhouse_tag}-{wheelhouse_tag}-manylinux_2_17_x86_64.whl").touch()
        args += ["--wheelhouse", str(tmp_path / "wheelhouse")]
    env = {"KEFU_OS_RELEASE": str(tmp_path / "os-release"), "KEFU_PYTHON": str(tmp_path / "no-python")}
    result = install(*args, str(ROOT), env=env)
    assert result.returncode == 0, result.stderr
    assert command in result.stdout
    manager = {"debian": "apt-get", "rhel": "dnf|yum"}[FAMILY[os_release]]
    assert any(f"+ {m} install -y" in result.stdout for m in manager.split("|")), manager
    python = command.split()[-2 if "venv" in command else -1]
    assert f"+ {python} -m venv /opt/kefu/venv" in result.stdout


def test_a_host_of_another_family_without_python_is_told_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "os-release").write_text(OS_RELEASES["alpine"])
    env = {"KEFU_OS_RELEASE": str(tmp_path / "os-release"), "KEFU_PYTHON": str(tmp_path / "no-python")}
    result = install("--dry-run", str(ROOT), env=env)
    assert result.returncode == 1
    assert "not a Debian or RHEL family host" in result.stderr and "KEFU_PYTHON" in result.stderr


def test_a_usable_python_needs_no_package(tmp_path: Path) -> None:
    (tmp_path / "os-release").write_text(OS_RELEASES["rocky"])
    result = install("--dry-run", str(ROOT), env={"KEFU_OS_RELEASE": str(tmp_path / "os-release"), "KEFU_PYTHON": ""})
    assert result.returncode == 0, result.stderr
    assert " install -y" not in result.stdout and "(OS family: rhel)" in result.stdout


def test_uninstall_keeps_the_configuration_and_data_unless_purge() -> None:
    before = {path: Path(path).exists() for path in WRITES}
    kept = install("--dry-run", "--uninstall")
    assert kept.returncode == 0, kept.stderr
    out = kept.stdout
    assert "+ systemctl disable --now kefu.socket kefu.service" in out
    removed = out.split("==> kept")[0]
    for path in ("/etc/systemd/system/kefu.service", "/etc/systemd/system/kefu.socket", "/opt/kefu/venv",
                 "/usr/local/bin/kefu"):  # fmt: skip
        assert path in removed, path
    for path in ("/etc/kefu", "/var/lib/kefu", "/var/backups/kefu"):
        assert path not in removed and path in out.split("==> kept")[1], path
    assert "--purge" in out
    purged = install("--dry-run", "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    purge_step = purged.stdout.split("==> --purge")[1]
    for path in ("/etc/kefu", "/var/lib/kefu", "/var/backups/kefu"):
        assert f"rm -rf -- {path}\n" in purge_step or f"{path}: absent" in purge_step, path
    assert {path: Path(path).exists() for path in WRITES} == before, "a dry run wrote to the system"


def test_wrong_arguments_are_refused() -> None:
    assert install("--dry-run", "/nonexistent/kefu.whl").returncode == 1
    usage = install("--dry-run")
    assert usage.returncode == 2 and "SOURCE" in usage.stdout
    assert install("--dry-run", "--purge", str(ROOT)).returncode == 2
    assert install("--dry-run", "--uninstall", str(ROOT)).returncode == 2
    assert install("--dry-run", "--wheelhouse", "/nonexistent", str(ROOT)).returncode == 1


def test_shellcheck_clean() -> None:
    shellcheck = debian_tool("shellcheck", "shellcheck")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout
