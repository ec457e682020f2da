package io.kefu.protocol;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Objects;

/**
 * Writes the fields of one frame (section 3.3) into a growing buffer, big-endian. A value that does not fit its
 * field (an integer out of range, a fixed field of the wrong length, more bytes or items than the prefix can count,
 * a string that is not valid Unicode) is our own misuse: IllegalArgumentException, before anything is sent.
 *
 * <p>Thread-safety: not thread-safe; one writer per frame, used by one thread.
 */
final class WireWriter {
    private byte[] buf;
    private int len;

    WireWriter(int capacity) {
        buf = new byte[Math.max(capacity, 16)];
    }

    int length() {
        return len;
    }

    byte[] array() {
        return buf;
    }

    byte[] toByteArray() {
        return Arrays.copyOf(buf, len);
    }

    private void ensure(int n) {
        if (buf.length - len < n) {
            long want = Math.max((long) buf.length * 2, (long) len + n);
            if (want > Integer.MAX_VALUE - 8) {
                throw new IllegalArgumentException("frame too large to encode");
            }
            buf = Arrays.copyOf(buf, (int) want);
        }
    }

    private static IllegalArgumentException range(String field, String kind, long value) {
        return new IllegalArgumentException(field + ": " + value + " does not fit " + kind);
    }

    void u8(int v, String field) {
        if (v < 0 || v > 0xFF) {
            throw range(field, "u8", v);
        }
        ensure(1);
        buf[len++] = (byte) v;
    }

    void u16(int v, String field) {
        if (v < 0 || v > 0xFFFF) {
            throw range(field, "u16", v);
        }
        ensure(2);
        buf[len++] = (byte) (v >>> 8);
        buf[len++] = (byte) v;
    }

    void u32(long v, String field) {
        if (v < 0 || v > 0xFFFF_FFFFL) {
            throw range(field, "u32", v);
        }
        putInt(v);
    }

    private void putInt(long v) {
        ensure(4);
        for (int shift = 24; shift >= 0; shift -= 8) {
            buf[len++] = (byte) (v >>> shift);
        }
    }

    /** Any long: a u64 is its raw 64 bits. */
    void u64(long v, String field) {
        ensure(8);
        for (int shift = 56; shift >= 0; shift -= 8) {
            buf[len++] = (byte) (v >>> shift);
        }
    }

    void fixed(byte[] v, int n, String field) {
        Objects.requireNonNull(v, field);
        if (v.length != n) {
            throw new IllegalArgumentException(field + ": " + v.length + " bytes, must be exactly " + n);
        }
        raw(v, 0, n);
    }

    void raw(byte[] v, int off, int n) {
        ensure(n);
        System.arraycopy(v, off, buf, len, n);
        len += n;
    }

    private void prefix(long n, int size, String field) {
        long max = size == 4 ? 0xFFFF_FFFFL : (1L << (8 * size)) - 1;
        if (n > max) {
            throw new IllegalArgumentException(field + ": " + n + " does not fit a u" + (8 * size) + " prefix");
        }
        switch (size) {
            case 1 -> u8((int) n, field);
            case 2 -> u16((int) n, field);
            default -> putInt(n);
        }
    }

    void bytes(byte[] v, int prefixSize, String field) {
        Objects.requireNonNull(v, field);
        prefix(v.length, prefixSize, field);
        raw(v, 0, v.length);
    }

    void text(String v, int prefixSize, String field) {
        Objects.requireNonNull(v, field);
        byte[] utf8;
        try {
            ByteBuffer out = StandardCharsets.UTF_8
                    .newEncoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .encode(CharBuffer.wrap(v));
            utf8 = Arrays.copyOf(out.array(), out.limit());
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException(field + ": not valid Unicode (an unpaired surrogate)");
        }
        bytes(utf8, prefixSize, field);
    }

    void count(int n, int prefixSize, String field) {
        prefix(n, prefixSize, field);
    }
}
