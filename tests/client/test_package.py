"""The client package's footprint and error mapping."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import kefu.client
from kefu.client import ContentType, ConversationState, Message, OpenedConversation, SentimentScore, errors
from kefu.protocol.errors import ErrorCode, ProtocolError
from kefu.protocol.frames import Deliver, Opened
from kefu.protocol.wire import WireStruct


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


def test_connection_failures_are_os_errors() -> None:
    refused = errors.connect_error(ErrorCode.AUTH_FAILED, "why")
    assert isinstance(refused, OSError) and refused.code is ErrorCode.AUTH_FAILED and str(refused).endswith("why")
    assert isinstance(errors.ConnectionLost("gone"), ConnectionError)
    assert isinstance(errors.CredentialsRefused("revoked", code=ErrorCode.AUTH_FAILED), ConnectionError)
    assert not isinstance(errors.SendRefused(403), OSError)  # a refusal is an answer, not a connection failure


def test_refusals_name_their_code() -> None:
    refused = errors.SendRefused(403)
    assert refused.code is ErrorCode.FORBIDDEN and "FORBIDDEN (403)" in str(refused)
    assert errors.RequestRefused(4242).code == 4242


def test_no_assert_in_the_library() -> None:
    """`python -O` strips asserts: the client's checks must be real ones."""
    package = Path(kefu.client.__file__).parent
    found = [
        f"{path.name}:{node.lineno}"
        for path in sorted(package.glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Assert)
    ]
    assert found == []


def test_the_public_api_exports_no_wire_frame() -> None:
    exported = [getattr(kefu.client, name) for name in kefu.client.__all__]
    frames = [obj for obj in exported if isinstance(obj, type) and issubclass(obj, WireStruct)]
    assert frames == []
    assert {"Opened", "SearchHit", "SearchResult", "QueuePosition", "Sentiment", "Deliver"}.isdisjoint(
        kefu.client.__all__
    )
    with pytest.raises(AttributeError, match="QueueUpdate"):
        _ = kefu.client.QueuePosition  # the name exported before 1.0 says what took its place


def test_results_are_typed() -> None:
    known = Message.from_deliver(Deliver(5, 1, 77, 123, bytes(16), 2, "agent", b"{}", ()))
    unknown = Message.from_deliver(Deliver(5, 2, 78, 124, bytes(16), 99, "agent", b"?", ()))
    assert known.content_type is ContentType.JSON and unknown.content_type == 99
    opened = OpenedConversation.from_frame(Opened(7, 1, "cards", "", 3))
    assert opened.state is ConversationState.WAITING and opened.position == 3
    assert OpenedConversation.from_frame(Opened(7, 42, "cards", "", 0)).state == 42  # a newer server's state
    assert SentimentScore(7, 2, 250).score == 0.25
