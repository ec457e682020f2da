package io.kefu.client;

/**
 * The server refused the app's credentials (AUTH_FAILED): unknown app id, wrong secret, revoked app.
 *
 * <p>Immutable and thread-safe.
 */
public class AuthFailedException extends ConnectException {
    private static final long serialVersionUID = 1L;

    /**
     * The error.
     *
     * @param code the protocol's error code, or {@link KefuException#NO_CODE}
     * @param message what happened
     */
    public AuthFailedException(int code, String message) {
        super(code, message);
    }
}
