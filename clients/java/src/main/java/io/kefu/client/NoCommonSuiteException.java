package io.kefu.client;

/**
 * The server supports none of the offered suites (the client never offers weaker ones on its own).
 *
 * <p>Immutable and thread-safe.
 */
public class NoCommonSuiteException extends ConnectException {
    private static final long serialVersionUID = 1L;

    /**
     * The error.
     *
     * @param code the protocol's error code, or {@link KefuException#NO_CODE}
     * @param message what happened
     */
    public NoCommonSuiteException(int code, String message) {
        super(code, message);
    }
}
