#!/usr/bin/env python3
"""Build what an air-gapped host installs kefu from: the wheel, a wheelhouse, and one tarball holding both.

    python3.11 systemd/dist.py [--out DIR]          # DIR defaults to dist/ in the repository

Output (VERSION from pyproject.toml)::

    DIR/kefu-VERSION-py3-none-any.whl      kefu itself, built from this source tree
    DIR/wheelhouse/*.whl                   every dependency of kefu[server], and the build backend
    DIR/kefu-VERSION-offline.tar           kefu-VERSION/ with the two above, systemd/ (install.sh, the units,
                                           the sysctl drop-in, OPERATIONS.md) and SHA256SUMS

On the air-gapped host: `tar xf kefu-VERSION-offline.tar && cd kefu-VERSION && sha256sum -c SHA256SUMS &&
systemd/install.sh --wheelhouse wheelhouse kefu-VERSION-py3-none-any.whl` (systemd/OPERATIONS.md, "Installing and
upgrading").

Theory of operation. The name `kefu` is never looked up in an index: a public index may hold an unrelated package of
that name (dependency confusion), and the bank's index may not hold ours. So:

1. The build backend (pyproject.toml's [build-system] requires: setuptools, wheel) goes into the wheelhouse,
   fetched the way pip is configured on this host (the bank's own index).
2. kefu's wheel is built from a clean copy of the source (setuptools' in-tree build/ directory can carry files
   deleted since), with pip offline: --no-index, the wheelhouse as its only source. This step proves the wheelhouse
   can build kefu from source, as install.sh does when given the repository and --wheelhouse.
3. The dependencies of kefu[server] are resolved against that wheel file (`kefu[server] @ file://...`), fetched as
   in step 1, and built into wheels where the index has only a source release (snownlp): the target installs
   wheels only and compiles nothing.
4. The tarball is not compressed: wheels are zip files already.

The wheelhouse holds compiled wheels (cryptography, cffi, lmdb, uvloop, lupa, gmssl-pyx) for the Python that runs this
script and for this machine. Run it with the Python minor version the target will use (Debian 12: python3.11;
RHEL 9: python3.11), on a machine of the same architecture whose C library is not newer than the target's.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_UNIT_FILES = ("install.sh", "kefu.service", "kefu.socket", "sysctl.d/90-kefu.conf", "OPERATIONS.md")
"""What install.sh reads beside itself (its $HERE): the tarball's systemd/ holds exactly these."""
SKIPPED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", "build", "*.egg-info")


def pip(args: Sequence[str], *, offline: bool = False) -> None:
    """Run this interpreter's pip. `offline`: no configuration file and no PIP_* variable reaches it (step 2)."""
    env = dict(os.environ)
    if offline:
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env |= {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    command = [sys.executable, "-m", "pip", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, env=env, check=True)  # noqa: S603 - this interpreter's pip, arguments built here


def project() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return tomllib.load(f)


def source_paths(meta: dict[str, Any]) -> list[str]:
    """What setuptools reads to build the wheel: pyproject.toml, the readme, the license, the package folders."""
    folders = {str(d) for d in meta["tool"]["setuptools"]["package-dir"].values()}
    paths = {"pyproject.toml", str(meta["project"]["readme"]), *folders}
    return sorted(p for p in paths | {"LICENSE"} if (ROOT / p).exists())


def copy_source(paths: Iterable[str], into: Path) -> None:
    for rel in paths:
        src, dest = ROOT / rel, into / rel
        if src.is_dir():
            shutil.copytree(src, dest, ignore=SKIPPED)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)


def build(out: Path) -> tuple[Path, Path]:
    """Steps 1-3: (kefu's wheel, the wheelhouse). Replaces what an earlier run left in `out`."""
    meta = project()
    version = str(meta["project"]["version"])
    build_requires = [str(r) for r in meta["build-system"]["requires"]]
    wheelhouse = out / "wheelhouse"
    shutil.rmtree(wheelhouse, ignore_errors=True)  # a stale wheel would ship beside the new one
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("kefu-*.whl"):
        old.unlink()

    pip(["wheel", "--quiet", "--wheel-dir", str(wheelhouse), *build_requires])
    with tempfile.TemporaryDirectory(prefix="kefu-dist-") as tmp:
        copy_source(source_paths(meta), Path(tmp))
        pip(["wheel", "--quiet", "--no-deps", "--find-links", str(wheelhouse), "--wheel-dir", str(out), tmp],
            offline=True)  # fmt: skip
    wheel = out / f"kefu-{version}-py3-none-any.whl"
    if not wheel.is_file():
        raise SystemExit(f"dist.py: pip did not build {wheel.name}")
    pip(["wheel", "--quiet", "--find-links", str(wheelhouse), "--wheel-dir", str(wheelhouse),
         f"kefu[server] @ {wheel.as_uri()}"])  # fmt: skip
    for copy in wheelhouse.glob("kefu-*.whl"):
        copy.unlink()  # pip wheel copies the requirement itself in; it ships once, beside the wheelhouse
    return wheel, wheelhouse


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tarball(wheel: Path, wheelhouse: Path, out: Path) -> Path:
    """Step 4: DIR/kefu-VERSION-offline.tar, everything under kefu-VERSION/, owned by root, with SHA256SUMS."""
    top = wheel.name.split("-py3-")[0]  # kefu-VERSION
    members = [(wheel, wheel.name)]
    members += [(w, f"wheelhouse/{w.name}") for w in sorted(wheelhouse.glob("*.whl"))]
    members += [(ROOT / "systemd" / name, f"systemd/{name}") for name in SHIPPED_UNIT_FILES]
    sums = "".join(f"{sha256(path)}  {name}\n" for path, name in members)
    target = out / f"{top}-offline.tar"

    def as_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    with tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as tar:
        for path, name in members:
            tar.add(path, f"{top}/{name}", filter=as_root)
        sums_file = out / "SHA256SUMS"
        sums_file.write_text(sums)
        tar.add(sums_file, f"{top}/SHA256SUMS", filter=as_root)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build kefu's wheel, its wheelhouse and the offline tarball.")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="output directory (default: dist/)")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    wheel, wheelhouse = build(out)
    target = tarball(wheel, wheelhouse, out)
    count = len(list(wheelhouse.glob("*.whl")))
    print(f"{wheel}\n{wheelhouse}/ ({count} wheels)\n{target}\n  sha256 {sha256(target)}  (compare it on the target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
