package io.kefu.client;

/**
 * The connection ended and the client will not reconnect (reconnect off, or a refusal that retrying cannot cure). {@link #code()} is the wire code that ended it, when there was one.
 *
 * <p>Immutable and thread-safe.
 */
public class ConnectionLostException extends KefuException {
    private static final long serialVersionUID = 1L;

    /**
     * The error.
     *
     * @param code the protocol's error code, or {@link KefuException#NO_CODE}
     * @param message what happened
     */
    public ConnectionLostException(int code, String message) {
        super(code, message);
    }
}
