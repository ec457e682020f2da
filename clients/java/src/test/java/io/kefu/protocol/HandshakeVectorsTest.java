package io.kefu.protocol;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * spec/vectors/handshakes.json played by the Java client against the recorded server flights (section 11): the
 * client is built from the file's inputs alone (fixed randoms, ephemeral scalars and SM2 nonce), sends each
 * scenario's application frames, and every byte it writes must be the recorded client flight; what it reports and
 * derives must be what the file says.
 */
class HandshakeVectorsTest {
    static final Map<String, Object> FILE = Vectors.load("handshakes.json");
    @SuppressWarnings("unchecked")
    static final Map<String, Object> INPUTS = (Map<String, Object>) FILE.get("inputs");

    static byte[] hex(Map<String, Object> m, String key) {
        return Hex.decode((String) m.get(key));
    }

    static int num(Map<String, Object> m, String key) {
        return ((Number) m.get(key)).intValue();
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> map(Map<String, Object> m, String key) {
        return (Map<String, Object>) m.get(key);
    }

    static Map<Suite, byte[]> shares(Map<String, Object> byName) {
        Map<Suite, byte[]> out = new EnumMap<>(Suite.class);
        for (Suite s : Suite.values()) {
            out.put(s, Hex.decode((String) byName.get(s.label())));
        }
        return out;
    }

    /** The server's pins: the fingerprints of both server keys of the inputs. */
    static Pins serverPins() {
        Map<String, Object> keys = map(INPUTS, "server_private_keys");
        return Pins.of(SigningKey.of(KeyType.SM2, hex(keys, "sm2")).verifyKey().fingerprint(),
                SigningKey.of(KeyType.ED25519, hex(keys, "ed25519")).verifyKey().fingerprint());
    }

    static SessionTicket ticket(Map<String, Object> t) {
        return new SessionTicket(Suite.ofCode(num(t, "suite")), hex(t, "ticket"), hex(t, "psk"),
                num(t, "lifetime_s"), ((Number) t.get("age_add")).longValue(),
                ((Number) t.get("received_at_ms")).longValue() / 1000.0);
    }

    static ClientConfig config(Map<String, Object> scenario) {
        Map<String, Object> options = map(scenario, "options");
        Map<String, Object> own = map(scenario, "inputs");
        ClientConfig.Builder b = ClientConfig.builder((String) INPUTS.get("app_id"), serverPins())
                .suites(Suite.ofCode(num(scenario, "suite")))
                .keepaliveMs(num(INPUTS, "keepalive_ms"));
        if (options.containsKey("client_key")) {
            b.clientKey(SigningKey.of(KeyType.SM2, hex(INPUTS, (String) options.get("client_key"))));
        } else {
            b.appSecret(hex(INPUTS, "app_secret"));
        }
        if (own.containsKey("ticket")) {
            b.ticket(ticket(map(own, "ticket"))).pskMode(num(options, "psk_mode") == 1
                    ? PskMode.PSK_ONLY : PskMode.PSK_WITH_ECDHE);
        }
        return b.build();
    }

    static FixedRandoms clientRandoms(Map<String, Object> scenario) {
        Map<String, Object> own = map(scenario, "inputs");
        byte[] k = own.containsKey("client_signature_k") ? hex(own, "client_signature_k") : null;
        return new FixedRandoms(hex(INPUTS, "client_random"), shares(map(INPUTS, "client_ephemeral")), k);
    }

    @TestFactory
    Stream<DynamicTest> clientReplaysEveryScenarioByteForByte() {
        List<Map<String, Object>> scenarios = Vectors.list(FILE, "scenarios");
        assertEquals(5, scenarios.size());
        return scenarios.stream().map(s -> DynamicTest.dynamicTest((String) s.get("name"), () -> replay(s)));
    }

    static void replay(Map<String, Object> scenario) throws Exception {
        double now = ((Number) scenario.get("now_ms")).longValue() / 1000.0;
        ClientConnection client = new ClientConnection(config(scenario), now, clientRandoms(scenario));
        client.connect(now);
        List<Object> events = new ArrayList<>();
        List<String> serverSent = new ArrayList<>();
        int index = 0;
        for (Map<String, Object> step : Vectors.list(scenario, "steps")) {
            byte[] wire = hex(step, "hex");
            if ("client".equals(step.get("from"))) {
                for (Map<String, Object> frame : Vectors.list(step, "sends")) {
                    client.send(FrameCodec.decode(hex(frame, "hex"), 0, hex(frame, "hex").length));
                }
                assertEquals(step.get("hex"), Hex.encode(client.dataToSend()), scenario.get("name") + " step " + index);
            } else {
                for (Map<String, Object> frame : Vectors.list(step, "sends")) {
                    serverSent.add((String) frame.get("hex"));
                }
                client.receiveData(wire, 0, wire.length, now);
                events.addAll(client.eventsReceived());
            }
            index++;
        }
        assertEquals(0, client.dataToSend().length, "the client has nothing more to say");
        Map<String, Object> fin = map(scenario, "final");
        List<Map<String, Object>> expected = Vectors.list(fin, "client_events");
        assertEquals(expected.size(), events.size(), events.toString());
        int app = 0;
        for (int i = 0; i < expected.size(); i++) {
            Map<String, Object> want = expected.get(i);
            Map<String, Object> fields = map(want, "fields");
            Object got = events.get(i);
            switch ((String) want.get("event")) {
                case "HandshakeComplete" -> {
                    Events.HandshakeComplete hc = assertInstanceOf(Events.HandshakeComplete.class, got);
                    assertEquals(num(fields, "suite"), hc.suite().code());
                    assertEquals(fields.get("resumed"), hc.resumed());
                    assertEquals(fields.get("app_id"), hc.appId());
                    assertEquals(num(fields, "keepalive_ms"), hc.keepaliveMs());
                    assertEquals(fields.get("server_key"), hc.serverKey());
                    assertEquals(fields.get("client_key"), hc.clientKey());
                }
                case "TicketReceived" -> {
                    SessionTicket t = assertInstanceOf(Events.TicketReceived.class, got).ticket();
                    assertEquals(num(fields, "suite"), t.suite().code());
                    assertEquals(fields.get("ticket"), Hex.encode(t.ticket()));
                    assertEquals(fields.get("psk"), Hex.encode(t.psk()));
                    assertEquals(num(fields, "lifetime_s"), t.lifetimeS());
                    assertEquals(((Number) fields.get("age_add")).longValue(), t.ageAdd());
                    assertEquals(now, t.receivedAt());
                }
                default -> {
                    Frame frame = assertInstanceOf(Frame.class, got);
                    assertEquals(want.get("event"), frame.type().name());
                    assertEquals(((Number) want.get("request_id")).longValue(), frame.requestId());
                    assertEquals(num(want, "flags"), frame.flags());
                    assertEquals(serverSent.get(app++), Hex.encode(FrameCodec.encode(frame)));
                }
            }
        }
        assertEquals(serverSent.size(), app, "every application frame the server sent is reported");
        assertEquals(fin.get("client_send_secret"), Hex.encode(client.sendLayer().secret()));
        assertEquals(map(scenario, "traffic_secrets").get("c_ap"), Hex.encode(client.sendLayer().secret()));
        assertEquals(fin.get("server_send_secret"), Hex.encode(client.recvLayer().secret()));
        assertEquals(fin.get("resumption_secret"), Hex.encode(client.resumptionSecret()));
        assertTrue(client.state() == ClientConnection.State.CONNECTED);
    }

    @TestFactory
    Stream<DynamicTest> serverRoleReplaysEveryScenarioByteForByte() {
        return Vectors.list(FILE, "scenarios").stream()
                .map(s -> DynamicTest.dynamicTest((String) s.get("name"), () -> replayServer(s)));
    }

    /** The test-only server of {@link VectorServer}, fed the recorded client flights: its flights must be the
     * recorded ones byte for byte (ticket sealing included), and what it reports the file's server events. */
    static void replayServer(Map<String, Object> scenario) throws Exception {
        VectorServer server = new VectorServer(INPUTS, scenario);
        List<String> clientSent = new ArrayList<>();
        int index = 0;
        for (Map<String, Object> step : Vectors.list(scenario, "steps")) {
            byte[] wire = hex(step, "hex");
            if ("server".equals(step.get("from"))) {
                for (Map<String, Object> frame : Vectors.list(step, "sends")) {
                    server.send(FrameCodec.decode(hex(frame, "hex"), 0, hex(frame, "hex").length));
                }
                assertEquals(step.get("hex"), Hex.encode(server.dataToSend()), scenario.get("name") + " step " + index);
            } else {
                for (Map<String, Object> frame : Vectors.list(step, "sends")) {
                    clientSent.add((String) frame.get("hex"));
                }
                server.receive(wire);
            }
            index++;
        }
        Map<String, Object> fin = map(scenario, "final");
        List<Map<String, Object>> expected = Vectors.list(fin, "server_events");
        assertEquals(expected.size(), server.events.size(), server.events.toString());
        Map<String, Object> hcWant = map(expected.get(0), "fields");
        Events.HandshakeComplete hc = assertInstanceOf(Events.HandshakeComplete.class, server.events.get(0));
        assertEquals(num(hcWant, "suite"), hc.suite().code());
        assertEquals(hcWant.get("resumed"), hc.resumed());
        assertEquals(hcWant.get("app_id"), hc.appId());
        assertEquals(num(hcWant, "keepalive_ms"), hc.keepaliveMs());
        assertEquals(hcWant.get("client_key"), hc.clientKey());
        for (int i = 1; i < expected.size(); i++) {
            Frame frame = assertInstanceOf(Frame.class, server.events.get(i));
            assertEquals(expected.get(i).get("event"), frame.type().name());
            assertEquals(clientSent.get(i - 1), Hex.encode(FrameCodec.encode(frame)));
        }
        assertEquals(fin.get("server_send_secret"), Hex.encode(server.sendLayer().secret()));
        assertEquals(fin.get("resumption_secret"), Hex.encode(server.resumptionSecret));
    }
}
