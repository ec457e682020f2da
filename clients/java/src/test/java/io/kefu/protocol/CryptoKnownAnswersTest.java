package io.kefu.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigInteger;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;
import java.util.stream.Stream;
import org.bouncycastle.asn1.ASN1EncodableVector;
import org.bouncycastle.asn1.ASN1Integer;
import org.bouncycastle.asn1.DERSequence;
import org.bouncycastle.crypto.engines.SM4Engine;
import org.bouncycastle.crypto.params.KeyParameter;
import org.bouncycastle.math.ec.rfc7748.X25519;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The published known answers of spec/vectors/crypto-known-answers.json for every primitive kefu uses: SM3,
 * HMAC-SM3, SM4 (the block cipher), SM4-GCM, AES-GCM, X25519, HKDF-SHA256 and SM2 signatures on curveSM2. Vectors of
 * primitives kefu does not use (SM4-CBC/CTR/CCM, SM2 encryption and key exchange, P-256, the SM2 example curve of
 * GB/T 32918.2-4) are counted as skipped by {@link #everyAlgorithmIsRunOrKnowinglySkipped}.
 */
class CryptoKnownAnswersTest {
    static final Map<String, Object> FILE = Vectors.load("crypto-known-answers.json");
    static final List<String> USED = List.of("SM3", "HMAC-SM3", "SM4-ECB", "SM4-ECB-ITER", "SM4-GCM", "AES-GCM",
            "X25519", "X25519-ITER", "X25519-DH", "HKDF-SHA256", "SM2-SIGN");
    static final List<String> NOT_USED = List.of("SM4-CBC", "SM4-CTR", "SM4-CCM", "SM2-ENC", "SM2-KEX", "P256-ECDH");

    static List<Map<String, Object>> vectors(String alg) {
        List<Map<String, Object>> out = new ArrayList<>();
        for (Map<String, Object> v : Vectors.list(FILE, "vectors")) {
            if (alg.equals(v.get("alg"))) {
                out.add(v);
            }
        }
        return out;
    }

    static byte[] hex(Map<String, Object> v, String key) {
        return Hex.decode((String) v.get(key));
    }

    static Stream<DynamicTest> each(String alg, Consumer<Map<String, Object>> check) {
        List<Map<String, Object>> vs = vectors(alg);
        assertFalse(vs.isEmpty(), alg);
        return vs.stream().map(v -> DynamicTest.dynamicTest((String) v.get("id"), () -> check.accept(v)));
    }

    @Test
    void everyAlgorithmIsRunOrKnowinglySkipped() {
        for (Map<String, Object> v : Vectors.list(FILE, "vectors")) {
            String alg = (String) v.get("alg");
            assertTrue(USED.contains(alg) || NOT_USED.contains(alg), "unhandled algorithm " + alg);
        }
    }

    @TestFactory
    Stream<DynamicTest> sm3() {
        return each("SM3", v -> assertEquals(v.get("digest"), Hex.encode(Crypto.Hash.SM3.digest(hex(v, "msg_hex")))));
    }

    @TestFactory
    Stream<DynamicTest> hmacSm3() {
        return each("HMAC-SM3", v -> assertEquals(v.get("mac"),
                Hex.encode(Crypto.Hash.SM3.hmac(hex(v, "key"), hex(v, "msg_hex")))));
    }

    static byte[] sm4Ecb(byte[] key, byte[] pt) {
        SM4Engine e = new SM4Engine();
        e.init(true, new KeyParameter(key));
        byte[] ct = new byte[pt.length];
        for (int i = 0; i < pt.length; i += 16) {
            e.processBlock(pt, i, ct, i);
        }
        return ct;
    }

    @TestFactory
    Stream<DynamicTest> sm4Block() {
        return each("SM4-ECB", v -> assertEquals(v.get("ct"), Hex.encode(sm4Ecb(hex(v, "key"), hex(v, "pt")))));
    }

    @TestFactory
    Stream<DynamicTest> sm4BlockIterated() {
        return each("SM4-ECB-ITER", v -> {
            SM4Engine e = new SM4Engine();
            e.init(true, new KeyParameter(hex(v, "key")));
            byte[] block = hex(v, "pt");
            long n = ((Number) v.get("iterations")).longValue();
            for (long i = 0; i < n; i++) {
                e.processBlock(block, 0, block, 0);
            }
            assertEquals(v.get("ct"), Hex.encode(block));
        });
    }

    static void aeadVector(boolean sm4, Map<String, Object> v) {
        Crypto.Aead aead = new Crypto.Aead(sm4, hex(v, "key"));
        byte[] expected = ClientConnection.concat(hex(v, "ct"), hex(v, "tag"));
        assertEquals(Hex.encode(expected), Hex.encode(aead.seal(hex(v, "iv"), hex(v, "pt"), hex(v, "aad"))));
        Crypto.Aead opener = new Crypto.Aead(sm4, hex(v, "key"));
        try {
            assertArrayEquals(hex(v, "pt"), opener.open(hex(v, "iv"), expected, hex(v, "aad")));
        } catch (ProtocolException e) {
            throw new AssertionError(e);
        }
        byte[] tampered = expected.clone();
        tampered[tampered.length - 1] ^= 1;
        ProtocolException e = assertThrows(ProtocolException.class,
                () -> opener.open(hex(v, "iv"), tampered, hex(v, "aad")));
        assertEquals(ErrorCode.BAD_RECORD_MAC, e.code());
    }

    @TestFactory
    Stream<DynamicTest> sm4Gcm() {
        return each("SM4-GCM", v -> aeadVector(true, v));
    }

    @TestFactory
    Stream<DynamicTest> aesGcm() {
        return each("AES-GCM", v -> aeadVector(false, v));
    }

    @TestFactory
    Stream<DynamicTest> x25519() {
        return each("X25519", v -> {
            byte[] out = new byte[32];
            X25519.scalarMult(hex(v, "scalar"), 0, hex(v, "u"), 0, out, 0);
            assertEquals(v.get("out"), Hex.encode(out));
        });
    }

    @TestFactory
    Stream<DynamicTest> x25519Iterated() {
        return each("X25519-ITER", v -> {
            // 1,000,000 iterations take minutes; the 1 and 1,000 ones already cover the ladder
            Assumptions.assumeFalse(Boolean.TRUE.equals(v.get("slow")), "slow vector");
            byte[] k = new byte[32];
            byte[] u = new byte[32];
            k[0] = 9;
            u[0] = 9;
            long n = ((Number) v.get("iterations")).longValue();
            for (long i = 0; i < n; i++) {
                byte[] r = new byte[32];
                X25519.scalarMult(k, 0, u, 0, r, 0);
                u = k;
                k = r;
            }
            assertEquals(v.get("out"), Hex.encode(k));
        });
    }

    @TestFactory
    Stream<DynamicTest> x25519KeyShares() {
        return each("X25519-DH", v -> {
            try {
                KeyShare a = KeyShare.fromPrivate(Suite.INTERNATIONAL, hex(v, "a_priv"));
                KeyShare b = KeyShare.fromPrivate(Suite.INTERNATIONAL, hex(v, "b_priv"));
                assertEquals(v.get("a_pub"), Hex.encode(a.publicBytes()));
                assertEquals(v.get("b_pub"), Hex.encode(b.publicBytes()));
                assertEquals(v.get("shared"), Hex.encode(a.exchange(b.publicBytes())));
                assertEquals(v.get("shared"), Hex.encode(b.exchange(a.publicBytes())));
            } catch (ProtocolException e) {
                throw new AssertionError(e);
            }
        });
    }

    @TestFactory
    Stream<DynamicTest> hkdfSha256() {
        return each("HKDF-SHA256", v -> {
            byte[] prk = Crypto.Hash.SHA256.hkdfExtract(hex(v, "salt"), hex(v, "ikm"));
            assertEquals(v.get("prk"), Hex.encode(prk));
            int length = ((Number) v.get("L")).intValue();
            assertEquals(v.get("okm"), Hex.encode(Crypto.Hash.SHA256.hkdfExpand(prk, hex(v, "info"), length)));
        });
    }

    /** A source that returns the published nonce k: reproduces the published (r, s) exactly. */
    static SecureRandom fixedK(byte[] k) {
        return new FixedRandoms(new byte[32], Map.of(), k).nonceSource();
    }

    static byte[] der(byte[] r, byte[] s) throws java.io.IOException {
        ASN1EncodableVector seq = new ASN1EncodableVector();
        seq.add(new ASN1Integer(new BigInteger(1, r)));
        seq.add(new ASN1Integer(new BigInteger(1, s)));
        return new DERSequence(seq).getEncoded();
    }

    @TestFactory
    Stream<DynamicTest> sm2Signatures() {
        return each("SM2-SIGN", v -> {
            // the GB/T 32918.2 example curve is not curveSM2: kefu never uses it
            Assumptions.assumeTrue("sm2p256v1".equals(v.get("curve")), "not curveSM2");
            try {
                byte[] d = hex(v, "d");
                byte[] pub = ClientConnection.concat(new byte[] {4}, hex(v, "pub"));
                byte[] uid = hex(v, "uid");
                byte[] msg = hex(v, "msg_hex");
                assertArrayEquals(pub, Sm2.publicKey(d));
                byte[] z = Sm2.z(uid, Sm2.decodePoint(pub));
                assertEquals(v.get("Z"), Hex.encode(z));
                assertEquals(v.get("e"), Hex.encode(Crypto.Hash.SM3.digest(z, msg)));
                byte[] published = der(hex(v, "r"), hex(v, "s"));
                assertEquals(Hex.encode(published), Hex.encode(Sm2.sign(d, uid, msg, fixedK(hex(v, "k")))));
                assertTrue(Sm2.verify(pub, uid, msg, published));
                assertFalse(Sm2.verify(pub, Sm2.SIGNER_ID_RFC8998, msg, published), "the signer id enters Z");
                byte[] other = msg.clone();
                other[0] ^= 1;
                assertFalse(Sm2.verify(pub, uid, other, published));
                byte[] fresh = Sm2.sign(d, uid, msg, new SecureRandom());
                assertTrue(Sm2.verify(pub, uid, msg, fresh));
                assertFalse(Arrays.equals(fresh, published), "a fresh nonce gives another signature");
            } catch (java.io.IOException e) {
                throw new AssertionError(e);
            }
        });
    }
}
