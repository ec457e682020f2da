package io.kefu.protocol;

import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Arrays;
import javax.crypto.AEADBadTagException;
import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import org.bouncycastle.crypto.Digest;
import org.bouncycastle.crypto.InvalidCipherTextException;
import org.bouncycastle.crypto.digests.SHA256Digest;
import org.bouncycastle.crypto.digests.SM3Digest;
import org.bouncycastle.crypto.engines.SM4Engine;
import org.bouncycastle.crypto.macs.HMac;
import org.bouncycastle.crypto.modes.GCMBlockCipher;
import org.bouncycastle.crypto.modes.GCMModeCipher;
import org.bouncycastle.crypto.modes.gcm.BasicGCMMultiplier;
import org.bouncycastle.crypto.params.AEADParameters;
import org.bouncycastle.crypto.params.KeyParameter;

/**
 * The symmetric primitives of both suites (spec/PROTOCOL.md section 6): the hashes SM3 and SHA-256, HMAC, HKDF
 * (RFC 5869) and the AEADs SM4-GCM and AES-GCM. Key exchange is {@link KeyShare}, signatures {@link SigningKey} and
 * {@link VerifyKey}.
 *
 * <p>SM3, HMAC and SM4-GCM run on BouncyCastle's lightweight API (SM4-GCM with {@link BasicGCMMultiplier}, whose
 * GHASH has no secret-indexed table); AES-GCM runs on the JDK's provider (AES-NI and CLMUL intrinsics where the CPU
 * has them). BouncyCastle's SM4 engine itself looks its S-box up by index, which is not constant time on a CPU with a
 * shared cache: see the README of this client.
 *
 * <p>Thread-safety: the static methods are safe to call from any thread; an {@link Aead} is not thread-safe (one
 * object per direction, used by one thread at a time).
 */
public final class Crypto {
    private Crypto() {}

    /** Every suite's hash output, secret, binder and {@code verify_data} length. */
    public static final int HASH_LENGTH = 32;
    /** Every suite's AEAD tag length (full-length GCM tags). */
    public static final int TAG_LENGTH = 16;
    /** Every suite's AEAD nonce and IV length (96 bits, GCM's native size). */
    public static final int NONCE_LENGTH = 12;

    /**
     * The suites' hashes. Both are 32 bytes long with 64-byte blocks.
     *
     * <p>Immutable; safe to share between threads.
     */
    public enum Hash {
        /** SM3 (GB/T 32905-2016). */
        SM3,
        /** SHA-256 (FIPS 180-4). */
        SHA256;

        /**
         * A fresh running digest of this hash (for transcripts). Not thread-safe.
         *
         * @return a new BouncyCastle digest
         */
        public Digest newDigest() {
            return this == SM3 ? new SM3Digest() : new SHA256Digest();
        }

        /**
         * The hash of the concatenation of the given byte arrays.
         *
         * @param parts the data, in order
         * @return the 32-byte digest
         */
        public byte[] digest(byte[]... parts) {
            Digest d = newDigest();
            for (byte[] p : parts) {
                d.update(p, 0, p.length);
            }
            byte[] out = new byte[HASH_LENGTH];
            d.doFinal(out, 0);
            return out;
        }

        /**
         * HMAC (RFC 2104) with this hash.
         *
         * @param key the key (any length; an empty key is allowed)
         * @param parts the message, as the concatenation of these arrays
         * @return the 32-byte MAC
         */
        public byte[] hmac(byte[] key, byte[]... parts) {
            HMac mac = new HMac(newDigest());
            mac.init(new KeyParameter(key));
            for (byte[] p : parts) {
                mac.update(p, 0, p.length);
            }
            byte[] out = new byte[HASH_LENGTH];
            mac.doFinal(out, 0);
            return out;
        }

