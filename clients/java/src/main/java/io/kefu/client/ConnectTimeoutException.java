package io.kefu.client;

/**
 * The TCP connect plus the handshake took longer than the client's connect timeout.
 *
 * <p>Immutable and thread-safe.
 */
public class ConnectTimeoutException extends ConnectException {
    private static final long serialVersionUID = 1L;

    /**
     * The error.
     *
     * @param message what happened
     */
    public ConnectTimeoutException(String message) {
        super(NO_CODE, message);
    }
}
