"""Debian's packages for the tests that need them (promtool, shellcheck, the JDK, Maven's plugins): found on the
machine, or installed with apt-get when the tests run as root on a Debian host, as the README's test command does on
a fresh machine of the kind CI uses. Elsewhere (not root, not Debian) the test is skipped and says why."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

import pytest

__all__ = ["debian_install", "debian_tool"]

APT_TIMEOUT_S = 900
"""An install downloads tens of MB (the JDK: about 100) from Debian's registry; it is bounded so that a hung mirror
ends the test."""


def debian_install(packages: Sequence[str], missing: Callable[[], list[str]], *, required: bool) -> None:
    """Install `packages` with apt-get when `missing()` names anything. Where installing is impossible (not root, no
    apt-get) the test is skipped with the command to run; when apt-get ran and something is still missing, the test
    fails if `required`, else it is skipped. apt-get waits for another install's lock (two test workers may both
    install)."""
    absent = missing()
    if not absent:
        return
    wanted = " ".join(packages)
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"missing {', '.join(absent)}; installing it needs root and apt-get: apt-get install {wanted}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "--no-install-recommends", *packages]
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT_S, check=False)
    if done.returncode:  # package lists may be missing or stale on a fresh machine
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"], capture_output=True, env=env,
                       timeout=APT_TIMEOUT_S, check=False)  # fmt: skip
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT_S, check=False)
    still = missing()
    if still:
        why = f"apt-get install {wanted} left {', '.join(still)} missing: {(done.stdout + done.stderr)[-3000:]}"
        if required:
            pytest.fail(why)
        pytest.skip(why)


def debian_tool(command: str, *packages: str) -> str:
    """The path of `command`, installing `packages` first if it is missing (skipped if it cannot be had)."""
    debian_install(packages, lambda: [] if shutil.which(command) else [command], required=False)
    found = shutil.which(command)
    assert found is not None
    return found
