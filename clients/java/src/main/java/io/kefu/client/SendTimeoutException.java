package io.kefu.client;

import java.util.HexFormat;

/**
 * A send gave up waiting for the server's receipt; the message may or may not be stored. Send it again with the same
 * {@link #clientMsgId()} and the server stores it at most once.
 *
 * <p>Immutable and thread-safe.
 */
public class SendTimeoutException extends KefuTimeoutException {
    private static final long serialVersionUID = 1L;

    /** The message's idempotency key. */
    private final byte[] clientMsgId;

    /**
     * The timeout.
     *
     * @param clientMsgId the message's idempotency key (16 bytes)
     */
    public SendTimeoutException(byte[] clientMsgId) {
        super(NO_CODE, "no SEND_ACK for client_msg_id " + HexFormat.of().formatHex(clientMsgId) + " in time");
        this.clientMsgId = clientMsgId.clone();
    }

    /**
     * The message's idempotency key.
     *
     * @return a copy of the 16 bytes
     */
    public byte[] clientMsgId() {
        return clientMsgId.clone();
    }
}
