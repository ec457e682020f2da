package io.kefu.client;

import java.util.Map;

/**
 * A successful RESULT of a service request: the conversation, a message's seq where the request made one, and the
 * detail the server sent (its JSON object, parsed). Immutable and thread-safe.
 *
 * @param conversationId the conversation
 * @param seq the seq of the message the request made, 0 if none
 * @param detail the detail object (values as {@link io.kefu.protocol.Json} reads them)
 */
public record Outcome(long conversationId, long seq, Map<String, Object> detail) {
    /**
     * Copies the detail.
     *
     * @param conversationId the conversation
     * @param seq the seq of the message the request made, 0 if none
     * @param detail the detail object
     */
    public Outcome {
        detail = Map.copyOf(detail);
    }
}
