package io.kefu.protocol;

/**
 * Lowercase hexadecimal, as the spec and its vectors write byte strings (section 1.1).
 *
 * <p>Thread-safety: stateless; safe from any thread.
 */
public final class Hex {
    private static final char[] DIGITS = "0123456789abcdef".toCharArray();

    private Hex() {}

    /**
     * Encodes bytes as lowercase hex.
     *
     * @param bytes the bytes; not modified
     * @return two lowercase hex digits per byte
     */
    public static String encode(byte[] bytes) {
        char[] out = new char[bytes.length * 2];
        for (int i = 0; i < bytes.length; i++) {
            out[2 * i] = DIGITS[(bytes[i] >> 4) & 0xF];
            out[2 * i + 1] = DIGITS[bytes[i] & 0xF];
        }
        return new String(out);
    }

    /**
     * Decodes hex (either case) to bytes.
     *
     * @param hex an even number of hex digits, nothing else
     * @return the bytes
     * @throws IllegalArgumentException if {@code hex} has an odd length or a character that is not a hex digit
     */
    public static byte[] decode(String hex) {
        if (hex.length() % 2 != 0) {
            throw new IllegalArgumentException("odd number of hex digits");
        }
        byte[] out = new byte[hex.length() / 2];
        for (int i = 0; i < out.length; i++) {
            out[i] = (byte) (digit(hex, 2 * i) << 4 | digit(hex, 2 * i + 1));
        }
        return out;
    }

    private static int digit(String hex, int index) {
        char c = hex.charAt(index);
        if (c >= '0' && c <= '9') {
            return c - '0';
        }
        if (c >= 'a' && c <= 'f') {
            return c - 'a' + 10;
        }
        if (c >= 'A' && c <= 'F') {
            return c - 'A' + 10;
        }
        throw new IllegalArgumentException("not a hex digit at index " + index + ": '" + c + "'");
    }
}
