package io.kefu.client;

/**
 * The server's acknowledgement that a message is durable (a SEND_ACK with status OK). Immutable and thread-safe.
 *
 * @param clientMsgId the message's idempotency key (16 bytes; do not modify)
 * @param conversationId the conversation
 * @param seq the message's position in the conversation (gapless, from 1)
 * @param serverMsgId the server's id of the message
 * @param timestampMs server time of storage, milliseconds since the Unix epoch
 * @param duplicate the server had stored this client message id before: this is the original receipt
 */
public record SendReceipt(byte[] clientMsgId, long conversationId, long seq, long serverMsgId, long timestampMs,
        boolean duplicate) {}