        /**
         * HKDF-Extract (RFC 5869): HMAC(salt, ikm), an empty salt meaning 32 zero bytes.
         *
         * @param salt the salt, possibly empty
         * @param ikm the input keying material
         * @return the 32-byte pseudorandom key
         */
        public byte[] hkdfExtract(byte[] salt, byte[] ikm) {
            return hmac(salt.length == 0 ? new byte[HASH_LENGTH] : salt, ikm);
        }

        /**
         * HKDF-Expand (RFC 5869).
         *
         * @param prk the pseudorandom key
         * @param info the context
         * @param length the output length, 1 to 255 * 32
         * @return {@code length} bytes of output keying material
         * @throws IllegalArgumentException if {@code length} is out of range
         */
        public byte[] hkdfExpand(byte[] prk, byte[] info, int length) {
            if (length <= 0 || length > 255 * HASH_LENGTH) {
                throw new IllegalArgumentException("HKDF-Expand length " + length + " out of range");
            }
            byte[] out = new byte[length];
            byte[] block = new byte[0];
            int done = 0;
            for (int counter = 1; done < length; counter++) {
                block = hmac(prk, block, info, new byte[] {(byte) counter});
                int n = Math.min(block.length, length - done);
                System.arraycopy(block, 0, out, done, n);
                done += n;
            }
            return out;
        }
    }

    /**
     * Compares two MACs, tags or digests in time that depends only on their lengths.
     *
     * @param a one value
     * @param b the other
     * @return true when both hold the same bytes
     */
    public static boolean constantTimeEquals(byte[] a, byte[] b) {
        return MessageDigest.isEqual(a, b);
    }

    /**
     * One AEAD key: SM4-GCM (national suite) or AES-GCM (international suite; 16- or 32-byte keys), with 12-byte
     * nonces and 16-byte tags. {@link #toString()} shows the algorithm only, never the key.
     *
     * <p>Not thread-safe: use one object from one thread at a time.
     */
    public static final class Aead {
        private final boolean sm4;
        private final byte[] key;
        private final SecretKeySpec aesKey;
        private Cipher aes;

        /**
         * An AEAD key.
         *
         * @param sm4 true for SM4-GCM (16-byte key), false for AES-GCM
         * @param key the key; copied
         * @throws IllegalArgumentException if the key length does not fit the cipher
         */
        public Aead(boolean sm4, byte[] key) {
            if (sm4 ? key.length != 16 : key.length != 16 && key.length != 24 && key.length != 32) {
                throw new IllegalArgumentException("bad AEAD key length " + key.length);
            }
            this.sm4 = sm4;
            this.key = key.clone();
            this.aesKey = sm4 ? null : new SecretKeySpec(this.key, "AES");
        }

        /**
         * The AEAD of a suite.
         *
         * @param suite the suite (SM4-GCM for national, AES-128-GCM for international)
         * @param key the 16-byte key; copied
         * @return a new AEAD object
         */
        public static Aead of(Suite suite, byte[] key) {
            return new Aead(suite == Suite.NATIONAL, key);
        }

        /**
         * Encrypts and authenticates.
         *
         * @param nonce the 12-byte nonce, never used twice with this key
         * @param plaintext the plaintext
         * @param aad the associated data
         * @return ciphertext followed by the 16-byte tag
         */
        public byte[] seal(byte[] nonce, byte[] plaintext, byte[] aad) {
            return seal(nonce, plaintext, 0, plaintext.length, aad);
        }

        /**
         * Encrypts and authenticates a slice.
         *
         * @param nonce the 12-byte nonce, never used twice with this key
         * @param plaintext the array holding the plaintext
         * @param off where the plaintext starts
         * @param len the plaintext length
         * @param aad the associated data
         * @return ciphertext followed by the 16-byte tag
         */
        public byte[] seal(byte[] nonce, byte[] plaintext, int off, int len, byte[] aad) {
            checkNonce(nonce);
            if (sm4) {
                GCMModeCipher gcm = sm4Gcm(true, nonce);
                gcm.processAADBytes(aad, 0, aad.length);
                byte[] out = new byte[len + TAG_LENGTH];
                int n = gcm.processBytes(plaintext, off, len, out, 0);
                try {
                    gcm.doFinal(out, n);
                } catch (InvalidCipherTextException e) {
                    throw new IllegalStateException("SM4-GCM seal failed", e);
                }
                return out;
            }
            try {
                Cipher c = aesCipher(Cipher.ENCRYPT_MODE, nonce);
                c.updateAAD(aad);
                return c.doFinal(plaintext, off, len);
            } catch (GeneralSecurityException e) {
                throw new IllegalStateException("AES-GCM seal failed", e);
            }
        }

