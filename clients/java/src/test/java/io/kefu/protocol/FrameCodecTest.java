package io.kefu.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** spec/vectors/frames.json both ways, byte for byte, and every malformed input refused with the spec's code. */
class FrameCodecTest {
    private static final Map<String, Object> FILE = Vectors.load("frames.json");
    private static final List<Map<String, Object>> FRAMES = Vectors.list(FILE, "frames");
    private static final List<Map<String, Object>> PARSE_ONLY = Vectors.list(FILE, "parse_only");

    private static byte[] hex(Map<String, Object> vector) {
        return Hex.decode((String) vector.get("hex"));
    }

    private static ProtocolException refused(byte[] buf) {
        return assertThrows(ProtocolException.class, () -> FrameCodec.decode(buf, 0, buf.length));
    }

    @Test
    void everyVectorEncodesToItsBytes() {
        for (Map<String, Object> v : FRAMES) {
            Frame frame = Vectors.frameOf(v);
            assertEquals(v.get("hex"), Hex.encode(FrameCodec.encode(frame)), (String) v.get("name"));
            assertEquals(((Number) v.get("type")).intValue(), frame.typeCode(), (String) v.get("name"));
        }
        assertEquals(34, FRAMES.size(), "frames.json changed: recount");
    }

    @Test
    void everyVectorDecodesToItsFields() throws ProtocolException {
        for (Map<String, Object> v : FRAMES) {
            String name = (String) v.get("name");
            Frame decoded = FrameCodec.decode(hex(v));
            assertEquals(Vectors.frameOf(v), decoded, name);
            assertEquals(v.get("type_name"), decoded.type().name(), name);
            Map<String, Object> fields = new LinkedHashMap<>(Vectors.fieldsOf((Record) decoded));
            assertEquals(v.get("request_id"), fields.remove("request_id"), name);
            assertEquals(v.get("flags"), fields.remove("flags"), name);
            assertEquals(v.get("fields"), fields, name);
        }
    }

    @Test
    void everyFrameTypeHasAVector() {
        Set<FrameType> covered = FRAMES.stream()
                .map(v -> FrameType.valueOf((String) v.get("type_name")))
                .collect(Collectors.toCollection(() -> EnumSet.noneOf(FrameType.class)));
        Set<FrameType> missing = EnumSet.complementOf(EnumSet.copyOf(covered));
        assertEquals(EnumSet.of(FrameType.RECORD), missing, "RECORD's vectors are in records.json");
    }

    @Test
    void parseOnlyVectors() throws ProtocolException {
        int checked = 0;
        for (Map<String, Object> v : PARSE_ONLY) {
            String name = (String) v.get("name");
            byte[] bytes = hex(v);
            switch ((String) v.get("expect")) {
                case "parses as" -> assertEquals(
                        FrameCodec.decode(Hex.decode((String) v.get("parses_as"))), FrameCodec.decode(bytes), name);
                case "skipped" -> {
                    Frame f = FrameCodec.decode(bytes);
                    assertInstanceOf(Frame.Unknown.class, f, name);
                    assertEquals(bytes[5] & 0xFF, f.typeCode(), name);
                }
                case "error" -> assertEquals(
                        ((Number) v.get("error")).intValue(), refused(bytes).code().code(), name);
                default -> fail("unknown expectation in " + name);
            }
            checked++;
        }
        assertEquals(5, checked);
    }

    @Test
    void everyTruncationOfEveryVectorIsRefused() {
        for (Map<String, Object> v : FRAMES) {
            byte[] whole = hex(v);
            for (int n = 0; n < whole.length; n++) {
                byte[] cut = Arrays.copyOf(whole, n);
                assertEquals(ErrorCode.TRUNCATED, refused(cut).code(), v.get("name") + " cut to " + n);
                ProtocolException inRecord = assertThrows(
                        ProtocolException.class, () -> FrameCodec.decodeInner(cut, 0, cut.length));
                assertEquals(ErrorCode.RECORD_FRAGMENT, inRecord.code(), v.get("name") + " cut to " + n);
            }
        }
    }

