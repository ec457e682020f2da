package io.kefu.protocol;

import java.security.SecureRandom;
import java.util.Map;

/**
 * Fixed randomness for reproducible handshake transcripts: test vectors only (spec/PROTOCOL.md section 10.4). A
 * fixed SM2 nonce used for two signatures reveals the private key, and fixed randoms and ephemeral keys must never
 * be configured outside tests; hence package-private.
 *
 * @param random the 32-byte hello random
 * @param shares the ephemeral private scalar per suite
 * @param sm2K the SM2 signing nonce of the client key's signature (32 bytes), or {@code null}
 */
record FixedRandoms(byte[] random, Map<Suite, byte[]> shares, byte[] sm2K) {
    /** A source that returns {@link #sm2K} as the nonce, or a real generator when none is fixed. */
    SecureRandom nonceSource() {
        if (sm2K == null) {
            return new SecureRandom();
        }
        byte[] k = sm2K.clone();
        return new SecureRandom() {
            private static final long serialVersionUID = 1L;

            @Override
            public void nextBytes(byte[] bytes) {
                if (bytes.length != k.length) {
                    throw new IllegalStateException("a fixed SM2 nonce is 32 bytes");
                }
                System.arraycopy(k, 0, bytes, 0, k.length);
            }
        };
    }
}
