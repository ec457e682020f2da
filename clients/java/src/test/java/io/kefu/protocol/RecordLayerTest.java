package io.kefu.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/** spec/vectors/records.json byte for byte (section 6.3 and 6.4), and the record layer's refusals. */
class RecordLayerTest {
    static final List<Map<String, Object>> SUITES = Vectors.list(Vectors.load("records.json"), "suites");

    static byte[] hex(Map<String, Object> v, String key) {
        return Hex.decode((String) v.get(key));
    }

    static byte[] header(byte[] record) {
        return Arrays.copyOf(record, 12);
    }

    static byte[] body(byte[] record) {
        return Arrays.copyOfRange(record, 12, record.length);
    }

    @TestFactory
    Stream<DynamicTest> vectorsSealAndOpenByteForByte() {
        assertEquals(2, SUITES.size());
        return SUITES.stream().map(v -> DynamicTest.dynamicTest((String) v.get("suite_name"), () -> {
            Suite suite = Suite.ofCode(((Number) v.get("suite")).intValue());
            assertEquals(v.get("suite_name"), suite.label());
            byte[] secret = hex(v, "secret");
            Crypto.Hash h = suite.hash();
            assertEquals(v.get("key"), Hex.encode(KeySchedule.expandLabel(h, secret, "key", new byte[0], 16)));
            assertEquals(v.get("iv"), Hex.encode(KeySchedule.expandLabel(h, secret, "iv", new byte[0], 12)));
            RecordLayer sender = new RecordLayer(suite, secret);
            RecordLayer receiver = new RecordLayer(suite, secret);
            for (Map<String, Object> r : Vectors.list(v, "records")) {
                assertEquals(((Number) r.get("seq")).longValue(), sender.seq());
                byte[] sealed = sender.seal(hex(r, "plaintext"));
                assertEquals(r.get("hex"), Hex.encode(sealed));
                assertArrayEquals(hex(r, "plaintext"), receiver.open(header(sealed), body(sealed)));
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> after = (Map<String, Object>) v.get("after_key_update");
            sender.update();
            receiver.update();
            assertEquals(after.get("secret"), Hex.encode(sender.secret()));
            assertEquals(0, sender.seq());
            byte[] sealed = sender.seal(hex(after, "plaintext"));
            assertEquals(after.get("hex"), Hex.encode(sealed));
            assertArrayEquals(hex(after, "plaintext"), receiver.open(header(sealed), body(sealed)));
        }));
    }

    static final byte[] SECRET = Hex.decode("6465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283");
    static final byte[] PING = Hex.decode("0000000801200000000000000000000000000007");

    @Test
    void aTamperedHeaderOrBodyOrAReplayFailsWithBadRecordMac() throws ProtocolException {
        for (Suite suite : Suite.values()) {
            RecordLayer sender = new RecordLayer(suite, SECRET);
            byte[] first = sender.seal(PING);
            byte[] second = sender.seal(PING);
            byte[] badHeader = header(first);
            badHeader[11] = 1; // request_id is not checked but it is authenticated
            assertEquals(ErrorCode.BAD_RECORD_MAC, assertThrows(ProtocolException.class,
                    () -> new RecordLayer(suite, SECRET).open(badHeader, body(first))).code());
            byte[] badBody = body(first);
            badBody[0] ^= 0x80;
            assertEquals(ErrorCode.BAD_RECORD_MAC, assertThrows(ProtocolException.class,
                    () -> new RecordLayer(suite, SECRET).open(header(first), badBody)).code());
            RecordLayer receiver = new RecordLayer(suite, SECRET);
            assertEquals(ErrorCode.BAD_RECORD_MAC, assertThrows(ProtocolException.class,
                    () -> receiver.open(header(second), body(second))).code(), "reordered");
            RecordLayer inOrder = new RecordLayer(suite, SECRET);
            inOrder.open(header(first), body(first));
            assertEquals(ErrorCode.BAD_RECORD_MAC, assertThrows(ProtocolException.class,
                    () -> inOrder.open(header(first), body(first))).code(), "replayed");
            assertEquals(ErrorCode.BAD_RECORD_MAC, assertThrows(ProtocolException.class,
                    () -> new RecordLayer(suite, SECRET).open(header(first), new byte[15])).code(), "short");
        }
    }

    @Test
    void theSenderAsksForAnUpdateBeforeTheByteLimit() {
        RecordLayer layer = new RecordLayer(Suite.NATIONAL, SECRET);
        assertFalse(layer.needsUpdate((int) (RecordLayer.BYTE_LIMIT - RecordLayer.UPDATE_MARGIN)));
        assertTrue(layer.needsUpdate((int) (RecordLayer.BYTE_LIMIT - RecordLayer.UPDATE_MARGIN + 1)));
    }

    @Test
    void toStringShowsNoKey() {
        RecordLayer layer = new RecordLayer(Suite.INTERNATIONAL, SECRET);
        String text = layer.toString() + new Crypto.Aead(false, new byte[16]);
        assertFalse(text.contains(Hex.encode(SECRET).substring(0, 8)), text);
        assertTrue(text.contains("international"), text);
    }
}
