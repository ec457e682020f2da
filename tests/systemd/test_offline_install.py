"""The air-gapped install (issue #16.4): systemd/dist.py really builds the wheel, the wheelhouse and the tarball (pip
may use the index and its cache for that), then the command install.sh plans for `--wheelhouse` installs kefu[server]
from the unpacked tarball into a fresh venv with no index reachable, and kefu runs from there.

The build runs once per module and every test reads its output. Measured here with a warm pip cache: the build 6 s
and the install 2 s on an idle machine; 13 s and 5 s with other test runs loading its two CPUs.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tarfile
import time
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import ROOT, UNITS

pytestmark = pytest.mark.slow

VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
TOP = f"kefu-{VERSION}"
WHEEL = f"{TOP}-py3-none-any.whl"
BUILD_TIMEOUT = 600  # a cold pip cache downloads ~50 MB and builds snownlp from its source release
UNREACHABLE = "http://127.0.0.1:9/simple"  # the discard port: nothing listens, a connection is refused at once
NOT_SHIPPED = ("clients/python/examples",)
"""Folders under the packages' folders that are the repository's, not the wheel's."""


@dataclass(frozen=True)
class Dist:
    out: Path  # what dist.py wrote
    unpacked: Path  # the tarball, unpacked as the air-gapped host would: TOP/...
    build_seconds: float


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dist]:
    out = tmp_path_factory.mktemp("dist")
    started = time.monotonic()
    result = subprocess.run([sys.executable, str(UNITS / "dist.py"), "--out", str(out)], capture_output=True,
                            text=True, timeout=BUILD_TIMEOUT, check=False)  # fmt: skip
    built = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    unpacked = tmp_path_factory.mktemp("airgap")
    with tarfile.open(out / f"{TOP}-offline.tar") as tar:
        tar.extractall(unpacked, filter="data")
    print(f"dist.py: {built:.1f} s")  # shown with -s; the time is reported, never asserted
    yield Dist(out, unpacked / TOP, built)


def offline_env() -> dict[str, str]:
    """No index can be reached and no configuration file or PIP_* variable of this machine adds a source."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV"))}
    env |= {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_INDEX_URL": UNREACHABLE,
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "http_proxy": UNREACHABLE,
        "https_proxy": UNREACHABLE,
    }
    return env


def planned_pip_install(dist: Dist, wheelhouse: Path) -> list[str]:
    """The `pip install --upgrade` command the unpacked install.sh plans for `--wheelhouse`, as an argument list."""
    script = dist.unpacked / "systemd" / "install.sh"
    result = subprocess.run(
        ["bash", str(script), "--dry-run", "--wheelhouse", str(wheelhouse), str(dist.unpacked / WHEEL)],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "KEFU_PYTHON": sys.executable},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("+ ") and " install " in line]
    command = shlex.split(next(line for line in lines if "--upgrade" in line)[2:])
    assert command[0] == "/opt/kefu/venv/bin/pip", command
    return command[1:]


def fresh_venv(where: Path) -> Path:
    """A venv without pip of its own: this interpreter's pip installs into it (--python), which saves 3 s here."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=60)
    return where / "bin" / "python"


