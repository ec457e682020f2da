package io.kefu.protocol;

import java.util.Optional;

// GENERATED from spec/errors.toml by spec/gen_codes.py: do not edit.

/**
 * Every wire error code (spec/PROTOCOL.md section 9): the {@code u16} values of ERROR, CLOSE and GOAWAY's
 * {@code code} and of SEND_ACK's and RESULT's {@code status}.
 *
 * <p>Frames carry codes as plain {@code int}s, because a peer may send a code this version does not know.
 * {@link #of(int)} maps a wire value to a constant and gives empty for an unknown one; {@link #isFatalCode(int)}
 * applies section 4.7's rule to any value (an unknown code in 400-499 is a non-fatal request error, any other
 * unknown code is fatal and reported as INTERNAL_ERROR, see {@link #orInternalError(int)}).
 *
 * <p>Thread-safety: an enum; immutable and safe to share between threads.
 */
public enum ErrorCode {
    /** Success; also the code of a clean CLOSE. */
    OK(0, false,
            "Success; also the code of a clean CLOSE."),
    /** A frame body does not parse as its type's structure (too short, a length past the end, bad UTF-8). */
    MALFORMED_FRAME(100, true,
            "A frame body does not parse as its type's structure (too short, a length past the end, bad "
                + "UTF-8)."),
    /** A frame header declares a body longer than the limit for its type (rejected before the body is read). */
    FRAME_TOO_LARGE(101, true,
            "A frame header declares a body longer than the limit for its type (rejected before the body is "
                + "read)."),
    /** The header's protocol version is not 1. */
    UNSUPPORTED_VERSION(102, true,
            "The header's protocol version is not 1."),
    /** A frame type in the critical range (0x00-0x7F) that the receiver does not know. */
    UNKNOWN_FRAME_TYPE(103, true,
            "A frame type in the critical range (0x00-0x7F) that the receiver does not know."),
    /** A known frame that is not allowed in the receiver's role and state. */
    UNEXPECTED_FRAME(104, true,
            "A known frame that is not allowed in the receiver's role and state."),
    /** A record's plaintext ends inside a frame, is empty, or a RECORD frame appears inside a record. */
    RECORD_FRAGMENT(105, true,
            "A record's plaintext ends inside a frame, is empty, or a RECORD frame appears inside a record."),
    /** The stream ended in the middle of a frame, during the handshake, or without a CLOSE after it. */
    TRUNCATED(106, true,
            "The stream ended in the middle of a frame, during the handshake, or without a CLOSE after it."),
    /** The handshake failed for a reason without a more specific code. */
    HANDSHAKE_FAILURE(200, true,
            "The handshake failed for a reason without a more specific code."),
    /** The server supports none of the suites the client offered. */
    NO_COMMON_SUITE(201, true,
            "The server supports none of the suites the client offered."),
    /** A key share is missing, of the wrong length, or not a valid point of its group. */
    BAD_KEY_SHARE(202, true,
            "A key share is missing, of the wrong length, or not a valid point of its group."),
    /** The server's (or client key's) signature over the transcript does not verify. */
    BAD_SIGNATURE(203, true,
            "The server's (or client key's) signature over the transcript does not verify."),
    /** The server proved a key whose fingerprint the client has not pinned. */
    SERVER_KEY_NOT_PINNED(204, true,
            "The server proved a key whose fingerprint the client has not pinned."),
    /** A Finished MAC over the transcript does not verify. */
    BAD_FINISHED(205, true,
            "A Finished MAC over the transcript does not verify."),
    /**
     * Unknown app id, wrong app secret proof, unregistered client key, or revoked app; the reason on the wire is
     * always "authentication failed" (section 5.5). Also ends the live sessions of an app revoked, or of a client key
     * retired, while they run.
     */
    AUTH_FAILED(206, true,
            "Unknown app id, wrong app secret proof, unregistered client key, or revoked app; the reason on "
                + "the wire is always \"authentication failed\" (section 5.5). Also ends the live sessions of an app "
                + "revoked, or of a client key retired, while they run."),
    /** A resumption binder does not verify. */
    BAD_BINDER(207, true,
            "A resumption binder does not verify."),
    /**
     * A resumption ticket is malformed, expired, already used, or for another suite, and no key share allows a full
     * handshake.
     */
    TICKET_REJECTED(208, true,
            "A resumption ticket is malformed, expired, already used, or for another suite, and no key share "
                + "allows a full handshake."),
    /** The server chose a suite the client did not offer. */
    DOWNGRADE_DETECTED(209, true,
            "The server chose a suite the client did not offer."),
    /** The handshake did not complete before the deadline (either side enforces one). */
    HANDSHAKE_TIMEOUT(210, true,
            "The handshake did not complete before the deadline (either side enforces one)."),
    /** A record failed authentication (wrong key, tampered, replayed or reordered). */
    BAD_RECORD_MAC(300, true,
            "A record failed authentication (wrong key, tampered, replayed or reordered)."),
    /** The peer sent more records or bytes under one key than the limit without a KEY_UPDATE. */
    KEY_LIMIT_EXCEEDED(301, true,
            "The peer sent more records or bytes under one key than the limit without a KEY_UPDATE."),
    /** A local known-answer self-test of the cryptography failed; the implementation refuses to run. */
    CRYPTO_SELF_TEST_FAILED(302, true,
            "A local known-answer self-test of the cryptography failed; the implementation refuses to run."),
    /**
     * A request is well formed but its values are not acceptable (for example an empty body, conversation 0, or a SEND
     * of content type EVENT, which only the server writes).
     */
    BAD_REQUEST(400, false,
            "A request is well formed but its values are not acceptable (for example an empty body, "
                + "conversation 0, or a SEND of content type EVENT, which only the server writes)."),
    /** The request needs an identity the connection does not have. */
    UNAUTHORIZED(401, false,
            "The request needs an identity the connection does not have."),
    /**
     * The connection's identity may not act on this conversation or resource, though it may know of it (otherwise
     * NOT_FOUND).
     */
    FORBIDDEN(403, false,
            "The connection's identity may not act on this conversation or resource, though it may know of it"
                + " (otherwise NOT_FOUND)."),
    /**
     * The conversation, message or resource does not exist, or the connection's identity may not know of it; the two
     * are not told apart.
     */
    NOT_FOUND(404, false,
            "The conversation, message or resource does not exist, or the connection's identity may not know "
                + "of it; the two are not told apart."),
    /** The request conflicts with the current state (for example a lost transfer race). */
    CONFLICT(409, false,
            "The request conflicts with the current state (for example a lost transfer race)."),
    /** A message body exceeds the server's configured limit (metadata does not count). */
    MESSAGE_TOO_LARGE(413, false,
            "A message body exceeds the server's configured limit (metadata does not count)."),
    /** A per-connection or per-app rate limit was exceeded; retry after backing off. */
    RATE_LIMITED(429, false,
            "A per-connection or per-app rate limit was exceeded; retry after backing off."),
    /** The server failed unexpectedly while handling this connection. */
    INTERNAL_ERROR(500, true,
            "The server failed unexpectedly while handling this connection."),
    /** The server is draining; reconnect as the GOAWAY says. */
    SHUTTING_DOWN(503, false,
            "The server is draining; reconnect as the GOAWAY says."),
    /** No traffic for 1.5 times the negotiated keepalive interval. */
    KEEPALIVE_TIMEOUT(504, true,
            "No traffic for 1.5 times the negotiated keepalive interval."),
    /**
     * A connection, buffer or handshake limit of the server was reached; a handshake refused for load gets it in a
     * plaintext GOAWAY that says when to retry (section 5.9).
     */
    OVERLOADED(505, true,
            "A connection, buffer or handshake limit of the server was reached; a handshake refused for load "
                + "gets it in a plaintext GOAWAY that says when to retry (section 5.9)."),
    /** The write-ahead log could not make the message durable; it was not acknowledged. */
    STORAGE_UNAVAILABLE(507, false,
            "The write-ahead log could not make the message durable; it was not acknowledged.");

