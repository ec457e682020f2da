package io.kefu.client;

/**
 * The server refused a request; {@link #code()} is its wire error code, {@link #reason()} its explanation.
 *
 * <p>Immutable and thread-safe.
 */
public class RequestRefusedException extends KefuException {
    private static final long serialVersionUID = 1L;

    /** The server's reason. */
    private final String reason;

    /**
     * The refusal.
     *
     * @param code the protocol's error code
     * @param reason the server's reason ("" when it gave none)
     */
    public RequestRefusedException(int code, String reason) {
        super(code, Codes.name(code) + " (" + code + ")" + (reason.isEmpty() ? "" : ": " + reason));
        this.reason = reason;
    }

    /**
     * The server's reason.
     *
     * @return the reason, "" when the server gave none
     */
    public String reason() {
        return reason;
    }
}