def pip_into(python: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pip", "--python", str(python), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False, env=offline_env())


def test_the_tarball_installs_offline_and_kefu_runs(dist: Dist, tmp_path: Path) -> None:
    args = planned_pip_install(dist, dist.unpacked / "wheelhouse")
    assert "--no-index" in args and f"kefu[server] @ file://{dist.unpacked / WHEEL}" in args
    python = fresh_venv(tmp_path / "venv")
    started = time.monotonic()
    result = pip_into(python, args)
    print(f"offline install: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stdout + result.stderr
    # Every module imports: a subpackage missing from the wheel fails here (kefu.server.link once did).
    walk = (
        "import importlib, pkgutil, kefu.server\n"
        "names = [m.name for m in pkgutil.walk_packages(kefu.__path__, 'kefu.')]\n"
        "[importlib.import_module(n) for n in names]\n"
        "import kefu.server.runtime.core_process, kefu.server.runtime.gateway_process\n"
        "print(kefu.server.__file__, len(names))"
    )
    imported = subprocess.run([str(python), "-c", walk], capture_output=True, text=True, timeout=60, check=False)
    assert imported.returncode == 0, imported.stderr
    assert str(tmp_path / "venv") in imported.stdout  # from the venv, not from this checkout
    kefu = tmp_path / "venv" / "bin" / "kefu"
    version = subprocess.run([str(kefu), "--version"], capture_output=True, text=True, timeout=60, check=False)
    assert version.stdout.strip() == f"kefu {VERSION}", version.stderr
    example = subprocess.run([str(kefu), "check-config", "--example"], capture_output=True, text=True, timeout=60,
                             check=False)  # fmt: skip
    assert example.returncode == 0 and "data_dir" in example.stdout, example.stderr


def test_no_index_is_reachable_from_the_offline_install(dist: Dist, tmp_path: Path) -> None:
    """The control: the same command with an empty wheelhouse finds nothing, so the one above used only the tarball."""
    (tmp_path / "empty").mkdir()
    args = planned_pip_install(dist, tmp_path / "empty")
    result = pip_into(fresh_venv(tmp_path / "venv"), args)
    assert result.returncode != 0
    assert "No matching distribution found" in result.stderr, result.stderr


def test_the_wheelhouse_holds_wheels_only_and_the_build_backend(dist: Dist) -> None:
    names = [p.name for p in (dist.unpacked / "wheelhouse").iterdir()]
    assert names and all(n.endswith(".whl") for n in names), names  # nothing to compile on the target
    projects = {n.split("-")[0].lower() for n in names}
    backend = {"setuptools", "wheel"}  # pyproject.toml [build-system] requires
    assert backend <= projects
    assert {"cryptography", "construct", "gmssl_pyx", "uvloop", "lmdb", "prometheus_client", "lupa", "snownlp",
            "httpx"} <= projects  # fmt: skip
    assert "kefu" not in projects  # kefu ships once, beside the wheelhouse
    assert (dist.out / WHEEL).is_file() and sorted(names) == sorted(p.name for p in (dist.out / "wheelhouse").iterdir())


def test_the_tarball_carries_install_sh_the_units_and_checksums(dist: Dist) -> None:
    for name in ("install.sh", "kefu.service", "kefu.socket", "sysctl.d/90-kefu.conf", "OPERATIONS.md"):
        assert (dist.unpacked / "systemd" / name).read_bytes() == (UNITS / name).read_bytes(), name
    sums = (dist.unpacked / "SHA256SUMS").read_text().splitlines()
    checked = subprocess.run(["sha256sum", "--check", "--quiet", "SHA256SUMS"], cwd=dist.unpacked,
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    listed = {line.split("  ", 1)[1] for line in sums}
    assert WHEEL in listed and "systemd/install.sh" in listed
    assert {f"wheelhouse/{p.name}" for p in (dist.unpacked / "wheelhouse").iterdir()} <= listed


def test_the_wheel_holds_every_module_of_the_source(dist: Dist) -> None:
    """Built from a clean copy of the tree: every .py of the package folders, nothing else, under kefu/."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    expected = set()
    for package, folder in mapping.items():
        for path in (ROOT / folder).rglob("*.py"):
            rel = path.relative_to(ROOT / folder)
            if "__pycache__" in rel.parts or str(path.relative_to(ROOT)).startswith(NOT_SHIPPED):
                continue
            expected.add("/".join([*package.split("."), *rel.parts]))
    with zipfile.ZipFile(dist.out / WHEEL) as wheel:
        shipped = {n for n in wheel.namelist() if n.endswith(".py")}
    assert shipped == expected
