"""Who made an HTTP API request (spec section 17.2): a request signed with the app's secret, or a staff session
credential as a bearer.

Theory of operation. The server keeps no app secret, only its verifiers (spec 5.5: StoredKey = Hash(ClientKey) per
hash). A signed request therefore carries the same kind of proof as the protocol's APP_SECRET handshake, over a
canonical string of the request instead of the handshake transcript::

    covered   = Hash(canonical request)                      (Hash: SM3 or SHA-256, by the scheme)
    signature = ClientKey XOR HMAC(StoredKey, covered)        (32 bytes, base64url in the header)

The server recovers ClientKey' = signature XOR HMAC(StoredKey, covered) and accepts when Hash(ClientKey') equals
StoredKey, in constant time (`kefu.protocol.handshake.check_app_proof`). So no new secret exists to issue, store or
leak: a stolen store gives verifiers, as before, and a request's signature is bound to its method, path, query,
timestamp, nonce and body.

Replay: the timestamp must be within ``[api] replay_window_s`` of the server's clock, and a (app, nonce) pair is
accepted once: it is remembered for twice the window from its arrival (`NonceCache`, bounded; when full of live
nonces new signed requests are refused with 503 rather than forgetting one early, which would let it be replayed).
A nonce is remembered only after its signature checked, so garbage cannot fill the cache.

An unknown app and a wrong signature get the same answer (401 AUTH_FAILED), as in the protocol (spec 5.5), so that
the API does not tell anyone which app ids exist.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from kefu.protocol import crypto
from kefu.protocol.handshake import check_app_proof
from kefu.protocol.httpsig import SCHEMES, SigningParams

from ..identity.keys import AppRecord
from .context import ApiError

__all__ = [
    "MAX_NONCES",
    "NonceCache",
    "SignedRequest",
    "check_signature",
    "parse_authorization",
]

MAX_NONCES = 200_000
"""Nonces remembered at most (about 100 bytes each: some 20 MiB). At the default window (300 s, remembered 600 s) it
allows a sustained 330 signed requests per second; past it new requests wait for old nonces to expire (503)."""
_NONCE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
_PARAM = re.compile(r"\s*([a-z_]+)=([^,]*)\s*(?:,|$)")
SIGNATURE_LEN = 32


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """The parameters of a signed request's Authorization header."""

    scheme: str
    app_id: str
    timestamp: int
    nonce: str
    signature: bytes

    @property
    def params(self) -> SigningParams:
        """What the signature covers besides the request."""
        return SigningParams(self.scheme, self.app_id, self.timestamp, self.nonce)

    @property
    def hash_name(self) -> str:
        """ "sm3" or "sha256"."""
        return SCHEMES[self.scheme]


def parse_authorization(value: str) -> SignedRequest:
    """`KEFU-HMAC-SM3 app_id=...,ts=...,nonce=...,sig=...` (or KEFU-HMAC-SHA256); ApiError 401 MALFORMED_AUTHORIZATION
    if it is not one."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme not in SCHEMES:
        raise ApiError(401, "MALFORMED_AUTHORIZATION", f"unknown scheme; use one of {', '.join(SCHEMES)}")
    params = dict(_PARAM.findall(rest))
    try:
        app_id, nonce = params["app_id"], params["nonce"]
        timestamp = int(params["ts"])
        signature = base64.urlsafe_b64decode(params["sig"] + "=" * (-len(params["sig"]) % 4))
    except (KeyError, ValueError):
        raise ApiError(401, "MALFORMED_AUTHORIZATION", "need app_id, ts, nonce and sig") from None
    if not app_id or not _NONCE.match(nonce) or len(signature) != SIGNATURE_LEN:
        raise ApiError(401, "MALFORMED_AUTHORIZATION", "nonce: 16-64 of [A-Za-z0-9_-]; sig: 32 bytes base64url")
    return SignedRequest(scheme, app_id, timestamp, nonce, signature)


def check_signature(signed: SignedRequest, record: AppRecord | None, canonical: bytes) -> bool:
    """Whether the signature proves knowledge of the app's secret (constant time; an unknown app is checked against
    a dummy verifier so that it costs the same)."""
    stored = _DUMMY if record is None else {"sm3": record.stored_key_sm3, "sha256": record.stored_key_sha256}
    covered = crypto.hash_digest(signed.hash_name, canonical)
    ok = check_app_proof(signed.hash_name, stored[signed.hash_name], signed.signature, covered)
    return ok and record is not None


_DUMMY = {"sm3": bytes(32), "sha256": bytes(32)}


class NonceCache:
    """(app, nonce) pairs seen within twice the replay window, oldest first (bounded by `limit`)."""

    def __init__(self, limit: int = MAX_NONCES, clock: Callable[[], float] = time.monotonic) -> None:
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._limit, self._clock = limit, clock

    def __len__(self) -> int:
        return len(self._seen)

    def claim(self, app_id: str, nonce: str, keep_s: float) -> None:
        """Remember the pair for `keep_s`; ApiError 401 REPLAYED_NONCE if it is remembered already, 503 BUSY if the
        cache is full of pairs still remembered."""
        now = self._clock()
        seen = self._seen
        while seen and next(iter(seen.values())) <= now:
            seen.popitem(last=False)
        key = hashlib.sha256(f"{app_id}\0{nonce}".encode()).digest()
        if key in seen:
            raise ApiError(401, "REPLAYED_NONCE", "this nonce was used already")
        if len(seen) >= self._limit:
            raise ApiError(503, "BUSY", "too many signed requests in the replay window; retry later")
        seen[key] = now + keep_s
