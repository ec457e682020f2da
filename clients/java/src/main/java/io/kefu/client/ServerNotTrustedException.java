package io.kefu.client;

/**
 * The server did not prove a pinned key, or tampering with the handshake was detected (SERVER_KEY_NOT_PINNED, BAD_SIGNATURE, BAD_FINISHED, DOWNGRADE_DETECTED).
 *
 * <p>Immutable and thread-safe.
 */
public class ServerNotTrustedException extends ConnectException {
    private static final long serialVersionUID = 1L;

    /**
     * The error.
     *
     * @param code the protocol's error code, or {@link KefuException#NO_CODE}
     * @param message what happened
     */
    public ServerNotTrustedException(int code, String message) {
        super(code, message);
    }
}
