package io.kefu.protocol;

import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Reads the fields of one frame body (section 3.3) from {@code buf[pos, end)}, big-endian. Every read checks that
 * its bytes are there before it takes or allocates anything, so a length or count prefix can never make it allocate
 * more than the body holds: a field that runs past the end, and a {@code utf8} field that is not valid UTF-8, are
 * MALFORMED_FRAME.
 *
 * <p>Thread-safety: not thread-safe; one reader per body, used by one thread.
 */
final class WireReader {
    private final byte[] buf;
    private final int end;
    private final String what;
    private int pos;

    /**
     * A reader of {@code buf[off, end)}.
     *
     * @param what the structure being read, named in errors
     */
    WireReader(byte[] buf, int off, int end, String what) {
        this.buf = buf;
        this.pos = off;
        this.end = end;
        this.what = what;
    }

    /** Bytes left in the body. */
    int remaining() {
        return end - pos;
    }

    private ProtocolException malformed(String detail) {
        return new ProtocolException(ErrorCode.MALFORMED_FRAME, what + " body does not parse: " + detail);
    }

    private void need(int n, String field) throws ProtocolException {
        if (n > end - pos) {
            throw malformed(field + " needs " + n + " bytes, " + (end - pos) + " left");
        }
    }

    int u8() throws ProtocolException {
        need(1, "u8");
        return buf[pos++] & 0xFF;
    }

    int u16() throws ProtocolException {
        need(2, "u16");
        int v = (buf[pos] & 0xFF) << 8 | (buf[pos + 1] & 0xFF);
        pos += 2;
        return v;
    }

    long u32() throws ProtocolException {
        need(4, "u32");
        long v = 0;
        for (int i = 0; i < 4; i++) {
            v = v << 8 | (buf[pos + i] & 0xFF);
        }
        pos += 4;
        return v;
    }

    long u64() throws ProtocolException {
        need(8, "u64");
        long v = 0;
        for (int i = 0; i < 8; i++) {
            v = v << 8 | (buf[pos + i] & 0xFF);
        }
        pos += 8;
        return v;
    }

    /** A length or count prefix of {@code size} bytes (1, 2 or 4). */
    private long prefix(int size) throws ProtocolException {
        return switch (size) {
            case 1 -> u8();
            case 2 -> u16();
            case 4 -> u32();
            default -> throw new IllegalArgumentException("prefix size " + size);
        };
    }

    byte[] fixed(int n) throws ProtocolException {
        need(n, "opaque[" + n + "]");
        byte[] out = Arrays.copyOfRange(buf, pos, pos + n);
        pos += n;
        return out;
    }

    /** {@code opaque<uN>}: checked against the bytes left before anything is allocated. */
    byte[] bytes(int prefixSize) throws ProtocolException {
        long n = prefix(prefixSize);
        if (n > end - pos) {
            throw malformed("opaque length " + n + " runs past the end (" + (end - pos) + " left)");
        }
        return fixed((int) n);
    }

    /** {@code utf8<uN>}: strict UTF-8 (no overlong forms, surrogates or values above U+10FFFF). */
    String text(int prefixSize) throws ProtocolException {
        long n = prefix(prefixSize);
        if (n > end - pos) {
            throw malformed("utf8 length " + n + " runs past the end (" + (end - pos) + " left)");
        }
        try {
            String s = StandardCharsets.UTF_8
                    .newDecoder()
                    .onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT)
                    .decode(ByteBuffer.wrap(buf, pos, (int) n))
                    .toString();
            pos += (int) n;
            return s;
        } catch (CharacterCodingException e) {
            throw malformed("utf8 field is not valid UTF-8");
        }
    }

    /**
     * A list's item count. Each item takes at least one byte, so a count above the bytes left is refused here,
     * before the caller allocates room for the items.
     */
    int count(int prefixSize) throws ProtocolException {
        long n = prefix(prefixSize);
        if (n > end - pos) {
            throw malformed("list of " + n + " items cannot fit in " + (end - pos) + " bytes");
        }
        return (int) n;
    }
}
