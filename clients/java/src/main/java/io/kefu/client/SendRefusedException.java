package io.kefu.client;

/**
 * The server refused a SEND (a SEND_ACK with a nonzero status such as FORBIDDEN or NOT_FOUND): the message was not
 * stored.
 *
 * <p>Immutable and thread-safe.
 */
public class SendRefusedException extends RequestRefusedException {
    private static final long serialVersionUID = 1L;

    /**
     * The refusal.
     *
     * @param code the protocol's error code
     * @param reason the server's reason ("" when it gave none)
     */
    public SendRefusedException(int code, String reason) {
        super(code, reason);
    }
}
