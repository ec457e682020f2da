"""The Java client's generated sources agree with their single sources: the frame declarations of
kefu.protocol.frames (spec/gen_java_frames.py) and spec/errors.toml (spec/gen_codes.py, checked with the Python
module by test_codes.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_java_frames_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "spec/gen_java_frames.py"), "--check"], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_java_error_codes_are_generated() -> None:
    source = (ROOT / "clients/java/src/main/java/io/kefu/protocol/ErrorCode.java").read_text(encoding="utf-8")
    assert "GENERATED from spec/errors.toml by spec/gen_codes.py" in source
    assert "    STORAGE_UNAVAILABLE(507, false," in source
