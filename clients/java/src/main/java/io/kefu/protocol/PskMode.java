package io.kefu.protocol;

/**
 * How a client resumes with a ticket (spec/PROTOCOL.md section 5.6): CLIENT_HELLO's {@code psk_mode}.
 *
 * <p>Immutable; safe to share between threads.
 */
public enum PskMode {
    /** No ticket offered. */
    NONE(0),
    /** The ticket's PSK alone: no public-key operation, no forward secrecy with respect to the PSK. */
    PSK_ONLY(1),
    /** The PSK mixed with a fresh ECDHE: one key exchange on each side, forward secrecy kept. */
    PSK_WITH_ECDHE(2);

    private final int code;

    PskMode(int code) {
        this.code = code;
    }

    /**
     * The wire value.
     *
     * @return 0, 1 or 2
     */
    public int code() {
        return code;
    }
}
