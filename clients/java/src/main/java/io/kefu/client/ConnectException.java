package io.kefu.client;

/**
 * A connection could not be established: refused, unreachable or a failed handshake. {@link #code()} is the wire code, or {@link KefuException#NO_CODE} below the protocol.
 *
 * <p>Immutable and thread-safe.
 */
public class ConnectException extends KefuException {
    private static final long serialVersionUID = 1L;

    /**
     * The error.
     *
     * @param code the protocol's error code, or {@link KefuException#NO_CODE}
     * @param message what happened
     */
    public ConnectException(int code, String message) {
        super(code, message);
    }
}
