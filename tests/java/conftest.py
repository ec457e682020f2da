"""The Java client (clients/java/) built once per test module, and the shared real server of the client tests.

`java_build` makes sure a JDK, BouncyCastle and JUnit 5 are there (installing Debian's packages when missing and
running as root, as on CI; skipping with the reason otherwise), then runs clients/java/build.sh, which compiles
the library, its tests and the examples, runs the JUnit tests and builds the jar and the javadoc.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.client.conftest import KefuServer, shared_kefu_server
from tests.debian import debian_install

__all__ = ["JavaBuild", "KefuServer", "java_build", "shared_kefu_server"]

JAVA_DIR = Path(__file__).resolve().parents[2] / "clients" / "java"
BCPROV_JAR = Path("/usr/share/java/bcprov.jar")
JUNIT_JAR = Path("/usr/share/java/junit-platform-console-standalone.jar")
DEBIAN_PACKAGES = ("default-jdk-headless", "libbcprov-java", "junit5")
BUILD_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class JavaBuild:
    """What build.sh produced: `classpath` runs the library, its test programs and the examples."""

    output: str
    build_dir: Path

    @property
    def classpath(self) -> str:
        parts = ("classes", "test-classes", "example-classes")
        return os.pathsep.join([*(str(self.build_dir / p) for p in parts), str(BCPROV_JAR)])


def _missing() -> list[str]:
    missing = [] if shutil.which("javac") and shutil.which("javadoc") else ["javac"]
    return missing + [str(p) for p in (BCPROV_JAR, JUNIT_JAR) if not p.is_file()]


def ensure_java() -> None:
    """Install Debian's JDK, BouncyCastle and JUnit 5 where missing (as root; fails if that fails), else skip."""
    debian_install(DEBIAN_PACKAGES, _missing, required=True)


@pytest.fixture(scope="module")
def java_build(tmp_path_factory: pytest.TempPathFactory) -> JavaBuild:
    """clients/java/build.sh run once for the module, in a build directory of its own; fails with its output."""
    ensure_java()
    build_dir = tmp_path_factory.mktemp("java-build")
    env = {**os.environ, "KEFU_JAVA_BUILD": str(build_dir)}
    done = subprocess.run(
        ["bash", str(JAVA_DIR / "build.sh")],
        capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT_S, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"clients/java/build.sh failed ({done.returncode}):\n{output[-20000:]}")
    return JavaBuild(output, build_dir)
