package io.kefu.client;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A message to send, with its options: {@code Outgoing.text(conversation, "hi").to("agent-7")}. Immutable and
 * thread-safe (the withers return new values; byte arrays are not copied: do not modify them after handing them
 * over).
 *
 * @param conversationId the conversation (nonzero; a new one is created by the first SEND, see {@link #to})
 * @param body the body bytes
 * @param contentType {@link Message#TEXT}, {@link Message#JSON}, {@link Message#BINARY} or another registered type
 * @param metadata metadata entries (key: UTF-8, at most 255 bytes)
 * @param to the other members, when this SEND creates the conversation (metadata "kefu.to")
 * @param clientMsgId the idempotency key (16 bytes), or null for a fresh random one
 * @param timeout how long to wait for the server's receipt, or null for the client's send timeout
 */
public record Outgoing(long conversationId, byte[] body, int contentType, Map<String, byte[]> metadata,
        List<String> to, byte[] clientMsgId, Duration timeout) {
    /**
     * Checks and copies the collections.
     *
     * @param conversationId the conversation
     * @param body the body bytes
     * @param contentType the content type
     * @param metadata metadata entries
     * @param to the other members of a conversation this SEND creates
     * @param clientMsgId the idempotency key, or null
     * @param timeout the send timeout, or null
     */
    public Outgoing {
        metadata = Map.copyOf(metadata);
        to = List.copyOf(to);
        if (clientMsgId != null && clientMsgId.length != 16) {
            throw new IllegalArgumentException("clientMsgId must be 16 bytes");
        }
    }

    /**
     * A text message.
     *
     * @param conversationId the conversation
     * @param text the text (sent as UTF-8)
     * @return the message
     */
    public static Outgoing text(long conversationId, String text) {
        return of(conversationId, text.getBytes(StandardCharsets.UTF_8), Message.TEXT);
    }

    /**
     * A message of any content type.
     *
     * @param conversationId the conversation
     * @param body the body bytes
     * @param contentType the content type
     * @return the message
     */
    public static Outgoing of(long conversationId, byte[] body, int contentType) {
        return new Outgoing(conversationId, body, contentType, Map.of(), List.of(), null, null);
    }

    /**
     * The same message naming the other members of the conversation it creates.
     *
     * @param members user ids
     * @return the message
     */
    public Outgoing to(String... members) {
        return new Outgoing(conversationId, body, contentType, metadata, List.of(members), clientMsgId, timeout);
    }

    /**
     * The same message with one more metadata entry.
     *
     * @param key the key
     * @param value the value
     * @return the message
     */
    public Outgoing withMetadata(String key, byte[] value) {
        Map<String, byte[]> more = new LinkedHashMap<>(metadata);
        more.put(key, value);
        return new Outgoing(conversationId, body, contentType, more, to, clientMsgId, timeout);
    }

    /**
     * The same message with a given idempotency key (to retry a send that timed out).
     *
     * @param id 16 bytes
     * @return the message
     */
    public Outgoing withClientMsgId(byte[] id) {
        return new Outgoing(conversationId, body, contentType, metadata, to, id, timeout);
    }

    /**
     * The same message with its own send timeout.
     *
     * @param value the timeout
     * @return the message
     */
    public Outgoing withTimeout(Duration value) {
        return new Outgoing(conversationId, body, contentType, metadata, to, clientMsgId, value);
    }
}
