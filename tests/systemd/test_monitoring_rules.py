"""The shipped Prometheus alert rules (systemd/prometheus/kefu-alerts.yml) are valid and fire when their unit tests
say (kefu-alerts.test.yml), checked by Prometheus's own promtool. Which metric names they and the dashboard may use
is checked against a real server's scrape in tests/integration/test_monitoring.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ..debian import debian_tool

RULES_DIR = Path(__file__).resolve().parents[2] / "systemd" / "prometheus"


@pytest.fixture(scope="module")
def promtool_path() -> str:
    """Debian's promtool (package prometheus), installed if missing and possible."""
    return debian_tool("promtool", "prometheus")


def promtool(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([path, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60, check=False)


def test_rules_are_valid(promtool_path: str) -> None:
    result = promtool(promtool_path, "check", "rules", "kefu-alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


def test_rules_fire_as_their_unit_tests_say(promtool_path: str) -> None:
    result = promtool(promtool_path, "test", "rules", "kefu-alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
