package io.kefu.client;

/**
 * The client was closed (or never connected) while the operation waited.
 *
 * <p>Immutable and thread-safe.
 */
public class ClientClosedException extends KefuException {
    private static final long serialVersionUID = 1L;

    /**
     * The error.
     *
     * @param message what happened
     */
    public ClientClosedException(String message) {
        super(NO_CODE, message);
    }
}
