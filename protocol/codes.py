"""Wire error codes (spec/PROTOCOL.md section 9).

GENERATED from spec/errors.toml by spec/gen_codes.py: do not edit.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Every error code that may appear in an ERROR, CLOSE, SEND_ACK or GOAWAY frame."""

    OK = 0
    """Success; also the code of a clean CLOSE."""

    MALFORMED_FRAME = 100
    """A frame body does not parse as its type's structure (too short, a length past the end, bad UTF-8)."""

    FRAME_TOO_LARGE = 101
    """A frame header declares a body longer than the limit for its type (rejected before the body is read)."""

    UNSUPPORTED_VERSION = 102
    """The header's protocol version is not 1."""

    UNKNOWN_FRAME_TYPE = 103
    """A frame type in the critical range (0x00-0x7F) that the receiver does not know."""

    UNEXPECTED_FRAME = 104
    """A known frame that is not allowed in the receiver's role and state."""

    RECORD_FRAGMENT = 105
    """A record's plaintext ends inside a frame, is empty, or a RECORD frame appears inside a record."""

    TRUNCATED = 106
    """The stream ended in the middle of a frame, during the handshake, or without a CLOSE after it."""

    HANDSHAKE_FAILURE = 200
    """The handshake failed for a reason without a more specific code."""

    NO_COMMON_SUITE = 201
    """The server supports none of the suites the client offered."""

    BAD_KEY_SHARE = 202
    """A key share is missing, of the wrong length, or not a valid point of its group."""

    BAD_SIGNATURE = 203
    """The server's (or client key's) signature over the transcript does not verify."""

    SERVER_KEY_NOT_PINNED = 204
    """The server proved a key whose fingerprint the client has not pinned."""

    BAD_FINISHED = 205
    """A Finished MAC over the transcript does not verify."""

    AUTH_FAILED = 206
    """Unknown app id, wrong app secret proof, unregistered client key, or revoked app; the reason on the wire is always "authentication failed" (section 5.5). Also ends the live sessions of an app revoked, or of a client key retired, while they run."""

    BAD_BINDER = 207
    """A resumption binder does not verify."""

    TICKET_REJECTED = 208
    """A resumption ticket is malformed, expired, already used, or for another suite, and no key share allows a full handshake."""

    DOWNGRADE_DETECTED = 209
    """The server chose a suite the client did not offer."""

    HANDSHAKE_TIMEOUT = 210
    """The handshake did not complete before the deadline (either side enforces one)."""

    BAD_RECORD_MAC = 300
    """A record failed authentication (wrong key, tampered, replayed or reordered)."""

    KEY_LIMIT_EXCEEDED = 301
    """The peer sent more records or bytes under one key than the limit without a KEY_UPDATE."""

    CRYPTO_SELF_TEST_FAILED = 302
    """A local known-answer self-test of the cryptography failed; the implementation refuses to run."""

    BAD_REQUEST = 400
    """A request is well formed but its values are not acceptable (for example an empty body, conversation 0, or a SEND of content type EVENT, which only the server writes)."""

    UNAUTHORIZED = 401
    """The request needs an identity the connection does not have."""

    FORBIDDEN = 403
    """The connection's identity may not act on this conversation or resource, though it may know of it (otherwise NOT_FOUND)."""

    NOT_FOUND = 404
    """The conversation, message or resource does not exist, or the connection's identity may not know of it; the two are not told apart."""

    CONFLICT = 409
    """The request conflicts with the current state (for example a lost transfer race)."""

    MESSAGE_TOO_LARGE = 413
    """A message body exceeds the server's configured limit (metadata does not count)."""

    RATE_LIMITED = 429
    """A per-connection or per-app rate limit was exceeded; retry after backing off."""

    INTERNAL_ERROR = 500
    """The server failed unexpectedly while handling this connection."""

    SHUTTING_DOWN = 503
    """The server is draining; reconnect as the GOAWAY says."""

    KEEPALIVE_TIMEOUT = 504
    """No traffic for 1.5 times the negotiated keepalive interval."""

    OVERLOADED = 505
    """A connection, buffer or handshake limit of the server was reached; a handshake refused for load gets it in a plaintext GOAWAY that says when to retry (section 5.9)."""

    STORAGE_UNAVAILABLE = 507
    """The write-ahead log could not make the message durable; it was not acknowledged."""


#: Codes after which the sender closes the connection.
FATAL_CODES: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.AUTH_FAILED,
        ErrorCode.BAD_BINDER,
        ErrorCode.BAD_FINISHED,
        ErrorCode.BAD_KEY_SHARE,
        ErrorCode.BAD_RECORD_MAC,
        ErrorCode.BAD_SIGNATURE,
        ErrorCode.CRYPTO_SELF_TEST_FAILED,
        ErrorCode.DOWNGRADE_DETECTED,
        ErrorCode.FRAME_TOO_LARGE,
        ErrorCode.HANDSHAKE_FAILURE,
        ErrorCode.HANDSHAKE_TIMEOUT,
        ErrorCode.INTERNAL_ERROR,
        ErrorCode.KEEPALIVE_TIMEOUT,
        ErrorCode.KEY_LIMIT_EXCEEDED,
        ErrorCode.MALFORMED_FRAME,
        ErrorCode.NO_COMMON_SUITE,
        ErrorCode.OVERLOADED,
        ErrorCode.RECORD_FRAGMENT,
        ErrorCode.SERVER_KEY_NOT_PINNED,
        ErrorCode.TICKET_REJECTED,
        ErrorCode.TRUNCATED,
        ErrorCode.UNEXPECTED_FRAME,
        ErrorCode.UNKNOWN_FRAME_TYPE,
        ErrorCode.UNSUPPORTED_VERSION,
    }
)
