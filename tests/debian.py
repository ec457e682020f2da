"""Debian's tools for the tests that need one (promtool, shellcheck, the JDK): found on PATH, or installed from
Debian's packages when the tests run as root on a Debian host, as the README's test command does on a fresh machine
of the kind CI uses. Elsewhere (not root, not Debian, no registry) the test is skipped and says why."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

__all__ = ["debian_tool"]

APT_TIMEOUT_S = 600
"""An install downloads tens of MB from Debian's registry; it is bounded so that a hung mirror ends the test."""


def debian_tool(command: str, *packages: str) -> str:
    """The path of `command`, installing `packages` with apt-get first if it is missing; skips the test if it
    cannot be had. apt-get waits for another install's lock (two test workers may both install)."""
    found = shutil.which(command)
    if found:
        return found
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        wanted = " ".join(packages)
        pytest.skip(f"{command} is not installed, and installing it needs root and apt-get: apt-get install {wanted}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "--no-install-recommends", *packages]
    done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT_S, check=False)
    if done.returncode:  # package lists may be missing or stale on a fresh machine
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"], capture_output=True, env=env,
                       timeout=APT_TIMEOUT_S, check=False)  # fmt: skip
        done = subprocess.run(install, capture_output=True, text=True, env=env, timeout=APT_TIMEOUT_S, check=False)
    found = shutil.which(command)
    if found is None:
        pytest.skip(f"{command}: apt-get install {' '.join(packages)} failed: {done.stderr.strip()[-500:]}")
    return found