    /** A body cut short, with the header's length saying so: every field is required (section 3.3). */
    @Test
    void everyShortenedBodyIsMalformed() {
        for (Map<String, Object> v : FRAMES) {
            byte[] whole = hex(v);
            for (int n = FrameCodec.HEADER_LEN; n < whole.length; n++) {
                byte[] cut = Arrays.copyOf(whole, n);
                setLength(cut, n - FrameCodec.HEADER_LEN);
                assertEquals(ErrorCode.MALFORMED_FRAME, refused(cut).code(), v.get("name") + " body cut to " + n);
            }
        }
    }

    @Test
    void trailingBytesInTheBodyAreIgnoredButNotAfterTheFrame() throws ProtocolException {
        for (Map<String, Object> v : FRAMES) {
            byte[] whole = hex(v);
            byte[] longer = Arrays.copyOf(whole, whole.length + 3);
            assertEquals(ErrorCode.MALFORMED_FRAME, refused(longer).code(), (String) v.get("name"));
            setLength(longer, whole.length + 3 - FrameCodec.HEADER_LEN);
            assertEquals(FrameCodec.decode(whole), FrameCodec.decode(longer), (String) v.get("name"));
        }
    }

    @Test
    void oversizeLengthsAreRefusedFromTheHeaderAlone() {
        for (Map<String, Object> v : FRAMES) {
            byte[] header = Arrays.copyOf(hex(v), FrameCodec.HEADER_LEN);
            int limit = FrameCodec.bodyLimit(header[5] & 0xFF);
            for (long length : new long[] {limit + 1L, 0x7FFF_FFFFL, 0xFFFF_FFFFL}) {
                setLength(header, length);
                assertEquals(ErrorCode.FRAME_TOO_LARGE, refused(header).code(), v.get("name") + " " + length);
            }
            setLength(header, limit); // within the limit but absent: the frame is cut short, nothing allocated
            assertEquals(ErrorCode.TRUNCATED, refused(header).code(), (String) v.get("name"));
        }
    }

    @Test
    void limitsPerType() {
        assertEquals(4096, FrameCodec.bodyLimit(FrameType.CLIENT_HELLO.code()));
        assertEquals(4096, FrameCodec.bodyLimit(FrameType.SERVER_HELLO.code()));
        assertEquals(1_048_604, FrameCodec.bodyLimit(FrameType.RECORD.code()));
        assertEquals(1_048_576, FrameCodec.bodyLimit(FrameType.SEND.code()));
        assertEquals(1_048_576, FrameCodec.bodyLimit(0x99));
        assertEquals(1_048_588, FrameCodec.MAX_RECORD_PLAINTEXT);
        assertEquals(4096, FrameType.CLIENT_HELLO.bodyLimit());
        assertEquals(FrameCodec.MAX_RECORD_BODY, FrameType.RECORD.bodyLimit());
        int[] limits = FrameCodec.defaultLimits();
        limits[0] = -1; // a copy: the defaults are untouched
        assertEquals(FrameCodec.MAX_BODY, FrameCodec.defaultLimits()[0]);
    }

    /** A connection narrows the limits per state (section 8): refused from the header alone. */
    @Test
    void checkHeaderAgainstAStatesLimits() throws ProtocolException {
        int[] limits = FrameCodec.defaultLimits();
        limits[FrameType.PING.code()] = FrameCodec.NOT_ACCEPTED;
        limits[FrameType.RECORD.code()] = 4124;
        FrameHeader ping = FrameCodec.readHeader(FrameCodec.encodeHeader(FrameType.PING.code(), 0, 0, 8), 0);
        assertEquals(new FrameHeader(8, 1, 0x20, 0, 0), ping);
        assertEquals(ErrorCode.UNEXPECTED_FRAME,
                assertThrows(ProtocolException.class, () -> FrameCodec.checkHeader(ping, limits)).code());
        FrameCodec.checkHeader(ping); // the defaults accept it
        FrameHeader record = new FrameHeader(4125, 1, FrameType.RECORD.code(), 0, 0);
        assertEquals(ErrorCode.FRAME_TOO_LARGE,
                assertThrows(ProtocolException.class, () -> FrameCodec.checkHeader(record, limits)).code());
        FrameCodec.checkHeader(new FrameHeader(4124, 1, FrameType.RECORD.code(), 0, 0), limits);
        FrameHeader v2 = new FrameHeader(8, 2, FrameType.PING.code(), 0, 0);
        assertEquals(ErrorCode.UNSUPPORTED_VERSION,
                assertThrows(ProtocolException.class, () -> FrameCodec.checkHeader(v2, limits)).code());
        assertThrows(IndexOutOfBoundsException.class, () -> FrameCodec.readHeader(new byte[11], 0));
    }

