package io.kefu.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The frames inside spec/vectors/handshakes.json and records.json, through FrameCodec: every application frame a
 * scenario sends, every plaintext and RECORD frame of every flight, and every record's plaintext split into its inner
 * frames, each re-encoded byte for byte. (The cryptography of these files is J1's tests' business.)
 */
class FlightFramesTest {
    private static final Map<String, Object> HANDSHAKES = Vectors.load("handshakes.json");
    private static final Map<String, Object> RECORDS = Vectors.load("records.json");

    /** Splits a flight into its outer frames, decodes each and checks it re-encodes to the same bytes. */
    private static List<Frame> outerFrames(byte[] flight) throws ProtocolException {
        List<Frame> out = new java.util.ArrayList<>();
        int pos = 0;
        while (pos < flight.length) {
            FrameHeader h = FrameCodec.readHeader(flight, pos);
            int len = FrameCodec.HEADER_LEN + (int) h.length();
            Frame f = FrameCodec.decode(flight, pos, len);
            assertArrayEquals(java.util.Arrays.copyOfRange(flight, pos, pos + len), FrameCodec.encode(f));
            out.add(f);
            pos += len;
        }
        return out;
    }

    /** Decodes a record's plaintext and checks that the frames re-encode to exactly it. */
    private static List<FrameCodec.InnerFrame> inner(String hex) throws ProtocolException {
        byte[] plaintext = Hex.decode(hex);
        List<FrameCodec.InnerFrame> frames = FrameCodec.decodeInner(plaintext, 0, plaintext.length);
        ByteArrayOutputStream again = new ByteArrayOutputStream();
        for (FrameCodec.InnerFrame f : frames) {
            byte[] encoded = FrameCodec.encode(f.frame());
            assertEquals(f.length(), encoded.length);
            assertArrayEquals(java.util.Arrays.copyOfRange(plaintext, f.offset(), f.offset() + f.length()), encoded);
            again.writeBytes(encoded);
        }
        assertArrayEquals(plaintext, again.toByteArray());
        return frames;
    }

    @Test
    void handshakeScenarios() throws ProtocolException {
        int scenarios = 0;
        int sends = 0;
        int innerFrames = 0;
        int events = 0;
        for (Map<String, Object> scenario : Vectors.list(HANDSHAKES, "scenarios")) {
            String name = (String) scenario.get("name");
            for (Map<String, Object> step : Vectors.list(scenario, "steps")) {
                for (Map<String, Object> v : Vectors.list(step, "sends")) {
                    Frame f = Vectors.frameOf(v);
                    assertEquals(v.get("hex"), Hex.encode(FrameCodec.encode(f)), name);
                    assertEquals(f, FrameCodec.decode(Hex.decode((String) v.get("hex"))), name);
                    sends++;
                }
                List<Frame> outer = outerFrames(Hex.decode((String) step.get("hex")));
                List<Map<String, Object>> records = Vectors.list(step, "records");
                List<Frame> sealed = outer.stream().filter(f -> f instanceof Frame.Record).toList();
                assertEquals(records.size(), sealed.size(), name);
                for (Frame f : outer) {
                    if (!(f instanceof Frame.Record)) {
                        assertTrue(List.of(FrameType.CLIENT_HELLO, FrameType.SERVER_HELLO).contains(f.type()),
                                name + ": plaintext " + f.type());
                    }
                }
                for (Map<String, Object> record : records) {
                    innerFrames += inner((String) record.get("plaintext")).size();
                }
            }
            @SuppressWarnings("unchecked")
            Map<String, Object> fin = (Map<String, Object>) scenario.get("final");
            for (String side : List.of("client_events", "server_events")) {
                for (Map<String, Object> event : Vectors.list(fin, side)) {
                    String type = (String) event.get("event");
                    if (isFrameType(type)) {
                        events++;
                        Map<String, Object> v = new LinkedHashMap<>(event);
                        v.put("type_name", type);
                        Frame f = Vectors.frameOf(v);
                        assertEquals(f, FrameCodec.decode(FrameCodec.encode(f)), name + " " + type);
                    }
                }
            }
            scenarios++;
        }
        assertEquals(5, scenarios, "handshakes.json changed: recount");
        assertTrue(sends >= 10, "sends " + sends);
        assertTrue(innerFrames >= 25, "inner frames " + innerFrames);
        assertTrue(events >= 10, "frame events " + events);
        System.out.printf("handshakes.json: %d scenarios, %d sent frames, %d inner frames, %d frame events%n",
                scenarios, sends, innerFrames, events);
    }

    private static boolean isFrameType(String name) {
        for (FrameType t : FrameType.values()) {
            if (t.name().equals(name)) {
                return true;
            }
        }
        return false;
    }

    @Test
    void recordVectors() throws ProtocolException {
        int records = 0;
        for (Map<String, Object> suite : Vectors.list(RECORDS, "suites")) {
            List<Map<String, Object>> all = new java.util.ArrayList<>(Vectors.list(suite, "records"));
            @SuppressWarnings("unchecked")
            Map<String, Object> after = (Map<String, Object>) suite.get("after_key_update");
            all.add(after);
            for (Map<String, Object> record : all) {
                List<Frame> outer = outerFrames(Hex.decode((String) record.get("hex")));
                assertEquals(1, outer.size());
                assertInstanceOf(Frame.Record.class, outer.get(0));
                inner((String) record.get("plaintext"));
                records++;
            }
            List<FrameCodec.InnerFrame> batch = inner((String) Vectors.list(suite, "records").get(1).get("plaintext"));
            assertEquals(List.of(FrameType.SEND, FrameType.PING), batch.stream().map(f -> f.frame().type()).toList());
        }
        assertEquals(8, records);
    }
}
