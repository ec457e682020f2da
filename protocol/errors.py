"""One error tree for the protocol core, split by whose fault it is.

::

    ProtocolError                   root: anything the core refuses
    ├── LocalProtocolError          our own misuse of the API (a bug in the caller); never sent on the wire
    ├── RemoteProtocolError         the peer's fault; carries the wire code that is sent back in ERROR
    │   └── CryptoError             authentication of a record, signature, MAC, binder or key share failed
    └── CryptoSelfTestError         a known-answer self-test failed at import; the implementation refuses to run

Adapters (server, client) add their own leaves — ConnectionClosed, Timeout, storage errors — under
ProtocolError or their own roots. Wire codes come from spec/errors.toml through the generated module
`codes` (spec/PROTOCOL.md section 9).
"""

from __future__ import annotations

from .codes import FATAL_CODES, ErrorCode

__all__ = [
    "CryptoError",
    "CryptoSelfTestError",
    "ErrorCode",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]


class ProtocolError(Exception):
    """Root of every error the protocol core raises."""


class LocalProtocolError(ProtocolError):
    """The caller used the core wrongly (wrong state, invalid argument). A bug on our side."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid; `code` is the wire error code to report to it."""

    def __init__(self, code: ErrorCode, reason: str, *, detail: str = "") -> None:
        super().__init__(f"{code.name} ({int(code)}): {detail or reason}")
        self.code = code
        self.reason = reason
        self.detail = detail
        """What this side logs when it says less on the wire than it knows (why authentication failed)."""

    @property
    def fatal(self) -> bool:
        """True when the connection must be closed after reporting this error."""
        return self.code in FATAL_CODES


class CryptoError(RemoteProtocolError):
    """A cryptographic check on data from the peer failed."""


class CryptoSelfTestError(ProtocolError):
    """A known-answer self-test failed: the cryptographic implementation is not trustworthy."""
