package io.kefu.protocol;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import org.bouncycastle.asn1.x9.X9ECParameters;
import org.bouncycastle.crypto.ec.CustomNamedCurves;
import org.bouncycastle.crypto.params.ECDomainParameters;
import org.bouncycastle.crypto.params.ECPublicKeyParameters;
import org.bouncycastle.crypto.params.ParametersWithID;
import org.bouncycastle.crypto.signers.SM2Signer;
import org.bouncycastle.crypto.signers.StandardDSAEncoding;
import org.bouncycastle.math.ec.ECPoint;
import org.bouncycastle.math.ec.FixedPointCombMultiplier;
import org.bouncycastle.util.BigIntegers;

/**
 * SM2 on curveSM2 (GB/T 32918, RFC 8998): key validation, ECDH (the 32-byte x-coordinate of {@code d·Q}) and
 * SM2-with-SM3 signatures, DER-encoded and decoded strictly (spec/PROTOCOL.md section 6.1).
 *
 * <p>Signatures: {@code e = SM3(Z || M)} with {@code Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)}; signing
 * is this class's own ({@link #sign}: a fixed-point comb for {@code k·G}, blinded arithmetic mod n), verification
 * BouncyCastle's {@link SM2Signer}. The signer ID of kefu's handshake is {@link #SIGNER_ID_RFC8998}; other IDs exist
 * only for the published known answers. ECDH multiplies by the secret scalar with a fixed-length ladder
 * ({@link #ecdh}).
 *
 * <p>Thread-safety: stateless; every method is safe to call from any thread.
 */
public final class Sm2 {
    private Sm2() {}

    /** RFC 8998 section 3.2.1's signer ID, {@code "TLSv1.3+GM+Cipher+Suite"}: the one kefu signs with. */
    public static final byte[] SIGNER_ID_RFC8998 = "TLSv1.3+GM+Cipher+Suite".getBytes(StandardCharsets.US_ASCII);

    /** Length of an encoded public key: {@code 04 || x || y}. */
    public static final int PUBLIC_KEY_LENGTH = 65;
    /** Length of a private scalar. */
    public static final int SCALAR_LENGTH = 32;
    /** Longest strict-DER signature: two 33-byte INTEGERs with their tags and lengths, in a SEQUENCE. */
    public static final int MAX_SIGNATURE_LENGTH = 72;

    static final ECDomainParameters DOMAIN;

    static {
        // BouncyCastle's custom curveSM2 (fixed-length 256-bit field arithmetic, SM2P256V1Field), not the generic Fp
        // curve over BigInteger that GMNamedCurves gives: about ten times faster, and no BigInteger in the point
        // arithmetic on secret scalars
        X9ECParameters x9 = CustomNamedCurves.getByName("sm2p256v1");
        DOMAIN = new ECDomainParameters(x9.getCurve(), x9.getG(), x9.getN(), x9.getH());
    }

    private static final BigInteger N = DOMAIN.getN();

    /**
     * Decodes and validates a public key: exactly 65 bytes, {@code 04 || x || y}, a point of curveSM2 (so not the
     * point at infinity). Compressed and hybrid encodings are refused.
     *
     * @param encoded the encoded point
     * @return the point
     * @throws IllegalArgumentException if it is not a valid public key
     */
    static ECPoint decodePoint(byte[] encoded) {
        if (encoded.length != PUBLIC_KEY_LENGTH || encoded[0] != 0x04) {
            throw new IllegalArgumentException("an SM2 public key is 65 bytes, 04 || x || y");
        }
        ECPoint p = DOMAIN.getCurve().decodePoint(encoded); // checks the coordinates and the curve equation
        if (p.isInfinity() || !p.isValid()) {
            throw new IllegalArgumentException("not a point of curveSM2");
        }
        return p;
    }

    /**
     * Checks a private scalar: 32 bytes, {@code 1 <= d <= n-2}.
     *
     * @param scalar the big-endian scalar
     * @return the scalar as an integer
     * @throws IllegalArgumentException if it is out of range
     */
    static BigInteger privateScalar(byte[] scalar) {
        if (scalar.length != SCALAR_LENGTH) {
            throw new IllegalArgumentException("an SM2 private key is 32 bytes");
        }
        BigInteger d = new BigInteger(1, scalar);
        if (d.signum() <= 0 || d.compareTo(N.subtract(BigInteger.TWO)) > 0) {
            throw new IllegalArgumentException("SM2 private key out of [1, n-2]");
        }
        return d;
    }

