package io.kefu.protocol;

import java.security.SecureRandom;
import java.util.Arrays;
import org.bouncycastle.math.ec.rfc8032.Ed25519;

/**
 * A long-term private key (spec/PROTOCOL.md section 6.4): SM2 (a 32-byte scalar; signs SM2-with-SM3 with the
 * RFC 8998 signer ID) or Ed25519 (a 32-byte RFC 8032 seed). A client holds one to authenticate with CLIENT_KEY.
 *
 * <p>{@link #toString()} shows the public key's pin only. Safe to share between threads once made (signing draws
 * its SM2 nonce from a {@link SecureRandom}, which is thread-safe); {@link #destroy()} must not race with
 * {@link #sign}.
 */
public final class SigningKey {
    private final KeyType keyType;
    private final byte[] privateKey;
    private final VerifyKey verifyKey;

    private SigningKey(KeyType keyType, byte[] privateKey) {
        this.keyType = keyType;
        this.privateKey = privateKey.clone();
        byte[] pub;
        if (keyType == KeyType.SM2) {
            pub = Sm2.publicKey(this.privateKey);
        } else {
            if (privateKey.length != Ed25519.SECRET_KEY_SIZE) {
                throw new IllegalArgumentException("an Ed25519 private key is a 32-byte seed");
            }
            pub = new byte[Ed25519.PUBLIC_KEY_SIZE];
            Ed25519.generatePublicKey(this.privateKey, 0, pub, 0);
        }
        try {
            this.verifyKey = VerifyKey.of(keyType, pub);
        } catch (ProtocolException e) {
            throw new IllegalStateException("derived public key is invalid", e);
        }
    }

    /**
     * A key from its raw private bytes.
     *
     * @param keyType SM2 or Ed25519
     * @param privateKey the 32-byte SM2 scalar ({@code 1 <= d <= n-2}) or Ed25519 seed; copied
     * @return the key
     * @throws IllegalArgumentException if the bytes are not a valid private key of that type
     */
    public static SigningKey of(KeyType keyType, byte[] privateKey) {
        return new SigningKey(keyType, privateKey);
    }

    /**
     * A fresh random key.
     *
     * @param keyType SM2 or Ed25519
     * @param random a cryptographically secure source
     * @return the key
     */
    public static SigningKey generate(KeyType keyType, SecureRandom random) {
        byte[] raw;
        if (keyType == KeyType.SM2) {
            raw = Sm2.generatePrivate(random);
        } else {
            raw = new byte[Ed25519.SECRET_KEY_SIZE];
            random.nextBytes(raw);
        }
        SigningKey key = new SigningKey(keyType, raw);
        Arrays.fill(raw, (byte) 0);
        return key;
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
     * The public half.
     *
     * @return the verify key
     */
    public VerifyKey verifyKey() {
        return verifyKey;
    }

    /**
     * The raw private key, for storing it (in a file only its owner may read).
     *
     * @return a copy of the 32 bytes
     */
    public byte[] privateBytes() {
        return privateKey.clone();
    }

    /**
     * Signs a message, drawing the SM2 nonce from a fresh {@link SecureRandom}.
     *
     * @param message the message
     * @return the signature: DER for SM2, 64 bytes for Ed25519
     */
    public byte[] sign(byte[] message) {
        return sign(message, new SecureRandom());
    }

    /**
     * Signs a message with the SM2 nonce drawn from {@code nonceSource} (Ed25519 signatures are deterministic and
     * ignore it). Only test vectors pass a source of fixed bytes: a nonce used twice reveals the key.
     *
     * @param message the message
     * @param nonceSource where the SM2 nonce {@code k} comes from
     * @return the signature
     */
    public byte[] sign(byte[] message, SecureRandom nonceSource) {
        if (keyType == KeyType.SM2) {
            return Sm2.sign(privateKey, Sm2.SIGNER_ID_RFC8998, message, nonceSource);
        }
        byte[] sig = new byte[Ed25519.SIGNATURE_SIZE];
        Ed25519.sign(privateKey, 0, message, 0, message.length, sig, 0);
        return sig;
    }

    /** Zeroes the private key; the key is unusable afterwards. */
    public void destroy() {
        Arrays.fill(privateKey, (byte) 0);
    }

    /**
     * The key type and the public key's pin; never the private key.
     *
     * @return for example {@code "SigningKey[ed25519:…]"}
     */
    @Override
    public String toString() {
        return "SigningKey[" + verifyKey.fingerprint() + "]";
    }
}