    @Test
    void unsupportedVersionComesBeforeTheLength() {
        byte[] header = FrameCodec.encodeHeader(FrameType.PING.code(), 0, 0, 8);
        for (int version : new int[] {0, 2, 255}) {
            header[4] = (byte) version;
            assertEquals(ErrorCode.UNSUPPORTED_VERSION, refused(header).code());
            setLength(header, 0xFFFF_FFFFL);
            assertEquals(ErrorCode.UNSUPPORTED_VERSION, refused(header).code());
            setLength(header, 8);
        }
    }

    @Test
    void unknownTypesCriticalAreRefusedIgnorableAreSkipped() throws ProtocolException {
        int critical = 0;
        int ignorable = 0;
        for (int type = 0; type < 256; type++) {
            if (FrameType.of(type).isPresent()) {
                continue;
            }
            byte[] frame = concat(FrameCodec.encodeHeader(type, 3, 9, 2), new byte[] {1, 2});
            if (type < 0x80) {
                assertEquals(ErrorCode.UNKNOWN_FRAME_TYPE, refused(frame).code(), "type " + type);
                critical++;
            } else {
                Frame f = FrameCodec.decode(frame);
                assertEquals(new Frame.Unknown(9, 3, type, new byte[] {1, 2}), f);
                assertArrayEquals(frame, FrameCodec.encode(f));
                ignorable++;
            }
        }
        assertEquals(128 - FrameType.values().length, critical);
        assertEquals(128, ignorable);
    }

    @Test
    void invalidUtf8IsMalformed() throws ProtocolException {
        byte[] good = FrameCodec.encode(new Frame.Error(429, "rate limited"));
        assertEquals(new Frame.Error(429, "rate limited"), FrameCodec.decode(good));
        byte[][] badText = {
            {(byte) 0xff}, // not a leading byte
            {(byte) 0xc0, (byte) 0x80}, // overlong NUL
            {(byte) 0xed, (byte) 0xa0, (byte) 0x80}, // a surrogate
            {(byte) 0xe6, (byte) 0x82}, // cut short
            {(byte) 0xf4, (byte) 0x90, (byte) 0x80, (byte) 0x80}, // above U+10FFFF
        };
        for (byte[] text : badText) {
            byte[] body = concat(new byte[] {0x01, (byte) 0xad, 0, (byte) text.length}, text);
            byte[] frame = concat(FrameCodec.encodeHeader(FrameType.ERROR.code(), 0, 0, body.length), body);
            assertEquals(ErrorCode.MALFORMED_FRAME, refused(frame).code(), Hex.encode(text));
        }
    }

    /** A count or length prefix that claims more than the body holds is refused before anything is allocated. */
    @Test
    void hugePrefixesAreMalformed() {
        // SEND: client_msg_id, conversation_id, content_type, body opaque<u32> claiming 4 GiB - 1.
        byte[] body = new byte[16 + 8 + 2 + 4];
        Arrays.fill(body, 26, 30, (byte) 0xff);
        byte[] frame = concat(FrameCodec.encodeHeader(FrameType.SEND.code(), 0, 0, body.length), body);
        assertEquals(ErrorCode.MALFORMED_FRAME, refused(frame).code());
        // DELIVER_ACK with 65535 entries announced and none there.
        byte[] acks = concat(FrameCodec.encodeHeader(FrameType.DELIVER_ACK.code(), 0, 0, 2), new byte[] {-1, -1});
        assertEquals(ErrorCode.MALFORMED_FRAME, refused(acks).code());
    }

    /** Random corruption of every vector: a frame or a ProtocolException, never another exception. */
    @Test
    void corruptedVectorsGiveOnlyProtocolExceptions() {
        Random random = new Random(15);
        int refusedCount = 0;
        for (Map<String, Object> v : FRAMES) {
            byte[] whole = hex(v);
            for (int round = 0; round < 300; round++) {
                byte[] bad = whole.clone();
                int flips = 1 + random.nextInt(3);
                for (int i = 0; i < flips; i++) {
                    bad[FrameCodec.HEADER_LEN + random.nextInt(bad.length - FrameCodec.HEADER_LEN)] =
                            (byte) random.nextInt(256);
                }
                try {
                    Frame f = FrameCodec.decode(bad);
                    assertEquals(f, FrameCodec.decode(bad)); // deterministic
                } catch (ProtocolException e) {
                    assertEquals(ErrorCode.MALFORMED_FRAME, e.code(), v.get("name") + " " + Hex.encode(bad));
                    refusedCount++;
                } catch (RuntimeException e) {
                    fail(v.get("name") + " " + Hex.encode(bad) + " threw " + e);
                }
            }
        }
        assertTrue(refusedCount > 100, "the corruption should hit length prefixes and UTF-8: " + refusedCount);
    }

