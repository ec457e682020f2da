"""The generated error-code module agrees with spec/errors.toml, the single table of wire codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kefu.protocol.codes import FATAL_CODES, ErrorCode
from kefu.protocol.errors import CryptoError, LocalProtocolError, ProtocolError, RemoteProtocolError

ROOT = Path(__file__).resolve().parents[2]


def test_generated_module_is_current() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "spec/gen_codes.py"), "--check"], check=False)
    assert result.returncode == 0, "protocol/codes.py is stale: run python spec/gen_codes.py"


def test_codes_are_unique_u16_and_ranged() -> None:
    values = [int(c) for c in ErrorCode]
    assert len(values) == len(set(values))
    assert all(0 <= v < 1 << 16 for v in values)
    assert ErrorCode.OK == 0 and ErrorCode.OK not in FATAL_CODES
    assert all(code in FATAL_CODES for code in ErrorCode if 100 <= code < 400)


def test_error_tree() -> None:
    error = CryptoError(ErrorCode.BAD_RECORD_MAC, "x")
    assert isinstance(error, RemoteProtocolError) and isinstance(error, ProtocolError)
    assert error.fatal and "BAD_RECORD_MAC (300)" in str(error)
    assert not RemoteProtocolError(ErrorCode.RATE_LIMITED, "x").fatal
    assert issubclass(LocalProtocolError, ProtocolError) and not issubclass(LocalProtocolError, RemoteProtocolError)
