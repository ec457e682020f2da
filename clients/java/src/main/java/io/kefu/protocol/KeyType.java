package io.kefu.protocol;

/**
 * Long-term signing key types (spec/PROTOCOL.md section 6.4): the {@code key_type} field of SERVER_FINISHED and
 * CLIENT_FINISHED.
 *
 * <p>Immutable; safe to share between threads.
 */
public enum KeyType {
    /** SM2-with-SM3 on curveSM2, RFC 8998 signer ID; 65-byte public keys {@code 04 || x || y}. */
    SM2(1, "sm2:"),
    /** Pure Ed25519 (RFC 8032); 32-byte public keys. */
    ED25519(2, "ed25519:");

    private final int code;
    private final String pinPrefix;

    KeyType(int code, String pinPrefix) {
        this.code = code;
        this.pinPrefix = pinPrefix;
    }

    /**
     * The wire value of this key type.
     *
     * @return 1 for SM2, 2 for Ed25519
     */
    public int code() {
        return code;
    }

    /**
     * The prefix of this key type's fingerprints (section 5.8).
     *
     * @return {@code "sm2:"} or {@code "ed25519:"}
     */
    public String pinPrefix() {
        return pinPrefix;
    }

    /**
     * The key type with the given wire value.
     *
     * @param code the {@code key_type} field
     * @return the key type, or {@code null} when the code is not a known key type
     */
    public static KeyType ofCode(int code) {
        for (KeyType t : values()) {
            if (t.code == code) {
                return t;
            }
        }
        return null;
    }
}
