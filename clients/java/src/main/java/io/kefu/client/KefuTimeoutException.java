package io.kefu.client;

/**
 * An operation's own timeout passed.
 *
 * <p>Immutable and thread-safe.
 */
public class KefuTimeoutException extends KefuException {
    private static final long serialVersionUID = 1L;

    /**
     * The error.
     *
     * @param code the protocol's error code, or {@link KefuException#NO_CODE}
     * @param message what happened
     */
    public KefuTimeoutException(int code, String message) {
        super(code, message);
    }
}
