package io.kefu.protocol;

import java.util.Arrays;
import java.util.Objects;

// GENERATED from kefu.protocol.frames by spec/gen_java_frames.py: do not edit.
/**
 * One metadata pair of a message or one attribute of OPEN_CONVERSATION (section 3.3).
 *
 * <p>Thread-safety: immutable, except that byte arrays are not copied (treat them as read-only).
 *
 * @param key {@code key}, {@code utf8<u8>}
 * @param value {@code value}, {@code opaque<u16>}
 */
public record MetaEntry(String key, byte[] value) {
    /**
     * Checks that no component is null; value ranges are checked by the encoder.
     *
     * @param key {@code key}
     * @param value {@code value}
     */
    public MetaEntry {
        Objects.requireNonNull(key, "key");
        Objects.requireNonNull(value, "value");
    }

    /** Equal when every field is, byte arrays compared by content. */
    @Override
    public boolean equals(Object other) {
        return other instanceof MetaEntry o
                && key.equals(o.key)
                && Arrays.equals(value, o.value);
    }

    /** A hash of every field, byte arrays by content. */
    @Override
    public int hashCode() {
        int h = 0;
        h = 31 * h + Objects.hashCode(key);
        h = 31 * h + Arrays.hashCode(value);
        return h;
    }

    /** The fields, byte arrays in hex and {@code u64} values unsigned. */
    @Override
    public String toString() {
        return "MetaEntry["
                + "key=" + key + ", "
                + "value=" + Hex.encode(value) + "]";
    }
}
