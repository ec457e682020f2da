package io.kefu.protocol;

/**
 * The two cipher suites (spec/PROTOCOL.md section 6.1), numbered as their TLS 1.3 counterparts. Each constant is a
 * row of the suite table: its hash (HKDF, HMAC, transcript), its AEAD, its key-exchange group and its long-term key
 * type. Code above {@link Crypto} asks the suite for a primitive and never names an algorithm itself.
 *
 * <p>Immutable; safe to share between threads.
 */
public enum Suite {
    /** TLS_SM4_GCM_SM3 of RFC 8998: SM3, SM4-GCM, ECDHE on curveSM2, SM2 signatures. */
    NATIONAL(0x00C6, "national", Crypto.Hash.SM3, KeyType.SM2, 65),
    /** TLS_AES_128_GCM_SHA256 of RFC 8446: SHA-256, AES-128-GCM, X25519, Ed25519. */
    INTERNATIONAL(0x1301, "international", Crypto.Hash.SHA256, KeyType.ED25519, 32);

    private final int code;
    private final String label;
    private final Crypto.Hash hash;
    private final KeyType keyType;
    private final int shareLength;

    Suite(int code, String label, Crypto.Hash hash, KeyType keyType, int shareLength) {
        this.code = code;
        this.label = label;
        this.hash = hash;
        this.keyType = keyType;
        this.shareLength = shareLength;
    }

    /**
     * The suite's wire code.
     *
     * @return 0x00C6 or 0x1301
     */
    public int code() {
        return code;
    }

    /**
     * The suite's name as the spec vectors spell it.
     *
     * @return {@code "national"} or {@code "international"}
     */
    public String label() {
        return label;
    }

    /**
     * The suite's hash (SM3 or SHA-256, both 32 bytes).
     *
     * @return the hash
     */
    public Crypto.Hash hash() {
        return hash;
    }

    /**
     * The long-term key type that signs for this suite (SM2 or Ed25519).
     *
     * @return the key type
     */
    public KeyType keyType() {
        return keyType;
    }

    /**
     * The length of this suite's key share: 65 (uncompressed curveSM2 point) or 32 (X25519).
     *
     * @return the key share length in bytes
     */
    public int shareLength() {
        return shareLength;
    }

    /** AEAD key length of both suites (SM4 and AES-128). */
    public static final int KEY_LENGTH = 16;

    /**
     * The suite with the given wire code.
     *
     * @param code a suite code from the wire
     * @return the suite, or {@code null} if the code is not a suite this implementation knows
     */
    public static Suite ofCode(int code) {
        for (Suite s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        return null;
    }
}