    /**
     * A fresh private scalar, uniform in [1, n-2].
     *
     * @param random the source of randomness
     * @return 32 bytes, big-endian
     */
    static byte[] generatePrivate(SecureRandom random) {
        BigInteger d = BigIntegers.createRandomInRange(BigInteger.ONE, N.subtract(BigInteger.TWO), random);
        return BigIntegers.asUnsignedByteArray(SCALAR_LENGTH, d);
    }

    /**
     * The public key {@code d·G} of a private scalar.
     *
     * @param scalar the 32-byte private key
     * @return the 65-byte public key {@code 04 || x || y}
     * @throws IllegalArgumentException if the scalar is out of range
     */
    public static byte[] publicKey(byte[] scalar) {
        BigInteger d = privateScalar(scalar);
        return new FixedPointCombMultiplier().multiply(DOMAIN.getG(), d).normalize().getEncoded(false);
    }

    /**
     * ECDH on curveSM2 as RFC 8998 uses it: the 32-byte big-endian x-coordinate of {@code d·Q}.
     *
     * @param scalar our 32-byte private key
     * @param peer the peer's 65-byte public key
     * @return the shared secret
     * @throws IllegalArgumentException if {@code peer} is not a valid point
     */
    static byte[] ecdh(byte[] scalar, byte[] peer) {
        ECPoint q = decodePoint(peer);
        ECPoint s = ladder(q, privateScalar(scalar)).normalize();
        if (s.isInfinity()) {
            throw new IllegalArgumentException("shared point at infinity");
        }
        return s.getAffineXCoord().getEncoded();
    }

    /**
     * {@code d·Q} by a Montgomery ladder of fixed length: {@code d + n} (or {@code d + 2n}, for the {@code d} below
     * about 2^224 where {@code d + n} is one bit shorter) always has bit 256 set, so every multiplication runs the
     * same 256 steps of one addition and one doubling, whatever {@code d} is. (BouncyCastle's default multiplier for
     * an arbitrary point, wNAF, takes a path that depends on the scalar's digits.)
     */
    private static ECPoint ladder(ECPoint q, BigInteger d) {
        BigInteger k = d.add(N);
        if (k.bitLength() <= 256) {
            k = k.add(N);
        }
        ECPoint[] r = {q, q.twice()};
        for (int i = 255; i >= 0; i--) {
            int b = k.testBit(i) ? 1 : 0;
            r[1 - b] = r[1 - b].add(r[b]);
            r[b] = r[b].twice();
        }
        return r[0];
    }

    /**
     * Signs with SM2-with-SM3 (GB/T 32918.2 section 6.1): {@code e = SM3(Z || M)}, {@code (x1, y1) = k·G},
     * {@code r = (e + x1) mod n}, {@code s = (1 + d)^-1 · (k - r·d) mod n}.
     *
     * <p>{@code k·G} runs on BouncyCastle's fixed-point comb, whose steps and table reads do not depend on
     * {@code k}. The arithmetic mod n runs on {@link BigInteger}, which is not constant time, so it is done on
     * blinded values: with a fresh random {@code b}, {@code s = (b·k - r·(b·d)) · (b·d + b)^-1 mod n} (the
     * blinding factor cancels). Past the first two products, whose time depends on nothing of {@code d} and
     * {@code k} but their length in 32-bit words, every operand of a variable-time operation is a uniformly random
     * value independent of them.
     *
     * @param scalar the 32-byte private key
     * @param signerId the signer ID that enters Z ({@link #SIGNER_ID_RFC8998} in kefu)
     * @param message the message (hashed as {@code SM3(Z || message)})
     * @param random where the nonce {@code k} is drawn from (32 bytes at a time, redrawn unless
     *     {@code 1 <= k <= n-1}, as BouncyCastle's signer draws it): a {@link SecureRandom} in production; a source
     *     that returns fixed bytes only to reproduce test vectors (a {@code k} used twice reveals the key)
     * @return the DER signature
     */
    public static byte[] sign(byte[] scalar, byte[] signerId, byte[] message, SecureRandom random) {
        BigInteger d = privateScalar(scalar);
        ECPoint pub = new FixedPointCombMultiplier().multiply(DOMAIN.getG(), d).normalize();
        BigInteger e = new BigInteger(1, Crypto.Hash.SM3.digest(z(signerId, pub), message));
        SecureRandom blinding = new SecureRandom();
        FixedPointCombMultiplier comb = new FixedPointCombMultiplier();
        for (int attempt = 0; attempt < 16; attempt++) {
            BigInteger k = nextK(random);
            BigInteger x1 = comb.multiply(DOMAIN.getG(), k).normalize().getAffineXCoord().toBigInteger();
            BigInteger r = e.add(x1).mod(N);
            if (r.signum() == 0 || r.add(k).equals(N)) {
                continue;
            }
            BigInteger b = BigIntegers.createRandomInRange(BigInteger.ONE, N.subtract(BigInteger.ONE), blinding);
            BigInteger bd = b.multiply(d).mod(N);
            BigInteger numerator = b.multiply(k).subtract(r.multiply(bd)).mod(N);
            BigInteger denominator = bd.add(b).mod(N);
            BigInteger s = numerator.multiply(BigIntegers.modOddInverse(N, denominator)).mod(N);
            if (s.signum() == 0) {
                continue;
            }
            try {
                return StandardDSAEncoding.INSTANCE.encode(N, r, s);
            } catch (java.io.IOException ex) {
                throw new IllegalStateException("DER encoding failed", ex);
            }
        }
        throw new IllegalStateException("SM2 signing: 16 unusable nonces in a row (a broken random source)");
    }

    /** A nonce as BouncyCastle's RandomDSAKCalculator draws it: 32 bytes, redrawn unless {@code 1 <= k < n}. */
    private static BigInteger nextK(SecureRandom random) {
        for (int i = 0; i < 16; i++) {
            byte[] bytes = new byte[SCALAR_LENGTH];
            random.nextBytes(bytes);
            BigInteger k = new BigInteger(1, bytes);
            if (k.signum() > 0 && k.compareTo(N) < 0) {
                return k;
            }
        }
        throw new IllegalStateException("SM2 signing: no nonce in [1, n-1] in 16 draws (a broken random source)");
    }

    /** {@code Z = SM3(ENTL || ID || a || b || xG || yG || xA || yA)} (GB/T 32918.2 section 5.5). */
    static byte[] z(byte[] signerId, ECPoint pub) {
        int bits = signerId.length * 8;
        if (bits > 0xFFFF) {
            throw new IllegalArgumentException("signer id too long");
        }
        ECPoint g = DOMAIN.getG().normalize();
        return Crypto.Hash.SM3.digest(new byte[] {(byte) (bits >>> 8), (byte) bits}, signerId,
                DOMAIN.getCurve().getA().getEncoded(), DOMAIN.getCurve().getB().getEncoded(),
                g.getAffineXCoord().getEncoded(), g.getAffineYCoord().getEncoded(),
                pub.getAffineXCoord().getEncoded(), pub.getAffineYCoord().getEncoded());
    }

    /**
     * Verifies an SM2-with-SM3 signature. The signature must be strict DER (minimal INTEGERs, short-form lengths,
     * nothing after it), at most 72 bytes, with {@code 1 <= r, s <= n-1}.
     *
     * @param publicKey the 65-byte public key
     * @param signerId the signer ID that enters Z
     * @param message the signed message
     * @param signature the DER signature
     * @return true when the signature is valid; false for any invalid input
     */
    public static boolean verify(byte[] publicKey, byte[] signerId, byte[] message, byte[] signature) {
        if (signature.length > MAX_SIGNATURE_LENGTH) {
            return false;
        }
        ECPoint q;
        try {
            q = decodePoint(publicKey);
        } catch (IllegalArgumentException e) {
            return false;
        }
        SM2Signer signer = new SM2Signer(); // StandardDSAEncoding: decodes, re-encodes and compares (strict DER)
        signer.init(false, new ParametersWithID(new ECPublicKeyParameters(q, DOMAIN), signerId));
        signer.update(message, 0, message.length);
        return signer.verifySignature(signature);
    }
}
