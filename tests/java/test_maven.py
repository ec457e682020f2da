"""clients/java/pom.xml builds offline against Debian's Maven repository, as clients/java/README.md tells a bank
(`mvn -o -Pdebian -Dmaven.repo.local=/usr/share/maven-repo package`): every dependency and plugin it names resolves
from Debian's packages with no network. The JUnit tests themselves run in build.sh (test_java_client.py); here they
are compiled, not run, so that the check costs seconds."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

from tests.debian import debian_install

from .conftest import JAVA_DIR, ensure_java

DEBIAN_REPO = Path("/usr/share/maven-repo")
MAVEN_PACKAGES = (
    "maven", "libmaven-compiler-plugin-java", "libmaven-resources-plugin-java", "libmaven-jar-plugin-java",
    "libsurefire-java",
)  # fmt: skip
PLUGINS = ("maven-compiler-plugin", "maven-resources-plugin", "maven-jar-plugin", "maven-surefire-plugin")
MAVEN_TIMEOUT_S = 300


def _maven_missing() -> list[str]:
    missing = [] if shutil.which("mvn") else ["mvn"]
    plugins = DEBIAN_REPO / "org" / "apache" / "maven" / "plugins"
    return missing + [p for p in PLUGINS if not (plugins / p).is_dir()]


def test_pom_builds_offline_against_debians_repository(tmp_path: Path) -> None:
    ensure_java()
    debian_install(MAVEN_PACKAGES, _maven_missing, required=True)
    project = tmp_path / "java"
    shutil.copytree(JAVA_DIR, project, ignore=shutil.ignore_patterns("build", "target"))
    done = subprocess.run(
        ["mvn", "--offline", "--batch-mode", "-q", "-Pdebian", f"-Dmaven.repo.local={DEBIAN_REPO}", "-DskipTests",
         "package"],
        cwd=project, capture_output=True, text=True, timeout=MAVEN_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr)[-6000:]
    with zipfile.ZipFile(project / "target" / "kefu-client-0.1.0.jar") as jar:
        names = set(jar.namelist())
    assert {"io/kefu/client/KefuClient.class", "io/kefu/protocol/ClientConnection.class"} <= names
    assert (project / "target" / "test-classes" / "io" / "kefu" / "protocol").is_dir()  # the JUnit tests compiled
