"""The JavaScript client's generated frame declarations and error codes (clients/js/src/frames.js) agree with their
single sources, kefu.protocol.frames and spec/errors.toml (spec/gen_js_frames.py --check)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_js_frames_are_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "spec/gen_js_frames.py"), "--check"], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_js_error_codes_are_generated() -> None:
    source = (ROOT / "clients/js/src/frames.js").read_text(encoding="utf-8")
    assert source.startswith("// GENERATED from kefu.protocol.frames and spec/errors.toml by spec/gen_js_frames.py")
    assert "  STORAGE_UNAVAILABLE: [507, false],\n" in source
