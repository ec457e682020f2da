package io.kefu.client;

import java.nio.charset.StandardCharsets;
import java.util.Map;

/**
 * One message of a conversation, as the server delivered it.
 *
 * <p>Acknowledgement: with {@code explicitAck(false)} (the default) the client acknowledges a message once the
 * application asks for the next one (or returns from the listener); with {@code explicitAck(true)} only when
 * {@link #ack()} is called, from any thread, in any order. Immutable and thread-safe; {@link #ack()} may be called
 * from any thread. The byte arrays returned are copies.
 */
public final class Message {
    /** The sender of the server's own events (spec section 13.2); no app id can start with '#'. */
    public static final String SYSTEM_SENDER = "#kefu";
    /** Content type of plain text (UTF-8). */
    public static final int TEXT = 1;
    /** Content type of JSON. */
    public static final int JSON = 2;
    /** Content type of opaque bytes. */
    public static final int BINARY = 3;
    /** Content type of the server's events (section 13.2). */
    public static final int EVENT = 4;

    /** Called by {@link #ack()}: the receiving client's acknowledgement of one message. */
    interface Acknowledger {
        void acknowledge(Message message);
    }

    private final long conversationId;
    private final long seq;
    private final String sender;
    private final byte[] body;
    private final int contentType;
    private final byte[] clientMsgId;
    private final long serverMsgId;
    private final long timestampMs;
    private final Map<String, byte[]> metadata;
    private final boolean redelivery;
    private final Acknowledger acknowledger;

    Message(long conversationId, long seq, String sender, byte[] body, int contentType, byte[] clientMsgId,
            long serverMsgId, long timestampMs, Map<String, byte[]> metadata, boolean redelivery,
            Acknowledger acknowledger) {
        this.conversationId = conversationId;
        this.seq = seq;
        this.sender = sender;
        this.body = body;
        this.contentType = contentType;
        this.clientMsgId = clientMsgId;
        this.serverMsgId = serverMsgId;
        this.timestampMs = timestampMs;
        this.metadata = Map.copyOf(metadata);
        this.redelivery = redelivery;
        this.acknowledger = acknowledger;
    }

    /**
     * The conversation (an unsigned 64-bit id: staff channels have the top bit set, so they are negative here).
     *
     * @return the conversation id
     */
    public long conversationId() {
        return conversationId;
    }

    /**
     * The position in the conversation: gapless, starting at 1.
     *
     * @return the seq
     */
    public long seq() {
        return seq;
    }

    /**
     * The sender's user id (app id); may be this client's own user (sent from this or another device).
     *
     * @return the sender
     */
    public String sender() {
        return sender;
    }

    /**
     * The body.
     *
     * @return a copy of the body bytes
     */
    public byte[] body() {
        return body.clone();
    }

    /**
     * The body's length in bytes.
     *
     * @return the length
     */
    public int bodyLength() {
        return body.length;
    }

    /**
     * The body decoded as UTF-8 (invalid bytes replaced).
     *
     * @return the text
     */
    public String text() {
        return new String(body, StandardCharsets.UTF_8);
    }

    /**
     * The content type: {@link #TEXT}, {@link #JSON}, {@link #BINARY}, {@link #EVENT} or another registered value.
     *
     * @return the content type
     */
    public int contentType() {
        return contentType;
    }

    /**
     * The sender's idempotency key: compare it with your own sends to recognise them.
     *
     * @return a copy of the 16 bytes
     */
    public byte[] clientMsgId() {
        return clientMsgId.clone();
    }

    /**
     * The server's id of the message.
     *
     * @return the id
     */
    public long serverMsgId() {
        return serverMsgId;
    }

    /**
     * Server time of storage.
     *
     * @return milliseconds since the Unix epoch
     */
    public long timestampMs() {
        return timestampMs;
    }

    /**
     * The message's metadata.
     *
     * @return an unmodifiable map (the arrays are shared: do not modify them)
     */
    public Map<String, byte[]> metadata() {
        return metadata;
    }

    /**
     * Whether this message may have been seen before: the server flagged it (a retry, a SYNC), or the client hands
     * it to the application again after a reconnect because it was not acknowledged (explicit acknowledgement).
     *
     * @return true for a possible redelivery
     */
    public boolean redelivery() {
        return redelivery;
    }

    /**
     * Whether this is one of the server's own events (opened, queued, assigned, transferred, closed, ...): content
     * type {@link #EVENT} from {@link #SYSTEM_SENDER}. Check this, never the content type alone.
     *
     * @return true for a system event
     */
    public boolean isSystemEvent() {
        return contentType == EVENT && SYSTEM_SENDER.equals(sender);
    }

    /**
     * Acknowledge this message: the server will not deliver it to this user again. Acknowledgements are cumulative
     * on the wire, so the client sends one only once every earlier message of the conversation it handed out is
     * acknowledged too; acking out of order is safe. Idempotent; a no-op for history messages and after the client
     * closed. Does not wait for the server.
     */
    public void ack() {
        if (acknowledger != null) {
            acknowledger.acknowledge(this);
        }
    }

    @Override
    public String toString() {
        return "Message[conversation=" + Long.toUnsignedString(conversationId) + ", seq=" + seq + ", sender="
                + sender + ", contentType=" + contentType + ", " + body.length + " bytes"
                + (redelivery ? ", redelivery" : "") + "]";
    }
}
