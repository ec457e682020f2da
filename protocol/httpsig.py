"""Signed HTTP API requests (spec section 17.2): the canonical request and its signature, for the server that checks
them and for every client that makes them.

A signature is the protocol's APP_SECRET proof (section 5.5) over the request instead of the handshake transcript::

    canonical = scheme \\n METHOD \\n path \\n sorted query \\n app_id \\n timestamp \\n nonce \\n hex(Hash(body))
    signature = ClientKey XOR HMAC(StoredKey, Hash(canonical))           (32 bytes; base64url in the header)

so the server checks it with the StoredKey it keeps for the app, and never needs the secret.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote

from . import crypto
from .handshake import app_proof

__all__ = ["SCHEMES", "SigningParams", "authorization", "canonical_query", "canonical_request", "sign"]

SCHEMES = {"KEFU-HMAC-SM3": "sm3", "KEFU-HMAC-SHA256": "sha256"}
"""The signature schemes and the hash each uses (for the body's hash, the covered hash and the HMAC)."""


@dataclass(frozen=True, slots=True)
class SigningParams:
    """What a signature covers besides the request: who signs, when, and a nonce used once."""

    scheme: str
    app_id: str
    timestamp: int
    nonce: str


def canonical_query(items: Iterable[tuple[str, str]]) -> str:
    """The query as signed: each decoded name and value percent-encoded again (RFC 3986's unreserved characters
    left as they are), ``name=value``, sorted, joined with ``&``."""
    return "&".join(sorted(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in items))


def canonical_request(params: SigningParams, method: str, path: str, query: str, body: bytes) -> bytes:
    """The bytes a signature covers: one field per line, the body as its hex hash. `path` as sent (percent-encoded),
    `query` as `canonical_query` makes it."""
    body_hash = crypto.hash_digest(SCHEMES[params.scheme], body).hex()
    fields = [params.scheme, method.upper(), path, query, params.app_id, str(params.timestamp), params.nonce, body_hash]
    return "\n".join(fields).encode()


def sign(params: SigningParams, secret: bytes, canonical: bytes) -> bytes:
    """The 32-byte signature of a canonical request with the app's secret."""
    hash_name = SCHEMES[params.scheme]
    return app_proof(hash_name, params.app_id, secret, crypto.hash_digest(hash_name, canonical))


def authorization(params: SigningParams, signature: bytes) -> str:
    """The Authorization header's value."""
    sig = base64.urlsafe_b64encode(signature).rstrip(b"=").decode()
    return f"{params.scheme} app_id={params.app_id},ts={params.timestamp},nonce={params.nonce},sig={sig}"
