"""What the client library raises, split by cause.

::

    ProtocolError (kefu.protocol.errors)
    └── ClientError                   anything kefu.client raises on its own
        ├── ConnectError              no connection: refused, unreachable or failed handshake; `code` is the
        │   │  (OSError)              wire code (None when the failure was below the protocol, e.g. TCP)
        │   ├── AuthFailed            AUTH_FAILED: unknown app id, wrong secret or key, revoked app
        │   ├── ServerNotTrusted      the server failed to prove a pinned key (SERVER_KEY_NOT_PINNED,
        │   │                         BAD_SIGNATURE, BAD_FINISHED, DOWNGRADE_DETECTED)
        │   ├── NoCommonSuite         NO_COMMON_SUITE: the server accepts none of the configured suites
        │   └── ConnectTimeout        TCP connect and handshake took longer than `connect_timeout`
        ├── ConnectionLost            the connection ended and the client will not reconnect; `code` is the
        │   │  (ConnectionError)      wire code that ended it, when there was one
        │   └── CredentialsRefused    the server ended the session with AUTH_FAILED (app revoked, client key
        │                             retired) and refused to authenticate the app again
        ├── ClientClosed              the client was closed while the operation waited
        ├── RequestRefused            the server answered a request with an error code (`code`)
        │   └── SendRefused           a SEND_ACK with a nonzero status: FORBIDDEN, NOT_FOUND, ...
        └── Timeout (TimeoutError)    an operation's own `timeout` passed
            └── SendTimeout           carries `client_msg_id`, to retry the very same message later

Connection failures are OSErrors, as the standard library's own are: ConnectError is an OSError, ConnectionLost a
ConnectionError and every Timeout a TimeoutError (an OSError too), so ``except OSError`` around network code catches
them. Their `errno` is None.

Protocol violations by the server never reach the caller directly: the core answers them with ERROR and
closes, and the client treats that like any other connection loss (reconnecting when it may).
"""

from __future__ import annotations

from kefu.protocol.errors import ErrorCode, ProtocolError

__all__ = [
    "AuthFailed",
    "ClientClosed",
    "ClientError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "CredentialsRefused",
    "NoCommonSuite",
    "RequestRefused",
    "SendRefused",
    "SendTimeout",
    "ServerBusy",
    "ServerNotTrusted",
    "Timeout",
    "connect_error",
]


class ClientError(ProtocolError):
    """Root of the errors raised by kefu.client."""


class ConnectError(ClientError, OSError):
    """A connection could not be established. `code` is the wire error code, or None below the protocol."""

    def __init__(self, code: ErrorCode | None, reason: str) -> None:
        label = f"{code.name} ({int(code)})" if code is not None else "connect failed"
        super().__init__(f"{label}: {reason}")
        self.code = code
        self.reason = reason


class AuthFailed(ConnectError):
    """The server refused the app's credentials (AUTH_FAILED)."""


class ServerNotTrusted(ConnectError):
    """The server did not prove a pinned key, or tampering with the handshake was detected."""


class NoCommonSuite(ConnectError):
    """The server supports none of the offered suites (the client never offers weaker ones on its own)."""


class ServerBusy(ConnectError):
    """The server refused the handshake for load (a GOAWAY with OVERLOADED, spec section 5.9). `connect()` retries it
    after the server's delay while its connect timeout allows, and reconnecting always does."""


class Timeout(ClientError, TimeoutError):
    """An operation's timeout passed."""


class ConnectTimeout(ConnectError, Timeout):
    """The TCP connect plus handshake took longer than the client's `connect_timeout`."""

    def __init__(self, reason: str) -> None:
        super().__init__(None, reason)


class SendTimeout(Timeout):
    """send() gave up waiting; the message may or may not be stored. Retry with the same `client_msg_id`."""

    def __init__(self, client_msg_id: bytes) -> None:
        super().__init__(f"no SEND_ACK for client_msg_id {client_msg_id.hex()} in time")
        self.client_msg_id = client_msg_id


class ConnectionLost(ClientError, ConnectionError):
    """The connection ended and the client will not reconnect (reconnect=False, or a fatal refusal). `code` is the
    wire code that ended the connection or refused the reconnection, None when there was none."""

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class CredentialsRefused(ConnectionLost):
    """The server ended the session with AUTH_FAILED (the app was revoked, or the client key it authenticated with
    was retired) and refused to authenticate the app again: reconnecting cannot help until an operator acts."""


class ClientClosed(ClientError):
    """close() was called (or the client was never connected) while the operation waited."""


class RequestRefused(ClientError):
    """The server refused a request; `code` is its wire error code."""

    def __init__(self, code: ErrorCode | int, reason: str = "") -> None:
        known = ErrorCode(code) if code in ErrorCode._value2member_map_ else None
        name = known.name if known is not None else "UNKNOWN"
        super().__init__(f"{name} ({int(code)}){': ' + reason if reason else ''}")
        self.code: ErrorCode | int = known if known is not None else int(code)
        self.reason = reason


class SendRefused(RequestRefused):
    """The server refused a SEND (SEND_ACK status); the message was not stored."""


_CONNECT_ERRORS: dict[ErrorCode, type[ConnectError]] = {
    ErrorCode.AUTH_FAILED: AuthFailed,
    ErrorCode.SERVER_KEY_NOT_PINNED: ServerNotTrusted,
    ErrorCode.BAD_SIGNATURE: ServerNotTrusted,
    ErrorCode.BAD_FINISHED: ServerNotTrusted,
    ErrorCode.DOWNGRADE_DETECTED: ServerNotTrusted,
    ErrorCode.NO_COMMON_SUITE: NoCommonSuite,
    ErrorCode.OVERLOADED: ServerBusy,
}
"""Handshake failures with a class of their own; any other code is a plain ConnectError."""

NOT_RETRIED = frozenset({ErrorCode.AUTH_FAILED, ErrorCode.NO_COMMON_SUITE, ErrorCode.SERVER_KEY_NOT_PINNED})
"""Handshake failures that reconnecting cannot cure (configuration, not weather): the client stops."""

REAUTHENTICATE = frozenset({ErrorCode.AUTH_FAILED})
"""Codes with which the server ends an established session when an operator revokes the app, retires its client key
or ends its sessions: the client authenticates again at once, without its ticket, and stops if that is refused."""


def connect_error(code: ErrorCode | None, reason: str) -> ConnectError:
    """The ConnectError subclass for a handshake that ended with `code`."""
    cls = _CONNECT_ERRORS.get(code, ConnectError) if code is not None else ConnectError
    return cls(code, reason)
