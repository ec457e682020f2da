package io.kefu.protocol;

import java.util.Arrays;

/**
 * One direction of the AEAD record layer (spec/PROTOCOL.md sections 6.3 and 6.4): a traffic secret, the key and IV
 * expanded from it, and the record sequence number and byte count under it.
 *
 * <pre>
 * key    = HKDF-Expand-Label(secret, "key", "", 16)      iv = HKDF-Expand-Label(secret, "iv", "", 12)
 * header = u32(len(plaintext) + 16) || u8(1) || u8(0x0F) || u16(0) || u32(0)
 * nonce  = iv XOR (seq as a 96-bit big-endian integer)
 * RECORD = header || AEAD-Seal(key, nonce, aad = header, plaintext)
 * </pre>
 *
 * <p>{@link #update()} moves to {@code HKDF-Expand-Label(secret, "traffic upd", "", 32)} with {@code seq} and the byte
 * count back at 0. A sender calls {@link #needsUpdate(int)} before sealing; a receiver's {@link #open} fails with
 * KEY_LIMIT_EXCEEDED past the limits.
 *
 * <p>{@link #toString()} shows the suite and counters, never a key. Not thread-safe: a connection owns one object per
 * direction.
 */
public final class RecordLayer {
    /** Records under one key per direction (2^20). */
    public static final long RECORD_LIMIT = 1L << 20;
    /** Plaintext bytes under one key per direction (2^30). */
    public static final long BYTE_LIMIT = 1L << 30;
    /** Kept under {@link #BYTE_LIMIT} by a sender for the KEY_UPDATE record itself. */
    public static final long UPDATE_MARGIN = 64;
    /** The RECORD frame type. */
    static final int RECORD_TYPE = 0x0F;
    /** Frame header length. */
    static final int HEADER_LENGTH = 12;

    private final Suite suite;
    private byte[] secret;
    private byte[] iv;
    private Crypto.Aead aead;
    private long seq;
    private long bytes;

    /**
     * A direction starting under {@code secret}.
     *
     * @param suite the negotiated suite
     * @param secret the traffic secret; copied
     */
    public RecordLayer(Suite suite, byte[] secret) {
        this.suite = suite;
        install(secret.clone());
    }

    private void install(byte[] newSecret) {
        if (secret != null) {
            Arrays.fill(secret, (byte) 0);
        }
        secret = newSecret;
        byte[] key = KeySchedule.expandLabel(suite.hash(), secret, "key", new byte[0], Suite.KEY_LENGTH);
        iv = KeySchedule.expandLabel(suite.hash(), secret, "iv", new byte[0], Crypto.NONCE_LENGTH);
        aead = Crypto.Aead.of(suite, key);
        Arrays.fill(key, (byte) 0);
        seq = 0;
        bytes = 0;
    }

    /** Moves to the next traffic secret (KEY_UPDATE, section 6.4). */
    public void update() {
        install(KeySchedule.expandLabel(suite.hash(), secret, "traffic upd", new byte[0], Crypto.HASH_LENGTH));
    }

    /**
     * The sequence number of the next record under the current key.
     *
     * @return the count of records sealed or opened under this key
     */
    public long seq() {
        return seq;
    }

    /** The current traffic secret (package-private: for tests and the handshake's finished keys). */
    byte[] secret() {
        return secret;
    }

    /**
     * Whether sealing {@code plaintextLength} more bytes must first be preceded by a KEY_UPDATE.
     *
     * @param plaintextLength the next record's plaintext length
     * @return true when {@code seq >= 2^20 - 1} or the byte count would pass {@code 2^30 - 64}
     */
    public boolean needsUpdate(int plaintextLength) {
        return seq >= RECORD_LIMIT - 1 || bytes + plaintextLength > BYTE_LIMIT - UPDATE_MARGIN;
    }

    private byte[] nonce(long n) {
        byte[] nonce = iv.clone();
        for (int i = 0; i < 8; i++) {
            nonce[Crypto.NONCE_LENGTH - 1 - i] ^= (byte) (n >>> (8 * i));
        }
        return nonce;
    }

    /**
     * Seals a record.
     *
     * @param plaintext one or more whole frames
     * @return the whole RECORD frame, header and body
     */
    public byte[] seal(byte[] plaintext) {
        byte[] header = header(plaintext.length + Crypto.TAG_LENGTH);
        byte[] body = aead.seal(nonce(seq), plaintext, header);
        seq++;
        bytes += plaintext.length;
        byte[] out = new byte[HEADER_LENGTH + body.length];
        System.arraycopy(header, 0, out, 0, HEADER_LENGTH);
        System.arraycopy(body, 0, out, HEADER_LENGTH, body.length);
        return out;
    }

    /**
     * Opens a record with the next sequence number.
     *
     * @param header the RECORD frame's 12-byte header, as received (the associated data)
     * @param body the ciphertext and tag
     * @return the plaintext
     * @throws ProtocolException BAD_RECORD_MAC if it does not authenticate; KEY_LIMIT_EXCEEDED past the limits
     */
    public byte[] open(byte[] header, byte[] body) throws ProtocolException {
        if (seq >= RECORD_LIMIT) {
            throw new ProtocolException(ErrorCode.KEY_LIMIT_EXCEEDED, "too many records under one key");
        }
        byte[] plaintext = aead.open(nonce(seq), body, header);
        seq++;
        bytes += plaintext.length;
        if (bytes > BYTE_LIMIT) {
            throw new ProtocolException(ErrorCode.KEY_LIMIT_EXCEEDED, "too many bytes under one key");
        }
        return plaintext;
    }

    /**
     * The header of a RECORD frame with a body of {@code bodyLength} bytes.
     *
     * @param bodyLength the body length (plaintext and tag)
     * @return 12 bytes
     */
    static byte[] header(int bodyLength) {
        return new byte[] {
            (byte) (bodyLength >>> 24), (byte) (bodyLength >>> 16), (byte) (bodyLength >>> 8), (byte) bodyLength,
            1, (byte) RECORD_TYPE, 0, 0, 0, 0, 0, 0
        };
    }

    /** Zeroes the traffic secret; the direction is unusable afterwards. */
    public void destroy() {
        Arrays.fill(secret, (byte) 0);
        Arrays.fill(iv, (byte) 0);
    }

    /**
     * The suite and counters only.
     *
     * @return for example {@code "RecordLayer[national, seq=3, bytes=120]"}
     */
    @Override
    public String toString() {
        return "RecordLayer[" + suite.label() + ", seq=" + seq + ", bytes=" + bytes + "]";
    }
}