    private final int code;
    private final boolean fatal;
    private final String description;

    ErrorCode(int code, boolean fatal, String description) {
        this.code = code;
        this.fatal = fatal;
        this.description = description;
    }

    /**
     * The value on the wire.
     *
     * @return the code, 0 to 65535
     */
    public int code() {
        return code;
    }

    /**
     * Whether the sender of this code closes the connection after sending it (section 4.7).
     *
     * @return true for a fatal code
     */
    public boolean fatal() {
        return fatal;
    }

    /**
     * The meaning of the code, as spec/errors.toml states it.
     *
     * @return one or two sentences of English
     */
    public String description() {
        return description;
    }

    /**
     * The constant of a wire value.
     *
     * @param code a wire value
     * @return the constant, or empty when this version does not define {@code code}
     */
    public static Optional<ErrorCode> of(int code) {
        for (ErrorCode c : values()) {
            if (c.code == code) {
                return Optional.of(c);
            }
        }
        return Optional.empty();
    }

    /**
     * The constant of a wire value received in an ERROR, with section 4.7's rule for unknown values: an unknown
     * code is reported as INTERNAL_ERROR. (Check {@link #isFatalCode(int)} first: an unknown code in 400-499 is a
     * non-fatal request error that the caller passes on with its number.)
     *
     * @param code a wire value
     * @return its constant, or {@link #INTERNAL_ERROR} when unknown
     */
    public static ErrorCode orInternalError(int code) {
        return of(code).orElse(INTERNAL_ERROR);
    }

    /**
     * Whether an ERROR carrying this wire value ends the connection (section 4.7): a known code's {@link #fatal()};
     * an unknown code in 400-499 is a non-fatal request error; any other unknown code is fatal.
     *
     * @param code a wire value
     * @return true if the connection ends
     */
    public static boolean isFatalCode(int code) {
        return of(code).map(ErrorCode::fatal).orElse(code < 400 || code > 499);
    }
}
