"""Which web pages may use the web port: the Origin policy of [web] allowed_origins (spec section 15.4).

A browser names the page a request comes from in its Origin header; other clients send none. A request without
Origin is allowed (a non-browser client can claim any origin anyway: the policy protects users' browsers, not the
server). A request with one is allowed when the origin is the page's own (its host and port are the request's
Host) or listed in allowed_origins; any other gets 403 before anything is done for it, the WebSocket upgrade
included. Origins compare as scheme://host[:port], lower-cased, the scheme's default port left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

__all__ = ["OriginPolicy", "normalise_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def normalise_origin(origin: str) -> str | None:
    """`origin` as scheme://host[:port] (lower case, no default port), or None if it is not an origin."""
    text = origin.strip().lower()
    if text == "null":
        return "null"
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") or parts.query:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if port is None or port == _DEFAULT_PORTS[parts.scheme]:
        return f"{parts.scheme}://{host}"
    return f"{parts.scheme}://{host}:{port}"


class OriginPolicy:
    """allowed_origins, normalised once."""

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(n for o in allowed if (n := normalise_origin(o)) is not None)

    def allows(self, origin: str | None, host: str | None) -> bool:
        """May a request with this Origin header (None: none) to this Host header go on?"""
        if origin is None:
            return True
        normal = normalise_origin(origin)
        if normal is None:
            return False
        return normal in self.allowed or self.same_origin(normal, host)

    def cross_origin(self, origin: str | None, host: str | None) -> bool:
        """An allowed origin that is not the page's own (the response then names it for CORS)."""
        if origin is None:
            return False
        normal = normalise_origin(origin)
        return normal is not None and normal in self.allowed and not self.same_origin(normal, host)

    @staticmethod
    def same_origin(origin: str, host: str | None) -> bool:
        """The origin's host and port are the request's Host (the origin scheme's default port where either names
        none). The scheme is not compared: behind a proxy that ends TLS the request itself is plain HTTP."""
        if not host or "://" not in origin:
            return False
        scheme = origin.split("://", 1)[0]
        return normalise_origin(f"{scheme}://{host}") == origin
