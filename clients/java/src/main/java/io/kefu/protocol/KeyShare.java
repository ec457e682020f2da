package io.kefu.protocol;

import java.security.SecureRandom;
import java.util.Arrays;
import org.bouncycastle.math.ec.rfc7748.X25519;

/**
 * An ephemeral key-exchange key of one suite's group (spec/PROTOCOL.md section 6.1): ECDHE on curveSM2 (65-byte
 * shares, the shared secret is the x-coordinate of {@code d·Q}) or X25519 (32-byte shares, RFC 7748).
 *
 * <p>{@link #toString()} never shows the private key; {@link #destroy()} zeroes it once the handshake no longer needs
 * it. Not thread-safe: one handshake uses it from one thread.
 */
public final class KeyShare {
    private final Suite suite;
    private final byte[] privateKey;
    private final byte[] publicKey;

    private KeyShare(Suite suite, byte[] privateKey) {
        this.suite = suite;
        this.privateKey = privateKey.clone();
        if (suite == Suite.NATIONAL) {
            this.publicKey = Sm2.publicKey(this.privateKey);
        } else {
            if (privateKey.length != X25519.SCALAR_SIZE) {
                throw new IllegalArgumentException("an X25519 private key is 32 bytes");
            }
            this.publicKey = new byte[X25519.POINT_SIZE];
            X25519.scalarMultBase(this.privateKey, 0, this.publicKey, 0);
        }
    }

    /**
     * A fresh random ephemeral key for a suite's group.
     *
     * @param suite the suite
     * @param random a cryptographically secure source
     * @return the key
     */
    public static KeyShare generate(Suite suite, SecureRandom random) {
        byte[] d;
        if (suite == Suite.NATIONAL) {
            d = Sm2.generatePrivate(random);
        } else {
            d = new byte[X25519.SCALAR_SIZE];
            random.nextBytes(d); // clamped by X25519 itself (RFC 7748 section 5)
        }
        KeyShare share = new KeyShare(suite, d);
        Arrays.fill(d, (byte) 0);
        return share;
    }

    /**
     * An ephemeral key from a fixed private scalar: for test vectors only.
     *
     * @param suite the suite
     * @param privateKey the 32-byte scalar; copied
     * @return the key
     * @throws IllegalArgumentException if the scalar is not a valid private key of the group
     */
    public static KeyShare fromPrivate(Suite suite, byte[] privateKey) {
        return new KeyShare(suite, privateKey);
    }

    /**
     * The suite whose group this key belongs to.
     *
     * @return the suite
     */
    public Suite suite() {
        return suite;
    }

    /**
     * The public share sent in CLIENT_HELLO.
     *
     * @return a copy of the 65-byte (curveSM2) or 32-byte (X25519) share
     */
    public byte[] publicBytes() {
        return publicKey.clone();
    }

    /**
     * The shared secret with the peer's share.
     *
     * @param peer the peer's encoded share
     * @return the 32-byte shared secret
     * @throws ProtocolException with {@link ErrorCode#BAD_KEY_SHARE} if the share is not a valid point of the group
     *     (for X25519: not 32 bytes, or a low-order point giving the all-zero secret)
     */
    public byte[] exchange(byte[] peer) throws ProtocolException {
        if (suite == Suite.NATIONAL) {
            try {
                return Sm2.ecdh(privateKey, peer);
            } catch (IllegalArgumentException e) {
                throw new ProtocolException(ErrorCode.BAD_KEY_SHARE, "not a point of curveSM2");
            }
        }
        if (peer.length != X25519.POINT_SIZE) {
            throw new ProtocolException(ErrorCode.BAD_KEY_SHARE, "an X25519 share is 32 bytes");
        }
        byte[] shared = new byte[X25519.POINT_SIZE];
        if (!X25519.calculateAgreement(privateKey, 0, peer, 0, shared, 0)) {
            throw new ProtocolException(ErrorCode.BAD_KEY_SHARE, "X25519 share gives a zero secret");
        }
        return shared;
    }

    /** Zeroes the private key; the share is unusable afterwards. */
    public void destroy() {
        Arrays.fill(privateKey, (byte) 0);
    }

    /**
     * Names the suite only.
     *
     * @return for example {@code "KeyShare[national]"}
     */
    @Override
    public String toString() {
        return "KeyShare[" + suite.label() + "]";
    }
}
