"""The repository's own promises: the README's commands, CI, lint, format and types."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text(encoding="utf-8"))[:2]


def test_readme_opens_with_the_run_and_test_commands() -> None:
    head = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## ")[0]
    run, test = readme_commands()
    assert run in head and test in head
    assert run.endswith("kefu serve") and test.endswith("pytest")


def test_ci_runs_exactly_the_readme_test_command() -> None:
    lines = [ln for ln in (ROOT / ".ci/run").read_text().splitlines() if ln and not ln.startswith(("#", "set ", "cd "))]
    assert lines == [readme_commands()[1]]


def _tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed next to this Python")
    return str(path)


def test_ruff_check() -> None:
    result = subprocess.run([_tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]


def test_ruff_format() -> None:
    result = subprocess.run(
        [_tool("ruff"), "format", "--check", "."], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_mypy_strict() -> None:
    env = {**os.environ, "MYPY": _tool("mypy")}
    result = subprocess.run(
        [str(ROOT / ".ci/typecheck")], cwd=ROOT, capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_files_procurement_asks_for() -> None:
    license_text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert 'license = { text = "Apache-2.0" }' in (ROOT / "pyproject.toml").read_text()
    security = (ROOT / "SECURITY.md").read_text()
    for heading in ("## Reporting a vulnerability", "## Supported versions", "## Version policy"):
        assert heading in security
    version = re.search(r'^version = "(.+)"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version and f"## [{version.group(1)}]" in (ROOT / "CHANGELOG.md").read_text()
