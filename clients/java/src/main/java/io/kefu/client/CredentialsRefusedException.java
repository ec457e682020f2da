package io.kefu.client;

/**
 * The server ended the session with AUTH_FAILED (app revoked, client key retired) and refused to authenticate the app again: reconnecting cannot help until an operator acts.
 *
 * <p>Immutable and thread-safe.
 */
public class CredentialsRefusedException extends ConnectionLostException {
    private static final long serialVersionUID = 1L;

    /**
     * The error.
     *
     * @param code the protocol's error code, or {@link KefuException#NO_CODE}
     * @param message what happened
     */
    public CredentialsRefusedException(int code, String message) {
        super(code, message);
    }
}
