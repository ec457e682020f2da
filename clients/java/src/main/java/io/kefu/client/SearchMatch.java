package io.kefu.client;

/**
 * One message that matched {@link ServiceApi#search}. Immutable and thread-safe.
 *
 * @param conversationId the conversation
 * @param seq the message
 * @param timestampMs server time of storage, milliseconds since the Unix epoch
 * @param snippet the matching text around the query
 */
public record SearchMatch(long conversationId, long seq, long timestampMs, String snippet) {}