    /** Random record plaintexts built from valid headers over random bodies: only documented errors. */
    @Test
    void randomPlaintextsGiveOnlyProtocolExceptions() {
        Random random = new Random(8998);
        Set<ErrorCode> seen = EnumSet.noneOf(ErrorCode.class);
        int parsed = 0;
        for (int round = 0; round < 20_000; round++) {
            byte[] plaintext = new byte[random.nextInt(80)];
            random.nextBytes(plaintext);
            if (plaintext.length >= FrameCodec.HEADER_LEN) {
                int type = FrameType.values()[random.nextInt(FrameType.values().length)].code();
                int bodyLength = random.nextInt(plaintext.length - FrameCodec.HEADER_LEN + 1);
                byte[] header = FrameCodec.encodeHeader(type, 0, 0, bodyLength);
                System.arraycopy(header, 0, plaintext, 0, header.length);
            }
            try {
                FrameCodec.decodeInner(plaintext, 0, plaintext.length);
                parsed++;
            } catch (ProtocolException e) {
                seen.add(e.code());
            } catch (RuntimeException e) {
                fail(Hex.encode(plaintext) + " threw " + e);
            }
        }
        assertTrue(seen.containsAll(EnumSet.of(ErrorCode.MALFORMED_FRAME, ErrorCode.RECORD_FRAGMENT)), seen.toString());
        assertTrue(EnumSet.of(ErrorCode.MALFORMED_FRAME, ErrorCode.RECORD_FRAGMENT, ErrorCode.UNSUPPORTED_VERSION,
                ErrorCode.FRAME_TOO_LARGE, ErrorCode.UNKNOWN_FRAME_TYPE).containsAll(seen), seen.toString());
        assertTrue(parsed > 100, "some random bodies parse: " + parsed);
    }

    @Test
    void recordPlaintextSplitting() throws ProtocolException {
        byte[] ping = FrameCodec.encode(new Frame.Ping(3, 0, 42));
        byte[] ignorable = concat(FrameCodec.encodeHeader(0x80, 0, 0, 1), new byte[] {7});
        byte[] close = FrameCodec.encode(new Frame.Close(0, ""));
        byte[] plaintext = concat(concat(ping, ignorable), close);
        List<FrameCodec.InnerFrame> inner = FrameCodec.decodeInner(plaintext, 0, plaintext.length);
        assertEquals(3, inner.size());
        assertEquals(new Frame.Ping(3, 0, 42), inner.get(0).frame());
        assertInstanceOf(Frame.Unknown.class, inner.get(1).frame());
        assertEquals(new FrameCodec.InnerFrame(new Frame.Close(0, ""), ping.length + ignorable.length, close.length),
                inner.get(2));

        byte[] nested = concat(ping, FrameCodec.encode(new Frame.Record(new byte[16])));
        assertEquals(ErrorCode.RECORD_FRAGMENT,
                assertThrows(ProtocolException.class, () -> FrameCodec.decodeInner(nested, 0, nested.length)).code());
        assertEquals(ErrorCode.RECORD_FRAGMENT,
                assertThrows(ProtocolException.class, () -> FrameCodec.decodeInner(new byte[0], 0, 0)).code());
        byte[] badInner = concat(ping, FrameCodec.encodeHeader(0x7e, 0, 0, 0));
        assertEquals(ErrorCode.UNKNOWN_FRAME_TYPE,
                assertThrows(ProtocolException.class, () -> FrameCodec.decodeInner(badInner, 0, badInner.length))
                        .code());
    }

