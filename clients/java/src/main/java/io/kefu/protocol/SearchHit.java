package io.kefu.protocol;

import java.util.Objects;

// GENERATED from kefu.protocol.frames by spec/gen_java_frames.py: do not edit.
/**
 * One message that matched a SEARCH, in SEARCH_RESULT (section 13.9).
 *
 * <p>Thread-safety: immutable, except that byte arrays are not copied (treat them as read-only).
 *
 * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
 * @param seq {@code seq}, {@code u64} (unsigned)
 * @param timestampMs {@code timestamp_ms}, {@code u64} (unsigned)
 * @param snippet {@code snippet}, {@code utf8<u16>}
 */
public record SearchHit(long conversationId, long seq, long timestampMs, String snippet) {
    /**
     * Checks that no component is null; value ranges are checked by the encoder.
     *
     * @param conversationId {@code conversation_id}
     * @param seq {@code seq}
     * @param timestampMs {@code timestamp_ms}
     * @param snippet {@code snippet}
     */
    public SearchHit {
        Objects.requireNonNull(snippet, "snippet");
    }

    /** The fields, byte arrays in hex and {@code u64} values unsigned. */
    @Override
    public String toString() {
        return "SearchHit["
                + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                + "seq=" + Long.toUnsignedString(seq) + ", "
                + "timestampMs=" + Long.toUnsignedString(timestampMs) + ", "
                + "snippet=" + snippet + "]";
    }
}
