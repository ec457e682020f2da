"""Running the JS client's Node scripts from pytest: node found, dependencies installed from package-lock.json."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "clients" / "js"


def node() -> str:
    """The node executable (20.10 or newer: WebCrypto X25519/Ed25519 and --experimental-websocket); skip without it."""
    found = shutil.which("node")
    if found is None:
        pytest.skip("node is not installed")
    version = subprocess.run([found, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    major, minor = (int(part) for part in version.lstrip("v").split(".")[:2])
    if (major, minor) < (20, 10):
        pytest.skip(f"node {version} is older than 20.10")
    return found


def installed() -> None:
    """`npm ci` in clients/js when node_modules is missing (the devDependencies the tests need)."""
    if all((JS / "node_modules" / name).is_dir() for name in ("sm-crypto-v2", "esbuild", "typescript")):
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True, timeout=300)