        /**
         * Authenticates and decrypts ciphertext followed by its tag.
         *
         * @param nonce the 12-byte nonce
         * @param data ciphertext and tag
         * @param aad the associated data
         * @return the plaintext
         * @throws ProtocolException with {@link ErrorCode#BAD_RECORD_MAC} if it does not authenticate
         */
        public byte[] open(byte[] nonce, byte[] data, byte[] aad) throws ProtocolException {
            return open(nonce, data, 0, data.length, aad);
        }

        /**
         * Authenticates and decrypts a slice holding ciphertext followed by its tag.
         *
         * @param nonce the 12-byte nonce
         * @param data the array holding ciphertext and tag
         * @param off where they start
         * @param len their length
         * @param aad the associated data
         * @return the plaintext
         * @throws ProtocolException with {@link ErrorCode#BAD_RECORD_MAC} if it does not authenticate
         */
        public byte[] open(byte[] nonce, byte[] data, int off, int len, byte[] aad) throws ProtocolException {
            checkNonce(nonce);
            if (len < TAG_LENGTH) {
                throw new ProtocolException(ErrorCode.BAD_RECORD_MAC, "record shorter than its tag");
            }
            if (sm4) {
                GCMModeCipher gcm = sm4Gcm(false, nonce);
                gcm.processAADBytes(aad, 0, aad.length);
                byte[] out = new byte[len - TAG_LENGTH];
                int n = gcm.processBytes(data, off, len, out, 0);
                try {
                    gcm.doFinal(out, n); // compares the tag in constant time (Arrays.constantTimeAreEqual)
                } catch (InvalidCipherTextException e) {
                    Arrays.fill(out, (byte) 0);
                    throw new ProtocolException(ErrorCode.BAD_RECORD_MAC, "record failed authentication");
                }
                return out;
            }
            try {
                Cipher c = aesCipher(Cipher.DECRYPT_MODE, nonce);
                c.updateAAD(aad);
                return c.doFinal(data, off, len);
            } catch (AEADBadTagException e) {
                throw new ProtocolException(ErrorCode.BAD_RECORD_MAC, "record failed authentication");
            } catch (GeneralSecurityException e) {
                throw new IllegalStateException("AES-GCM open failed", e);
            }
        }

        private static void checkNonce(byte[] nonce) {
            if (nonce.length != NONCE_LENGTH) {
                throw new IllegalArgumentException("GCM nonces are 12 bytes here");
            }
        }

        private GCMModeCipher sm4Gcm(boolean encrypt, byte[] nonce) {
            GCMModeCipher gcm = GCMBlockCipher.newInstance(new SM4Engine(), new BasicGCMMultiplier());
            gcm.init(encrypt, new AEADParameters(new KeyParameter(key), TAG_LENGTH * 8, nonce));
            return gcm;
        }

        private Cipher aesCipher(int mode, byte[] nonce) throws GeneralSecurityException {
            if (aes == null) {
                aes = Cipher.getInstance("AES/GCM/NoPadding");
            }
            aes.init(mode, aesKey, new GCMParameterSpec(TAG_LENGTH * 8, nonce));
            return aes;
        }

        /**
         * Names the algorithm only: the key never appears.
         *
         * @return {@code "Aead[SM4-GCM]"} or {@code "Aead[AES-GCM]"}
         */
        @Override
        public String toString() {
            return sm4 ? "Aead[SM4-GCM]" : "Aead[AES-GCM]";
        }
    }
}
