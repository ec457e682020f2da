"""kefu.client.http: the signer needs none of the server's dependencies (its use against a real server is in
tests/api)."""

from __future__ import annotations

import subprocess
import sys

from kefu.client.http import Signer


def test_it_imports_nothing_of_the_server() -> None:
    code = (
        "import sys, kefu.client.http\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'lmdb', 'prometheus_client')"
        " or m.startswith('kefu.server'))\n"
        "print(','.join(bad))"
    )
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert found.stdout.strip() == ""


def test_the_header_names_the_scheme_app_time_and_nonce() -> None:
    signer = Signer(
        "bank-core", bytes(32), scheme="KEFU-HMAC-SHA256", clock=lambda: 1_796_000_000.7, nonce=lambda: "n" * 16
    )
    value = signer.authorization("GET", "http://127.0.0.1:7423/v1/queues?b=2&a=1")
    scheme, params = value.split(" ", 1)
    fields = dict(p.split("=", 1) for p in params.split(","))
    assert scheme == "KEFU-HMAC-SHA256" and fields["app_id"] == "bank-core" and fields["ts"] == "1796000000"
    assert fields["nonce"] == "n" * 16 and len(fields["sig"]) == 43
    # the same request with its query in another order is the same signed request
    assert signer.authorization("GET", "/v1/queues?a=1&b=2") == value
    assert signer.authorization("GET", "/v1/queues?a=1&b=3") != value
    assert (
        Signer("bank-core", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").headers("POST", "/v1/x", b"{}")[
            "Content-Type"
        ]
        == "application/json"
    )
