package io.kefu.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigInteger;
import java.security.SecureRandom;
import java.util.Base64;
import org.bouncycastle.util.BigIntegers;
import org.junit.jupiter.api.Test;

/** Keys, pins, configuration and tickets: validation, round trips, and that no secret shows in toString. */
class CryptoObjectsTest {
    static final SecureRandom RANDOM = new SecureRandom();

    @Test
    void sm2EcdhAgreesWithBouncyCastlesOwnMultiplication() throws ProtocolException {
        BigInteger n = Sm2.DOMAIN.getN();
        BigInteger[] edge = {BigInteger.ONE, BigInteger.TWO, n.subtract(BigInteger.TWO), BigInteger.ONE.shiftLeft(200)};
        for (int i = 0; i < 12; i++) {
            BigInteger d = i < edge.length ? edge[i] : BigIntegers.createRandomInRange(BigInteger.ONE,
                    n.subtract(BigInteger.TWO), RANDOM);
            KeyShare a = KeyShare.fromPrivate(Suite.NATIONAL, BigIntegers.asUnsignedByteArray(32, d));
            KeyShare b = KeyShare.generate(Suite.NATIONAL, RANDOM);
            byte[] expected = Sm2.decodePoint(b.publicBytes()).multiply(d).normalize().getAffineXCoord().getEncoded();
            assertArrayEquals(expected, a.exchange(b.publicBytes()), "d = " + d);
            assertArrayEquals(expected, b.exchange(a.publicBytes()));
        }
    }

    @Test
    void invalidSharesAreBadKeyShares() {
        KeyShare national = KeyShare.generate(Suite.NATIONAL, RANDOM);
        byte[] compressed = java.util.Arrays.copyOf(national.publicBytes(), 33);
        compressed[0] = 2;
        byte[] offCurve = national.publicBytes();
        offCurve[64] ^= 1;
        for (byte[] bad : new byte[][] {compressed, offCurve, new byte[65], new byte[0]}) {
            assertEquals(ErrorCode.BAD_KEY_SHARE,
                    assertThrows(ProtocolException.class, () -> national.exchange(bad)).code());
        }
        KeyShare intl = KeyShare.generate(Suite.INTERNATIONAL, RANDOM);
        for (byte[] bad : new byte[][] {new byte[32], new byte[31]}) { // u = 0 is a low-order point
            assertEquals(ErrorCode.BAD_KEY_SHARE, assertThrows(ProtocolException.class, () -> intl.exchange(bad)).code());
        }
    }

    @Test
    void signaturesRoundTripAndStrictDerIsRequired() throws ProtocolException {
        for (KeyType type : KeyType.values()) {
            SigningKey key = SigningKey.generate(type, RANDOM);
            byte[] msg = "kefu".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
            byte[] sig = key.sign(msg);
            VerifyKey pub = VerifyKey.of(type, key.verifyKey().publicBytes());
            assertTrue(pub.verify(sig, msg));
            assertFalse(pub.verify(sig, "kefv".getBytes(java.nio.charset.StandardCharsets.US_ASCII)));
            byte[] trailing = ClientConnection.concat(sig, new byte[] {0});
            assertFalse(pub.verify(trailing, msg), type + ": bytes after the signature");
            assertEquals(SigningKey.of(type, key.privateBytes()).verifyKey().fingerprint(), pub.fingerprint());
            assertTrue(pub.fingerprint().startsWith(type.pinPrefix()));
            assertFalse(key.toString().contains(Hex.encode(key.privateBytes())), key.toString());
        }
        byte[] point = SigningKey.generate(KeyType.SM2, RANDOM).verifyKey().publicBytes();
        point[1] ^= 1;
        byte[] offCurve = point;
        assertEquals(ErrorCode.BAD_SIGNATURE,
                assertThrows(ProtocolException.class, () -> VerifyKey.of(KeyType.SM2, offCurve)).code());
        assertThrows(IllegalArgumentException.class, () -> SigningKey.of(KeyType.SM2, new byte[32]), "d = 0");
    }

    @Test
    void theAppSecretTextOfTheSpecDecodesToItsBytes() {
        byte[] expected = Hex.decode("c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7");
        assertArrayEquals(expected, ClientConfig.decodeAppSecret("yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc"));
        assertArrayEquals(expected, ClientConfig.decodeAppSecret(" yMnKy8zNzs_Q0dLT1NXW19jZ2tvc3d7f4OHi4-Tl5uc=\n"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> ClientConfig.decodeAppSecret("not/base64url+"));
        assertFalse(e.getMessage().contains("not/base64url"), "the message never repeats the secret");
    }

    @Test
    void pinsParseThePinsFile() {
        String sm2 = "sm2:" + "ab".repeat(32);
        String ed = "ed25519:" + "01".repeat(32);
        Pins pins = Pins.parse("# server pins\n" + sm2 + "\n\n  " + ed + "  \r\n");
        assertEquals(2, pins.asSet().size());
        assertTrue(pins.contains(sm2) && pins.contains(ed));
        assertThrows(IllegalArgumentException.class, () -> Pins.of("sm2:" + "AB".repeat(32)));
        assertThrows(IllegalArgumentException.class, () -> Pins.of("rsa:" + "ab".repeat(32)));
    }

    @Test
    void noSecretShowsInToString() {
        byte[] secret = new byte[32];
        RANDOM.nextBytes(secret);
        byte[] psk = new byte[32];
        RANDOM.nextBytes(psk);
        SessionTicket ticket = new SessionTicket(Suite.NATIONAL, new byte[40], psk, 600, 7, 1.0);
        ClientConfig config = ClientConfig.builder("bank-crm", Pins.of("sm2:" + "ab".repeat(32))).appSecret(secret)
                .ticket(ticket).build();
        String text = config + " " + ticket + " " + new KeySchedule(Crypto.Hash.SM3, psk)
                + " " + KeyShare.generate(Suite.NATIONAL, RANDOM);
        for (byte[] s : new byte[][] {secret, psk}) {
            assertFalse(text.contains(Hex.encode(s).substring(0, 16)), text);
            assertFalse(text.contains(Base64.getUrlEncoder().withoutPadding().encodeToString(s).substring(0, 12)), text);
        }
        assertTrue(text.contains("bank-crm"), text);
    }

    @Test
    void configurationNeedsCredentialsAndSuites() {
        Pins pins = Pins.of("sm2:" + "ab".repeat(32));
        assertThrows(IllegalArgumentException.class, () -> ClientConfig.builder("app", pins).build());
        assertThrows(IllegalArgumentException.class,
                () -> ClientConfig.builder("app", pins).appSecret(new byte[32]).suites().build());
        assertThrows(IllegalArgumentException.class,
                () -> ClientConfig.builder("", pins).appSecret(new byte[32]).build());
        ClientConfig ok = ClientConfig.builder("app", pins).appSecret(new byte[32])
                .suites(Suite.INTERNATIONAL, Suite.NATIONAL).build();
        assertEquals(java.util.List.of(Suite.INTERNATIONAL, Suite.NATIONAL), ok.suites());
    }

    @Test
    void ticketAgeAndExpiry() {
        SessionTicket t = new SessionTicket(Suite.NATIONAL, new byte[1], new byte[32], 600, 0xFFFFFFF0L, 100.0);
        assertEquals((30_000L + 0xFFFFFFF0L) & 0xFFFFFFFFL, t.obfuscatedAge(130.0), "mod 2^32");
        assertFalse(t.expired(699.9));
        assertTrue(t.expired(700.0));
    }
}
