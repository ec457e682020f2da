"""The client package's footprint and error mapping."""

from __future__ import annotations

import subprocess
import sys

import pytest

from kefu.client import errors
from kefu.protocol.errors import ErrorCode, ProtocolError


def test_imports_without_server_dependencies() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('uvloop', 'lmdb', 'prometheus_client'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import kefu.client\n"
        "from kefu.client import Client, BlockingClient\n"
        "bad = {'uvloop', 'lmdb', 'prometheus_client', 'kefu.server'} & set(sys.modules)\n"
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (ErrorCode.AUTH_FAILED, errors.AuthFailed),
        (ErrorCode.SERVER_KEY_NOT_PINNED, errors.ServerNotTrusted),
        (ErrorCode.DOWNGRADE_DETECTED, errors.ServerNotTrusted),
        (ErrorCode.NO_COMMON_SUITE, errors.NoCommonSuite),
        (ErrorCode.HANDSHAKE_TIMEOUT, errors.ConnectError),
        (None, errors.ConnectError),
    ],
)
def test_connect_errors_carry_their_wire_code(code: ErrorCode | None, cls: type) -> None:
    error = errors.connect_error(code, "why")
    assert type(error) is cls and error.code == code
    assert isinstance(error, errors.ClientError) and isinstance(error, ProtocolError)


def test_timeouts_are_timeout_errors() -> None:
    assert isinstance(errors.SendTimeout(b"\x00" * 16), TimeoutError)
    assert isinstance(errors.ConnectTimeout("slow"), TimeoutError)
    assert isinstance(errors.ConnectTimeout("slow"), errors.ConnectError)


def test_refusals_name_their_code() -> None:
    refused = errors.SendRefused(403)
    assert refused.code is ErrorCode.FORBIDDEN and "FORBIDDEN (403)" in str(refused)
    assert errors.RequestRefused(4242).code == 4242
