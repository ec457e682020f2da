"""systemd/install.sh: its dry run prints every step and changes nothing; shellcheck finds nothing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import ROOT, UNITS

SCRIPT = UNITS / "install.sh"
WRITES = ("/etc/systemd/system/kefu.service", "/etc/sysctl.d/90-kefu.conf", "/etc/kefu", "/opt/kefu",
          "/usr/local/bin/kefu")  # fmt: skip


def install(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


def test_dry_run_prints_the_plan_and_changes_nothing() -> None:
    before = {path: Path(path).exists() for path in WRITES}
    result = install("--dry-run", str(ROOT))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "dry run" in out
    planned = [
        "useradd --system",
        "-m venv /opt/kefu/venv",
        "/opt/kefu/venv/bin/pip install",
        f"file://{ROOT}",
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
        assert step in out.replace("\\ ", " ").replace("\\[", "[").replace("\\]", "]"), step
    assert out.index("useradd") < out.index("pip install") < out.index("daemon-reload") < out.index("enable --now")
    assert {path: Path(path).exists() for path in WRITES} == before, "a dry run wrote to the system"


def test_no_start_enables_without_starting() -> None:
    result = install("--dry-run", "--no-start", str(ROOT))
    assert result.returncode == 0, result.stderr
    assert "systemctl enable kefu.socket kefu.service" in result.stdout
    assert "--now" not in result.stdout and "systemctl restart" not in result.stdout


def test_a_missing_source_or_no_argument_is_refused() -> None:
    assert install("--dry-run", "/nonexistent/kefu.whl").returncode == 1
    usage = install("--dry-run")
    assert usage.returncode == 2 and "SOURCE" in usage.stdout


def test_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout
