package io.kefu.protocol;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The key schedule of one handshake (spec/PROTOCOL.md section 6.2): TLS 1.3's (RFC 8446 section 7.1) with the label
 * prefix {@code "kefu1 "} instead of {@code "tls13 "}.
 *
 * <pre>
 *          0 or PSK -&gt; HKDF-Extract(salt=0)              = early_secret
 *                          +-&gt; Derive-Secret(., "res binder", "")   -&gt; binder key
 *                          v Derive-Secret(., "derived", "")
 * 0 or ECDHE -&gt; HKDF-Extract(salt=.)                      = handshake_secret
 *                          +-&gt; "c hs traffic", "s hs traffic" over Hash(CH..SH)
 *                          v Derive-Secret(., "derived", "")
 *          0 -&gt; HKDF-Extract(salt=.)                      = master_secret
 *                          +-&gt; "c ap traffic", "s ap traffic" over Hash(CH..SF)
 *                          +-&gt; "res master" over Hash(CH..CF)
 * </pre>
 *
 * <p>{@link #toString()} names the hash only. Not thread-safe: one handshake advances it from one thread.
 */
public final class KeySchedule {
    /** The label prefix that keeps kefu keys apart from TLS keys derived from the same secret. */
    public static final String LABEL_PREFIX = "kefu1 ";

    private final Crypto.Hash hash;
    private final byte[] emptyHash;
    private byte[] earlySecret;
    private byte[] handshakeSecret = new byte[0];
    private byte[] masterSecret = new byte[0];

    /**
     * A fresh schedule.
     *
     * @param hash the suite's hash
     * @param psk the resumption PSK, or {@code null} for a full handshake
     */
    public KeySchedule(Crypto.Hash hash, byte[] psk) {
        this.hash = hash;
        this.emptyHash = hash.digest();
        this.earlySecret = hash.hkdfExtract(new byte[0], psk != null ? psk : new byte[Crypto.HASH_LENGTH]);
    }

    /**
     * HKDF-Expand-Label with the {@code "kefu1 "} prefix: HKDF-Expand(secret, HkdfLabel, length) with
     * {@code HkdfLabel = u16 length || u8 len(L') || L' || u8 len(context) || context}.
     *
     * @param hash the suite's hash
     * @param secret the secret
     * @param label the label without its prefix, for example {@code "key"}
     * @param context the context (a transcript hash, a ticket nonce, or empty)
     * @param length the output length
     * @return {@code length} bytes
     */
    public static byte[] expandLabel(Crypto.Hash hash, byte[] secret, String label, byte[] context, int length) {
        byte[] full = (LABEL_PREFIX + label).getBytes(StandardCharsets.US_ASCII);
        byte[] info = new byte[2 + 1 + full.length + 1 + context.length];
        info[0] = (byte) (length >>> 8);
        info[1] = (byte) length;
        info[2] = (byte) full.length;
        System.arraycopy(full, 0, info, 3, full.length);
        info[3 + full.length] = (byte) context.length;
        System.arraycopy(context, 0, info, 4 + full.length, context.length);
        return hash.hkdfExpand(secret, info, length);
    }

    /**
     * Derive-Secret(secret, label, messages) with the transcript hash already computed.
     *
     * @param hash the suite's hash
     * @param secret the secret
     * @param label the label without its prefix
     * @param transcriptHash {@code Hash(messages)}
     * @return 32 bytes
     */
    public static byte[] deriveSecret(Crypto.Hash hash, byte[] secret, String label, byte[] transcriptHash) {
        return expandLabel(hash, secret, label, transcriptHash, Crypto.HASH_LENGTH);
    }

    /**
     * The key of the resumption binder MAC: the finished key of Derive-Secret(early_secret, "res binder", "").
     *
     * @return 32 bytes
     */
    public byte[] binderKey() {
        return finishedKey(deriveSecret(hash, earlySecret, "res binder", emptyHash));
    }

    /**
     * {@code finished_key = HKDF-Expand-Label(base, "finished", "", 32)}.
     *
     * @param baseSecret a handshake traffic secret or the binder base
     * @return 32 bytes
     */
    public byte[] finishedKey(byte[] baseSecret) {
        return expandLabel(hash, baseSecret, "finished", new byte[0], Crypto.HASH_LENGTH);
    }

    /**
     * Enters the handshake stage with the ECDHE secret, and derives the master secret.
     *
     * @param shared the ECDHE shared secret, or {@code null} in a PSK_ONLY resumption
     */
    public void addSharedSecret(byte[] shared) {
        byte[] derived = deriveSecret(hash, earlySecret, "derived", emptyHash);
        handshakeSecret = hash.hkdfExtract(derived, shared != null ? shared : new byte[Crypto.HASH_LENGTH]);
        derived = deriveSecret(hash, handshakeSecret, "derived", emptyHash);
        masterSecret = hash.hkdfExtract(derived, new byte[Crypto.HASH_LENGTH]);
    }

    /**
     * The handshake traffic secrets.
     *
     * @param transcriptHash {@code Hash(CH || SH)}
     * @return {c_hs, s_hs}
     */
    public byte[][] handshakeTraffic(byte[] transcriptHash) {
        return new byte[][] {
            deriveSecret(hash, handshakeSecret, "c hs traffic", transcriptHash),
            deriveSecret(hash, handshakeSecret, "s hs traffic", transcriptHash),
        };
    }

    /**
     * The application traffic secrets.
     *
     * @param transcriptHash {@code Hash(CH || SH || SF)}
     * @return {c_ap, s_ap}
     */
    public byte[][] applicationTraffic(byte[] transcriptHash) {
        return new byte[][] {
            deriveSecret(hash, masterSecret, "c ap traffic", transcriptHash),
            deriveSecret(hash, masterSecret, "s ap traffic", transcriptHash),
        };
    }

    /**
     * The resumption secret.
     *
     * @param transcriptHash {@code Hash(CH || SH || SF || CF)}
     * @return 32 bytes
     */
    public byte[] resumptionSecret(byte[] transcriptHash) {
        return deriveSecret(hash, masterSecret, "res master", transcriptHash);
    }

    /**
     * A ticket's PSK: {@code HKDF-Expand-Label(resumption_secret, "resumption", nonce, 32)}.
     *
     * @param resumptionSecret the connection's resumption secret
     * @param nonce the NEW_TICKET nonce
     * @return 32 bytes
     */
    public byte[] ticketPsk(byte[] resumptionSecret, byte[] nonce) {
        return expandLabel(hash, resumptionSecret, "resumption", nonce, Crypto.HASH_LENGTH);
    }

    /** Zeroes every secret held; the schedule is unusable afterwards. */
    public void destroy() {
        Arrays.fill(earlySecret, (byte) 0);
        Arrays.fill(handshakeSecret, (byte) 0);
        Arrays.fill(masterSecret, (byte) 0);
    }

    /**
     * Names the hash only; never a secret.
     *
     * @return for example {@code "KeySchedule[SM3]"}
     */
    @Override
    public String toString() {
        return "KeySchedule[" + hash + "]";
    }
}
