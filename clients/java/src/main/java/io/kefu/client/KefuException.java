package io.kefu.client;

/**
 * Root of everything the kefu client throws on its own, unchecked (the futures of the API carry them too).
 *
 * <pre>
 * KefuException
 * ├── ConnectException             no connection: refused, unreachable or a failed handshake; code() is the
 * │   │                            wire code, or -1 when the failure was below the protocol (TCP)
 * │   ├── AuthFailedException      AUTH_FAILED: unknown app id, wrong secret, revoked app
 * │   ├── ServerNotTrustedException the server did not prove a pinned key (or tampering was detected)
 * │   ├── NoCommonSuiteException   the server accepts none of the configured suites
 * │   ├── ServerBusyException      refused for load (GOAWAY with OVERLOADED)
 * │   └── ConnectTimeoutException  TCP connect plus handshake took longer than the connect timeout
 * ├── ConnectionLostException      the connection ended and the client will not reconnect
 * │   └── CredentialsRefusedException  the server ended the session with AUTH_FAILED and refused it again
 * ├── ClientClosedException        the client was closed while the operation waited
 * ├── RequestRefusedException      the server answered a request with an error code
 * │   └── SendRefusedException     a SEND_ACK with a nonzero status: the message was not stored
 * └── KefuTimeoutException         an operation's own timeout passed
 *     └── SendTimeoutException     carries the client message id, to retry the very same message later
 * </pre>
 *
 * <p>Protocol violations by the server never reach the caller directly: the core answers them with ERROR and
 * closes, and the client treats that like any other connection loss. Immutable and thread-safe.
 */
public class KefuException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    /** The wire code of an error that had none (a failure below the protocol). */
    public static final int NO_CODE = -1;

    /** The wire code, or NO_CODE. */
    private final int code;

    /**
     * An error with a wire code.
     *
     * @param code the protocol's error code, or {@link #NO_CODE}
     * @param message what happened
     */
    public KefuException(int code, String message) {
        super(message);
        this.code = code;
    }

    /**
     * An error with a wire code and a cause.
     *
     * @param code the protocol's error code, or {@link #NO_CODE}
     * @param message what happened
     * @param cause what caused it
     */
    public KefuException(int code, String message, Throwable cause) {
        super(message, cause);
        this.code = code;
    }

    /**
     * The protocol's error code (spec/errors.toml), or {@link #NO_CODE} when there was none.
     *
     * @return the wire code
     */
    public int code() {
        return code;
    }

    /**
     * The name of {@link #code()} as the spec spells it ("AUTH_FAILED"), "UNKNOWN" for a code this client does not
     * know and "" when there is no code.
     *
     * @return the code's name
     */
    public String codeName() {
        return code == NO_CODE ? "" : Codes.name(code);
    }
}
