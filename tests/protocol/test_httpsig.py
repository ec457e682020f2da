"""kefu.protocol.httpsig against spec/vectors/http-signatures.json (spec 17.2), and the canonical query's rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kefu.protocol import crypto
from kefu.protocol.handshake import check_app_proof, stored_key
from kefu.protocol.httpsig import SCHEMES, SigningParams, authorization, canonical_query, canonical_request, sign

VECTORS = json.loads((Path(__file__).parents[2] / "spec" / "vectors" / "http-signatures.json").read_text())


@pytest.mark.parametrize("vector", VECTORS, ids=lambda v: f"{v['scheme']}-{v['method']}-{v['path'][-12:]}")
def test_the_vectors(vector: dict[str, Any]) -> None:
    params = SigningParams(vector["scheme"], vector["app_id"], vector["timestamp"], vector["nonce"])
    query = canonical_query([tuple(q) for q in vector["query"]])
    canonical = canonical_request(params, vector["method"], vector["path"], query, bytes.fromhex(vector["body"]))
    assert canonical.decode() == vector["canonical"]
    secret = bytes.fromhex(vector["app_secret"])
    signature = sign(params, secret, canonical)
    assert signature.hex() == vector["signature"]
    assert authorization(params, signature) == vector["authorization"]
    # what the server does, with the verifier only
    hash_name = SCHEMES[vector["scheme"]]
    stored = stored_key(hash_name, vector["app_id"], secret)
    covered = crypto.hash_digest(hash_name, canonical)
    assert check_app_proof(hash_name, stored, signature, covered)
    assert not check_app_proof(hash_name, stored, signature, crypto.hash_digest(hash_name, canonical + b" "))


def test_the_vectors_cover_both_schemes_a_body_and_a_query_to_encode() -> None:
    assert {v["scheme"] for v in VECTORS} == set(SCHEMES)
    assert any(v["body"] for v in VECTORS) and any("%" in v["canonical"] for v in VECTORS)


def test_the_canonical_query() -> None:
    assert canonical_query([]) == ""
    assert canonical_query([("b", "2"), ("a", "1"), ("a", "0")]) == "a=0&a=1&b=2"
    assert canonical_query([("q", "信 用"), ("x", "a&b=c~-._")]) == "q=%E4%BF%A1%20%E7%94%A8&x=a%26b%3Dc~-._"
    assert canonical_query({"k": ""}.items()) == "k="
