package io.kefu.client;

/**
 * The server refused the handshake for load (a GOAWAY with OVERLOADED); connecting retries it after the server's delay while the connect timeout allows, and reconnecting always does.
 *
 * <p>Immutable and thread-safe.
 */
public class ServerBusyException extends ConnectException {
    private static final long serialVersionUID = 1L;

    /**
     * The error.
     *
     * @param code the protocol's error code, or {@link KefuException#NO_CODE}
     * @param message what happened
     */
    public ServerBusyException(int code, String message) {
        super(code, message);
    }
}
