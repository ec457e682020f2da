package io.kefu.protocol;

/**
 * The peer sent something the protocol does not allow: a malformed or oversized frame, an unknown critical type, a
 * record that does not authenticate. {@link #code()} is the wire code to report to the peer in ERROR (section 9);
 * the connection ends when that code is fatal ({@link ErrorCode#fatal()}).
 *
 * <p>Our own misuse of the API (a value that does not fit its field, a call in the wrong state) is not a
 * ProtocolException but an {@link IllegalArgumentException} or {@link IllegalStateException}.
 *
 * <p>Thread-safety: immutable once constructed.
 */
public class ProtocolException extends Exception {
    private static final long serialVersionUID = 1L;

    /** The wire code; never null. */
    private final ErrorCode code;

    /** What went wrong, for logs and for the reason of an ERROR. */
    private final String reason;

    /**
     * An error to report with {@code code}.
     *
     * @param code the wire code (section 9); not null
     * @param reason a short human-readable detail
     */
    public ProtocolException(ErrorCode code, String reason) {
        super(code.name() + " (" + code.code() + "): " + reason);
        this.code = code;
        this.reason = reason;
    }

    /**
     * The wire code to report to the peer.
     *
     * @return the code; never null
     */
    public ErrorCode code() {
        return code;
    }

    /**
     * The detail without the code, suitable as an ERROR frame's {@code reason}.
     *
     * @return the reason given at construction
     */
    public String reason() {
        return reason;
    }

    /**
     * Whether the connection must end after this error is reported.
     *
     * @return {@code code().fatal()}
     */
    public boolean fatal() {
        return code.fatal();
    }
}