    @Test
    void recordFramesCarryTheirCiphertext() throws ProtocolException {
        byte[] ciphertext = new byte[40];
        new Random(1).nextBytes(ciphertext);
        byte[] encoded = FrameCodec.encode(new Frame.Record(ciphertext));
        assertArrayEquals(FrameCodec.encodeHeader(FrameType.RECORD.code(), 0, 0, 40), Arrays.copyOf(encoded, 12));
        assertEquals(new Frame.Record(ciphertext), FrameCodec.decode(encoded));
    }

    @Test
    void valuesThatDoNotFitAreRefusedWhenEncoding() {
        byte[] id = new byte[16];
        List<Runnable> misuse = new ArrayList<>();
        misuse.add(() -> FrameCodec.encode(new Frame.AgentStatus(256)));
        misuse.add(() -> FrameCodec.encode(new Frame.Error(-1, "x")));
        misuse.add(() -> FrameCodec.encode(new Frame.Error(65536, "x")));
        misuse.add(() -> FrameCodec.encode(new Frame.Ping(1L << 32, 0, 1)));
        misuse.add(() -> FrameCodec.encode(new Frame.Ping(0, 1 << 16, 1)));
        misuse.add(() -> FrameCodec.encode(new Frame.Sync(1, 0, 0, -1)));
        misuse.add(() -> FrameCodec.encode(new Frame.Send(new byte[15], 1, 1, new byte[1], List.of())));
        misuse.add(() -> FrameCodec.encode(new Frame.Error(1, "x".repeat(65536))));
        misuse.add(() -> FrameCodec.encode(new Frame.Error(1, "\ud800")));
        misuse.add(() -> FrameCodec.encode(
                new Frame.Send(id, 1, 1, new byte[1], List.of(new MetaEntry("k".repeat(256), new byte[0])))));
        misuse.add(() -> FrameCodec.encode(new Frame.Send(id, 1, 1, new byte[FrameCodec.MAX_BODY], List.of())));
        List<MetaEntry> many = new ArrayList<>();
        for (int i = 0; i < 256; i++) {
            many.add(new MetaEntry("k", new byte[0]));
        }
        misuse.add(() -> FrameCodec.encode(new Frame.Send(id, 1, 1, new byte[1], many)));
        for (int i = 0; i < misuse.size(); i++) {
            assertThrows(IllegalArgumentException.class, misuse.get(i)::run, "case " + i);
        }
        // The largest SEND body that fits: MAX_BODY minus the other fields (30 bytes and a 1-byte metadata count).
        byte[] fits = FrameCodec.encode(new Frame.Send(id, 1, 1, new byte[FrameCodec.MAX_BODY - 31], List.of()));
        assertEquals(FrameCodec.MAX_BODY + FrameCodec.HEADER_LEN, fits.length);
    }

    @Test
    void unsignedValuesSurviveTheRoundTrip() throws ProtocolException {
        long staff = (1L << 62) + 1 | 1L << 63;
        Frame.SendAck ack = new Frame.SendAck(0xFFFF_FFFFL, 0xFFFF, new byte[16], 65535, -1L, staff, -2L, 1L << 63);
        assertEquals(ack, FrameCodec.decode(FrameCodec.encode(ack)));
        assertTrue(ack.toString().contains("conversationId=" + Long.toUnsignedString(staff)), ack.toString());
        assertEquals("13835058055282163713", Long.toUnsignedString(staff));
    }

    @Test
    void listsAreCopiedAndUnmodifiable() {
        List<AckEntry> acks = new ArrayList<>(List.of(new AckEntry(1, 2)));
        Frame.DeliverAck frame = new Frame.DeliverAck(acks);
        acks.add(new AckEntry(3, 4));
        assertEquals(1, frame.acks().size());
        assertThrows(UnsupportedOperationException.class, () -> frame.acks().add(new AckEntry(5, 6)));
        assertThrows(NullPointerException.class, () -> new Frame.Error(1, null));
    }

    @Test
    void textIsUtf8ByteCounted() throws ProtocolException {
        Frame.Search search = new Frame.Search("账单", 20);
        byte[] encoded = FrameCodec.encode(search);
        assertEquals(12 + 2 + "账单".getBytes(StandardCharsets.UTF_8).length + 2, encoded.length);
        assertEquals(search, FrameCodec.decode(encoded));
    }

    private static void setLength(byte[] frame, long length) {
        for (int i = 0; i < 4; i++) {
            frame[i] = (byte) (length >>> (24 - 8 * i));
        }
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
