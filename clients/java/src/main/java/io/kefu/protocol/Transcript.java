package io.kefu.protocol;

import java.util.Arrays;
import org.bouncycastle.crypto.Digest;
import org.bouncycastle.util.Memoable;

/**
 * The handshake transcript (spec/PROTOCOL.md section 5.1): a running hash of the whole encoded handshake frames, with
 * the hash of the transcript followed by some body bytes taken from a copy, and which body bytes of SERVER_FINISHED
 * and CLIENT_FINISHED their signature, proof and MAC cover (sections 5.4, 5.5): a prefix of the body as
 * {@link FrameCodec} encodes it, so that the wire format is declared in one place only.
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

    /** Encoded length of an empty {@code opaque<u8>}: the {@code verify_data} a covered part stops before. */
    private static final int EMPTY_U8_OPAQUE = 1;
    /** Encoded length of an empty {@code opaque<u16>}: the signature or proof a covered part stops before. */
    private static final int EMPTY_U16_OPAQUE = 2;

    private static byte[] bodyWithout(Frame frame, int emptyTail) {
        byte[] body = FrameCodec.encodeBody(frame);
        return Arrays.copyOf(body, body.length - emptyTail);
    }

    /** SERVER_FINISHED's body up to its signature: {@code key_type || public_key} (what the signature covers). */
    static byte[] signedPart(Frame.ServerFinished sf) {
        byte[] none = new byte[0];
        return bodyWithout(new Frame.ServerFinished(sf.keyType(), sf.publicKey(), none, none),
                EMPTY_U16_OPAQUE + EMPTY_U8_OPAQUE);
    }

    /** SERVER_FINISHED's body up to its {@code verify_data} (what the MAC covers). */
    static byte[] macedPart(Frame.ServerFinished sf) {
        return bodyWithout(new Frame.ServerFinished(sf.keyType(), sf.publicKey(), sf.signature(), new byte[0]),
                EMPTY_U8_OPAQUE);
    }

    /** CLIENT_FINISHED's body up to its {@code proof} (what the proof covers). */
    static byte[] provedPart(Frame.ClientFinished cf) {
        byte[] none = new byte[0];
        return bodyWithout(new Frame.ClientFinished(cf.appId(), cf.authMode(), cf.keyType(), cf.publicKey(), none,
                none), EMPTY_U16_OPAQUE + EMPTY_U8_OPAQUE);
    }

    /** CLIENT_FINISHED's body up to its {@code verify_data} (what the MAC covers). */
    static byte[] macedPart(Frame.ClientFinished cf) {
        return bodyWithout(new Frame.ClientFinished(cf.appId(), cf.authMode(), cf.keyType(), cf.publicKey(),
                cf.proof(), new byte[0]), EMPTY_U8_OPAQUE);
    }
}
