"""The shipped Prometheus alert rules (systemd/prometheus/kefu-alerts.yml) are valid and fire when their unit tests
say (kefu-alerts.test.yml), checked by Prometheus's own promtool. Which metric names they and the dashboard may use
is checked against a real server's scrape in tests/integration/test_monitoring.py."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RULES_DIR = Path(__file__).resolve().parents[2] / "systemd" / "prometheus"
PROMTOOL = shutil.which("promtool")

pytestmark = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (Debian: apt-get install prometheus)"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=RULES_DIR, capture_output=True, text=True, timeout=60, check=False)


def test_rules_are_valid() -> None:
    result = promtool("check", "rules", "kefu-alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 13 rules found" in result.stdout


def test_rules_fire_as_their_unit_tests_say() -> None:
    result = promtool("test", "rules", "kefu-alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
