package io.kefu.protocol;

import org.bouncycastle.crypto.Digest;
import org.bouncycastle.util.Memoable;

/**
 * The handshake transcript (spec/PROTOCOL.md section 5.1): a running hash of the whole encoded handshake frames, with
 * the hash of the transcript followed by some body bytes taken from a copy.
 *
 * <p>Package-private; not thread-safe (one handshake, one thread).
 */
final class Transcript {
    private final Digest digest;

    Transcript(Crypto.Hash hash) {
        this.digest = hash.newDigest();
    }

    /** Appends a whole encoded frame (header and body). */
    void add(byte[] frame) {
        digest.update(frame, 0, frame.length);
    }

    /** Hash of the transcript so far followed by {@code extra} (a frame's body prefix); the transcript is unchanged. */
    byte[] digest(byte[]... extra) {
        Digest copy = (Digest) ((Memoable) digest).copy();
        for (byte[] e : extra) {
            copy.update(e, 0, e.length);
        }
        byte[] out = new byte[Crypto.HASH_LENGTH];
        copy.doFinal(out, 0);
        return out;
    }
}
