package io.kefu.protocol;

import java.util.HexFormat;
import org.bouncycastle.math.ec.rfc8032.Ed25519;

/**
 * A long-term public key of either type (spec/PROTOCOL.md section 6.4), validated when it is made: SM2 keys are
 * 65-byte points {@code 04 || x || y} of curveSM2, Ed25519 keys 32 bytes that decode to a curve point.
 *
 * <p>Immutable; safe to share between threads.
 */
public final class VerifyKey {
    private final KeyType keyType;
    private final byte[] publicKey;

    private VerifyKey(KeyType keyType, byte[] publicKey) {
        this.keyType = keyType;
        this.publicKey = publicKey.clone();
    }

    /**
     * A public key from its encoding.
     *
     * @param keyType the key type
     * @param publicKey the encoded key (65 bytes for SM2, 32 for Ed25519); copied
     * @return the key
     * @throws ProtocolException with {@link ErrorCode#BAD_SIGNATURE} if it is not a valid key of that type
     */
    public static VerifyKey of(KeyType keyType, byte[] publicKey) throws ProtocolException {
        boolean valid;
        if (keyType == KeyType.SM2) {
            try {
                Sm2.decodePoint(publicKey);
                valid = true;
            } catch (IllegalArgumentException e) {
                valid = false;
            }
        } else {
            valid = publicKey.length == Ed25519.PUBLIC_KEY_SIZE && Ed25519.validatePublicKeyPartial(publicKey, 0);
        }
        if (!valid) {
            throw new ProtocolException(ErrorCode.BAD_SIGNATURE, "invalid " + keyType + " public key");
        }
        return new VerifyKey(keyType, publicKey);
    }

    /**
     * The key's type.
     *
     * @return SM2 or Ed25519
     */
    public KeyType keyType() {
        return keyType;
    }

    /**
     * The encoded public key.
     *
     * @return a copy of the 65-byte (SM2) or 32-byte (Ed25519) key
     */
    public byte[] publicBytes() {
        return publicKey.clone();
    }

    /**
     * Checks a signature: SM2-with-SM3 with the RFC 8998 signer ID, or pure Ed25519.
     *
     * @param signature the signature (DER for SM2, 64 bytes for Ed25519)
     * @param message the signed message
     * @return true when the signature is this key's over {@code message}; false for anything else
     */
    public boolean verify(byte[] signature, byte[] message) {
        if (keyType == KeyType.SM2) {
            return Sm2.verify(publicKey, Sm2.SIGNER_ID_RFC8998, message, signature);
        }
        return signature.length == Ed25519.SIGNATURE_SIZE
                && Ed25519.verify(signature, 0, publicKey, 0, message, 0, message.length);
    }

    /**
     * The key's pin (section 5.8).
     *
     * @return {@code "sm2:"} and the hex SM3 of the key, or {@code "ed25519:"} and the hex SHA-256 of the key
     */
    public String fingerprint() {
        return fingerprint(keyType, publicKey);
    }

    /**
     * The pin of an encoded public key (section 5.8), without validating the key.
     *
     * @param keyType the key type
     * @param publicKey the encoded key
     * @return the pin, for example {@code "sm2:"} followed by 64 lowercase hex digits
     */
    public static String fingerprint(KeyType keyType, byte[] publicKey) {
        Crypto.Hash hash = keyType == KeyType.SM2 ? Crypto.Hash.SM3 : Crypto.Hash.SHA256;
        return keyType.pinPrefix() + HexFormat.of().formatHex(hash.digest(publicKey));
    }

    /**
     * The key type and pin.
     *
     * @return for example {@code "VerifyKey[sm2:…]"}
     */
    @Override
    public String toString() {
        return "VerifyKey[" + fingerprint() + "]";
    }
}
