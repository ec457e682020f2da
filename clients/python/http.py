"""Signed requests to kefu's HTTP integration API (spec section 17), with the standard library only.

::

    from kefu.client.http import ApiClient

    api = ApiClient("http://127.0.0.1:7423", app_id="bank-core", app_secret=SECRET)
    opened = api.post("/v1/conversations", {"customer": "c-1001", "client_ref": "loan-77", "first_message": "你好"})
    api.post("/v1/messages", {"conversation_id": opened["conversation_id"], "client_msg_id": "m-1", "text": "..."})

`Signer` alone makes the headers for any HTTP library (``signer.headers("POST", "/v1/messages", body)``): the
signature is the protocol's APP_SECRET proof over the request (`kefu.protocol.httpsig`), so the app's secret never
leaves the process and the server keeps only its verifier. A refused request raises `ApiRefused` with the server's
status, code and message.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from kefu.protocol.httpsig import SCHEMES, SigningParams, authorization, canonical_query, canonical_request, sign

from .options import decode_secret

__all__ = ["ApiClient", "ApiRefused", "Signer"]

DEFAULT_SCHEME = "KEFU-HMAC-SM3"
DEFAULT_TIMEOUT_S = 30.0


class Signer:
    """Makes the Authorization header of a request for one app."""

    def __init__(
        self,
        app_id: str,
        app_secret: bytes | str,
        *,
        scheme: str = DEFAULT_SCHEME,
        clock: Callable[[], float] = time.time,
        nonce: Callable[[], str] = lambda: secrets.token_urlsafe(18),
    ) -> None:
        if scheme not in SCHEMES:
            raise ValueError(f"scheme: one of {', '.join(SCHEMES)}")
        self.app_id, self.scheme = app_id, scheme
        self._secret = decode_secret(app_secret) if isinstance(app_secret, str) else app_secret
        self._clock, self._nonce = clock, nonce

    def authorization(self, method: str, target: str, body: bytes = b"") -> str:
        """The header's value for `method` on `target` (a path with its query, or a whole URL) with `body`."""
        parts = urlsplit(target)
        params = SigningParams(self.scheme, self.app_id, int(self._clock()), self._nonce())
        query = canonical_query(parse_qsl(parts.query, keep_blank_values=True))
        canonical = canonical_request(params, method, parts.path or "/", query, body)
        return authorization(params, sign(params, self._secret, canonical))

    def headers(self, method: str, target: str, body: bytes = b"") -> dict[str, str]:
        """Authorization (and Content-Type for a body) for a request."""
        headers = {"Authorization": self.authorization(method, target, body)}
        if body:
            headers["Content-Type"] = "application/json"
        return headers


class ApiRefused(Exception):
    """The API refused a request: its HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class ApiClient:
    """A blocking client of the API (urllib): JSON in, JSON out."""

    def __init__(
        self, base_url: str, app_id: str, app_secret: bytes | str, *, scheme: str = DEFAULT_SCHEME,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> None:  # fmt: skip
        self.base_url = base_url.rstrip("/")
        self.signer = Signer(app_id, app_secret, scheme=scheme)
        self.timeout = timeout

    def request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None, query: Mapping[str, Any] | None = None
    ) -> Any:
        """The decoded JSON answer; ApiRefused if the status is 400 or above."""
        target = path + ("?" + urlencode({k: str(v) for k, v in query.items()}) if query else "")
        data = json.dumps(body).encode() if body is not None else b""
        request = urllib.request.Request(  # noqa: S310 - the caller's API URL
            self.base_url + target, data=data or None, method=method, headers=self.signer.headers(method, target, data)
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error = json.loads(raw)["error"]
                raise ApiRefused(exc.code, str(error["code"]), str(error["message"])) from None
            except (ValueError, KeyError, TypeError):
                raise ApiRefused(exc.code, "HTTP_ERROR", raw[:200].decode(errors="replace")) from None

    def get(self, path: str, **query: Any) -> Any:
        """GET `path` with `query`."""
        return self.request("GET", path, query=query or None)

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """POST `body` to `path`."""
        return self.request("POST", path, body if body is not None else {})

    def put(self, path: str, body: Mapping[str, Any]) -> Any:
        """PUT `body` to `path`."""
        return self.request("PUT", path, body)

    def delete(self, path: str) -> Any:
        """DELETE `path`."""
        return self.request("DELETE", path)
