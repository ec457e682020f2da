package io.kefu.protocol;

// GENERATED from kefu.protocol.frames by spec/gen_java_frames.py: do not edit.
/**
 * A cumulative acknowledgement in DELIVER_ACK: every message of the conversation up to and including {@code seq} is
 * processed (sections 3.3, 4.4).
 *
 * <p>Thread-safety: immutable, except that byte arrays are not copied (treat them as read-only).
 *
 * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
 * @param seq {@code seq}, {@code u64} (unsigned)
 */
public record AckEntry(long conversationId, long seq) {

    /** The fields, byte arrays in hex and {@code u64} values unsigned. */
    @Override
    public String toString() {
        return "AckEntry["
                + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                + "seq=" + Long.toUnsignedString(seq) + "]";
    }
}
