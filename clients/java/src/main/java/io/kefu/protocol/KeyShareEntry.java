package io.kefu.protocol;

import java.util.Arrays;
import java.util.Objects;

// GENERATED from kefu.protocol.frames by spec/gen_java_frames.py: do not edit.
/**
 * One ephemeral public key offered in CLIENT_HELLO, tagged with its suite (section 3.3).
 *
 * <p>Thread-safety: immutable, except that byte arrays are not copied (treat them as read-only).
 *
 * @param suite {@code suite}, {@code u16}
 * @param key {@code key}, {@code opaque<u16>}
 */
public record KeyShareEntry(int suite, byte[] key) {
    /**
     * Checks that no component is null; value ranges are checked by the encoder.
     *
     * @param suite {@code suite}
     * @param key {@code key}
     */
    public KeyShareEntry {
        Objects.requireNonNull(key, "key");
    }

    /** Equal when every field is, byte arrays compared by content. */
    @Override
    public boolean equals(Object other) {
        return other instanceof KeyShareEntry o
                && suite == o.suite
                && Arrays.equals(key, o.key);
    }

    /** A hash of every field, byte arrays by content. */
    @Override
    public int hashCode() {
        int h = 0;
        h = 31 * h + Objects.hashCode(suite);
        h = 31 * h + Arrays.hashCode(key);
        return h;
    }

    /** The fields, byte arrays in hex and {@code u64} values unsigned. */
    @Override
    public String toString() {
        return "KeyShareEntry["
                + "suite=" + suite + ", "
                + "key=" + Hex.encode(key) + "]";
    }
}
