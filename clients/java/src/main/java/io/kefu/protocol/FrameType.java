package io.kefu.protocol;

import java.util.Optional;

/**
 * The frame types of protocol version 1, with their wire codes (spec/PROTOCOL.md section 3.4).
 *
 * <p>Codes {@code 0x00}-{@code 0x7F} are critical: a receiver that meets an unknown one inside a record fails with
 * UNKNOWN_FRAME_TYPE. Codes {@code 0x80}-{@code 0xFF} are ignorable: an unknown one is skipped. Version 1 defines no
 * ignorable type.
 *
 * <p>Thread-safety: an enum; immutable and safe to share between threads.
 */
public enum FrameType {
    /** Section 5.2, plaintext, client. */
    CLIENT_HELLO(0x01),
    /** Section 5.3, plaintext, server. */
    SERVER_HELLO(0x02),
    /** Section 5.4, in a record under the server handshake key. */
    SERVER_FINISHED(0x03),
    /** Section 5.5, in a record under the client handshake key. */
    CLIENT_FINISHED(0x04),
    /** Section 5.6, a resumption ticket from the server. */
    NEW_TICKET(0x05),
    /** Section 6.4, both directions. */
    KEY_UPDATE(0x06),
    /** Section 6.3: an AEAD record; outermost only, never inside a record. */
    RECORD(0x0F),
    /** Section 4.1, client. */
    SEND(0x10),
    /** Section 4.2, server. */
    SEND_ACK(0x11),
    /** Section 4.3, server. */
    DELIVER(0x12),
    /** Section 4.4, client. */
    DELIVER_ACK(0x13),
    /** Section 4.5, client. */
    SYNC(0x14),
    /** Section 4.5, server. */
    SYNC_DONE(0x15),
    /** Section 4.6, both directions. */
    PING(0x20),
    /** Section 4.6, both directions. */
    PONG(0x21),
    /** Section 4.7, both directions. */
    ERROR(0x30),
    /** Section 4.8, server. */
    GOAWAY(0x31),
    /** Section 4.9, both directions. */
    CLOSE(0x32),
    /** Section 13.3, client. */
    AGENT_STATUS(0x40),
    /** Section 13.4, client. */
    OPEN_CONVERSATION(0x41),
    /** Section 13.4, server. */
    OPENED(0x42),
    /** Section 13.6, client. */
    TRANSFER(0x43),
    /** Section 13.2, client. */
    END_CONVERSATION(0x44),
    /** Section 13.7, client. */
    WATCH(0x45),
    /** Section 13.8, client. */
    DRAFT_DECISION(0x46),
    /** Section 13.9, client. */
    SEARCH(0x47),
    /** Section 13.9, server. */
    SEARCH_RESULT(0x48),
    /** Section 13.5, server. */
    QUEUE_POSITION(0x49),
    /** Section 13.10, server. */
    SENTIMENT(0x4A),
    /** Section 13.11, client. */
    CONVERSATION_INFO(0x4B),
    /** Section 13.1, server. */
    RESULT(0x4F);

    /** The first ignorable type code (section 3.4). */
    public static final int IGNORABLE_MIN = 0x80;

    private static final FrameType[] BY_CODE = new FrameType[256];

    static {
        for (FrameType t : values()) {
            BY_CODE[t.code] = t;
        }
    }

    private final int code;

    FrameType(int code) {
        this.code = code;
    }

    /**
     * The type byte on the wire.
     *
     * @return the code, 0 to 255
     */
    public int code() {
        return code;
    }

    /**
     * The largest body a frame of this type may declare (section 3.4): see {@link FrameCodec#bodyLimit(int)}.
     *
     * @return the limit in bytes
     */
    public int bodyLimit() {
        return FrameCodec.bodyLimit(code);
    }

    /**
     * The frame type of a wire code.
     *
     * @param code the type byte, 0 to 255 (other values give empty)
     * @return the type, or empty if version 1 does not define {@code code}
     */
    public static Optional<FrameType> of(int code) {
        return code >= 0 && code < BY_CODE.length ? Optional.ofNullable(BY_CODE[code]) : Optional.empty();
    }

    /**
     * Whether an unknown frame of this code is skipped rather than fatal (section 3.4).
     *
     * @param code the type byte
     * @return true for codes {@code 0x80} to {@code 0xFF}
     */
    public static boolean isIgnorable(int code) {
        return code >= IGNORABLE_MIN && code <= 0xFF;
    }
}
