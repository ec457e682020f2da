package io.kefu.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * The client state machine (spec/PROTOCOL.md sections 4.6-4.9, 6.3, 6.4, 7) driven by bytes the test builds with
 * the recorded secrets of handshakes.json: the server side of each exchange is a {@link RecordLayer} under the
 * scenario's server traffic secret, so every record the client opens or writes is checked with real keys.
 */
class ClientConnectionTest {
    static final List<Map<String, Object>> SCENARIOS = Vectors.list(HandshakeVectorsTest.FILE, "scenarios");

    static Map<String, Object> scenario(String name) {
        return SCENARIOS.stream().filter(s -> name.equals(s.get("name"))).findFirst().orElseThrow();
    }

    static List<byte[]> frames(byte[] wire) {
        List<byte[]> out = new ArrayList<>();
        int pos = 0;
        while (pos < wire.length) {
            int len = ((wire[pos] & 0xFF) << 24) | ((wire[pos + 1] & 0xFF) << 16) | ((wire[pos + 2] & 0xFF) << 8)
                    | (wire[pos + 3] & 0xFF);
            out.add(Arrays.copyOfRange(wire, pos, pos + 12 + len));
            pos += 12 + len;
        }
        return out;
    }

    /** A client connected through the recorded national full handshake, with the server's two record layers. */
    static final class Connected {
        final ClientConnection client;
        final RecordLayer serverSend;
        final RecordLayer serverRecv;
        final double now;
        final List<Object> handshakeEvents = new ArrayList<>();

        Connected(String name) throws ProtocolException {
            Map<String, Object> s = scenario(name);
            now = ((Number) s.get("now_ms")).longValue() / 1000.0;
            client = new ClientConnection(HandshakeVectorsTest.config(s), now, HandshakeVectorsTest.clientRandoms(s));
            client.connect(now);
            List<Map<String, Object>> steps = Vectors.list(s, "steps");
            Suite suite = Suite.ofCode(HandshakeVectorsTest.num(s, "suite"));
            Map<String, Object> secrets = HandshakeVectorsTest.map(s, "traffic_secrets");
            serverSend = new RecordLayer(suite, HandshakeVectorsTest.hex(secrets, "s_ap"));
            serverRecv = new RecordLayer(suite, HandshakeVectorsTest.hex(secrets, "c_ap"));
            client.dataToSend();
            feed(HandshakeVectorsTest.hex(steps.get(1), "hex"));
            for (Map<String, Object> frame : Vectors.list(steps.get(2), "sends")) {
                byte[] encoded = HandshakeVectorsTest.hex(frame, "hex");
                client.send(FrameCodec.decode(encoded, 0, encoded.length));
            }
            List<byte[]> clientRecords = frames(client.dataToSend());
            open(clientRecords.get(clientRecords.size() - 1)); // the c_ap record (the SEND)
            byte[] serverFlight = HandshakeVectorsTest.hex(steps.get(3), "hex");
            open(serverSend, serverFlight);
            feed(serverFlight);
            handshakeEvents.addAll(client.eventsReceived());
        }

        void feed(byte[] wire) {
            client.receiveData(wire, 0, wire.length, now);
        }

        /** Seals frames as the server's next record and feeds it to the client. */
        void serverSends(byte[]... frames) {
            byte[] plaintext = new byte[0];
            for (byte[] f : frames) {
                plaintext = ClientConnection.concat(plaintext, f);
            }
            feed(serverSend.seal(plaintext));
        }

        /** Opens one of the client's RECORD frames with the server's receiving layer. */
        byte[] open(byte[] record) throws ProtocolException {
            return serverRecv.open(Arrays.copyOf(record, 12), Arrays.copyOfRange(record, 12, record.length));
        }

        static void open(RecordLayer layer, byte[] record) throws ProtocolException {
            layer.open(Arrays.copyOf(record, 12), Arrays.copyOfRange(record, 12, record.length));
        }

        /** The frames of every record the client writes now, opened. */
        List<byte[]> clientWrites() throws ProtocolException {
            List<byte[]> out = new ArrayList<>();
            for (byte[] record : frames(client.dataToSend())) {
                assertEquals(0x0F, record[5], "after the handshake everything travels in records");
                out.addAll(frames(open(record)));
            }
            return out;
        }
    }

    static Events.ConnectionClosed closedEvent(List<Object> events) {
        return assertInstanceOf(Events.ConnectionClosed.class, events.get(events.size() - 1));
    }

    @Test
    void serverFlightsFedOneByteAtATimeGiveTheSameResult() {
        Map<String, Object> s = scenario("national-full-app-secret");
        double now = ((Number) s.get("now_ms")).longValue() / 1000.0;
        ClientConnection client = new ClientConnection(HandshakeVectorsTest.config(s), now,
                HandshakeVectorsTest.clientRandoms(s));
        client.connect(now);
        client.dataToSend();
        List<Map<String, Object>> steps = Vectors.list(s, "steps");
        byte[] flight = HandshakeVectorsTest.hex(steps.get(1), "hex");
        for (int i = 0; i < flight.length; i++) {
            client.receiveData(flight, i, 1, now);
        }
        assertEquals(steps.get(2).get("hex").toString().substring(0, 40),
                Hex.encode(client.dataToSend()).substring(0, 40));
        byte[] last = HandshakeVectorsTest.hex(steps.get(3), "hex");
        for (int i = 0; i < last.length; i++) {
            client.receiveData(last, i, 1, now);
        }
        List<Object> events = client.eventsReceived();
        assertEquals(4, events.size(), events.toString());
        assertInstanceOf(Frame.Deliver.class, events.get(3));
        assertEquals(0, client.bufferedIncomplete());
    }

    @Test
    void anUnpinnedServerKeyIsRefusedInPlaintext() {
        Map<String, Object> s = scenario("national-full-app-secret");
        double now = 1.0;
        ClientConfig config = HandshakeVectorsTest.config(s).toBuilder().build();
        config = ClientConfig.builder(config.appId(), Pins.of("sm2:" + "00".repeat(32))).appSecret(new byte[32])
                .build();
        ClientConnection client = new ClientConnection(config, now, HandshakeVectorsTest.clientRandoms(s));
        client.connect(now);
        client.dataToSend();
        byte[] flight = HandshakeVectorsTest.hex(Vectors.list(s, "steps").get(1), "hex");
        client.receiveData(flight, 0, flight.length);
        Events.ConnectionClosed closed = closedEvent(client.eventsReceived());
        assertEquals(ErrorCode.SERVER_KEY_NOT_PINNED, closed.code());
        assertFalse(closed.byPeer());
        assertTrue(client.isClosed());
        byte[] error = client.dataToSend();
        assertEquals(0x30, error[5], "no sending key yet: the ERROR goes in plaintext");
        assertEquals(ErrorCode.SERVER_KEY_NOT_PINNED.code(), ((error[12] & 0xFF) << 8) | (error[13] & 0xFF));
        client.receiveData(flight, 0, flight.length);
        assertTrue(client.eventsReceived().isEmpty(), "nothing is processed once closed");
    }

    @Test
    void aServerChoosingASuiteNotOfferedIsADowngrade() {
        Map<String, Object> national = scenario("national-full-app-secret");
        ClientConnection client = new ClientConnection(HandshakeVectorsTest.config(national), 1.0,
                HandshakeVectorsTest.clientRandoms(national));
        client.connect(1.0);
        byte[] intl = HandshakeVectorsTest.hex(Vectors.list(scenario("international-full-app-secret"), "steps").get(1),
                "hex");
        client.receiveData(intl, 0, intl.length);
        assertEquals(ErrorCode.DOWNGRADE_DETECTED, closedEvent(client.eventsReceived()).code());
    }

    @Test
    void aTamperedServerFinishedRecordFailsWithBadRecordMac() {
        Map<String, Object> s = scenario("international-full-app-secret");
        ClientConnection client = new ClientConnection(HandshakeVectorsTest.config(s), 1.0,
                HandshakeVectorsTest.clientRandoms(s));
        client.connect(1.0);
        byte[] flight = HandshakeVectorsTest.hex(Vectors.list(s, "steps").get(1), "hex");
        flight[flight.length - 1] ^= 1;
        client.receiveData(flight, 0, flight.length);
        assertEquals(ErrorCode.BAD_RECORD_MAC, closedEvent(client.eventsReceived()).code());
    }

    @Test
    void headersAreJudgedBeforeTheirBody() {
        ClientConnection client = new ClientConnection(HandshakeVectorsTest.config(scenario("national-full-app-secret")),
                0.0);
        client.connect(0.0);
        byte[] tooLarge = {0, 0, 0x10, 1, 1, 0x02, 0, 0, 0, 0, 0, 0}; // a SERVER_HELLO declaring 4097 bytes
        client.receiveData(tooLarge, 0, tooLarge.length);
        assertEquals(ErrorCode.FRAME_TOO_LARGE, closedEvent(client.eventsReceived()).code());

        ClientConnection other = new ClientConnection(HandshakeVectorsTest.config(scenario("national-full-app-secret")),
                0.0);
        other.connect(0.0);
        byte[] record = {0, 0, 0, 20, 1, 0x0F, 0, 0, 0, 0, 0, 0}; // a RECORD before any key
        other.receiveData(record, 0, record.length);
        assertEquals(ErrorCode.UNEXPECTED_FRAME, closedEvent(other.eventsReceived()).code());

        ClientConnection third = new ClientConnection(HandshakeVectorsTest.config(scenario("national-full-app-secret")),
                0.0);
        third.connect(0.0);
        byte[] v2 = {0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 0, 0};
        third.receiveData(v2, 0, v2.length);
        assertEquals(ErrorCode.UNSUPPORTED_VERSION, closedEvent(third.eventsReceived()).code());
    }

    @Test
    void aPlaintextErrorOrGoawayDuringTheHandshakeEndsIt() {
        ClientConnection client = new ClientConnection(HandshakeVectorsTest.config(scenario("national-full-app-secret")),
                0.0);
        client.connect(0.0);
        assertEquals(0x01, client.dataToSend()[5], "CLIENT_HELLO");
        byte[] error = FrameCodec.encode(new Frame.Error(ErrorCode.NO_COMMON_SUITE.code(), "no"));
        client.receiveData(error, 0, error.length);
        Events.ConnectionClosed closed = closedEvent(client.eventsReceived());
        assertEquals(ErrorCode.NO_COMMON_SUITE, closed.code());
        assertTrue(closed.byPeer());
        assertEquals(0, client.dataToSend().length, "a side that receives a fatal ERROR closes without answering");

        ClientConnection refused = new ClientConnection(
                HandshakeVectorsTest.config(scenario("national-full-app-secret")), 0.0);
        refused.connect(0.0);
        byte[] goaway = FrameCodec.encode(new Frame.Goaway(ErrorCode.OVERLOADED.code(), 250, 100, 5000, 500, "busy"));
        refused.receiveData(goaway, 0, goaway.length);
        List<Object> events = refused.eventsReceived();
        assertEquals(250, assertInstanceOf(Frame.Goaway.class, events.get(0)).reconnectDelayMs());
        assertEquals(ErrorCode.OVERLOADED, closedEvent(events).code());
    }

    @Test
    void theHandshakeDeadline() {
        ClientConnection client = new ClientConnection(HandshakeVectorsTest.config(scenario("national-full-app-secret")),
                100.0);
        client.connect(100.0);
        assertEquals(110.0, client.timer().getAsDouble());
        client.handleTimer(109.9);
        assertFalse(client.isClosed());
        client.handleTimer(110.0);
        assertEquals(ErrorCode.HANDSHAKE_TIMEOUT, closedEvent(client.eventsReceived()).code());
        assertTrue(client.timer().isEmpty());
    }

    @Test
    void theEndOfTheStreamDuringTheHandshakeIsTruncated() {
        ClientConnection client = new ClientConnection(HandshakeVectorsTest.config(scenario("national-full-app-secret")),
                0.0);
        client.connect(0.0);
        client.receiveData(new byte[0], 0, 0);
        Events.ConnectionClosed closed = closedEvent(client.eventsReceived());
        assertEquals(ErrorCode.TRUNCATED, closed.code());
        assertFalse(closed.clean());
    }

    @Test
    void pingIsAnsweredWithTheSameOpaqueAndRequestId() throws ProtocolException {
        Connected c = new Connected("national-full-app-secret");
        c.serverSends(FrameCodec.encode(new Frame.Ping(77, 0, 0x0102030405060708L)));
        assertTrue(c.client.eventsReceived().isEmpty(), "a PING is not the application's");
        List<byte[]> written = c.clientWrites();
        Frame.Pong pong = assertInstanceOf(Frame.Pong.class, FrameCodec.decode(written.get(0), 0, written.get(0).length));
        assertEquals(77, pong.requestId());
        assertEquals(0x0102030405060708L, pong.opaque());
    }

    @Test
    void theKeepalivePingsAfterThreeQuietTicksAndFailsAfterFive() throws ProtocolException {
        Connected c = new Connected("national-full-app-secret");
        double t = c.client.timer().getAsDouble();
        assertTrue(t <= c.now, "due at once after the handshake");
        double tick = 30.0 / ClientConnection.KEEPALIVE_TICKS;
        c.client.handleTimer(c.now); // saw traffic both ways
        for (int i = 1; i <= 3; i++) {
            assertTrue(c.clientWrites().isEmpty(), "tick " + i);
            c.client.handleTimer(c.now + i * tick);
        }
        List<byte[]> ping = c.clientWrites();
        assertEquals(1, ping.size());
        assertEquals(0x20, ping.get(0)[5]);
        c.client.handleTimer(c.now + 4 * tick);
        assertFalse(c.client.isClosed());
        c.client.handleTimer(c.now + 5 * tick);
        assertEquals(ErrorCode.KEEPALIVE_TIMEOUT, closedEvent(c.client.eventsReceived()).code());
        List<byte[]> error = c.clientWrites();
        assertEquals(0x30, error.get(0)[5], "the ERROR goes under the client's application key");
    }

    @Test
    void keyUpdateRequestedByTheServerIsAnsweredAndBothKeysMove() throws ProtocolException {
        Connected c = new Connected("international-full-app-secret");
        c.serverSends(FrameCodec.encode(new Frame.KeyUpdate(1)));
        c.serverSend.update();
        List<byte[]> answer = c.clientWrites();
        assertEquals(1, answer.size());
        assertArrayEquals(FrameCodec.encode(new Frame.KeyUpdate(0)), answer.get(0));
        c.serverRecv.update();
        c.serverSends(FrameCodec.encode(new Frame.Ping(5, 0, 9)));
        List<byte[]> pong = c.clientWrites();
        assertEquals(0x21, pong.get(0)[5], "the client reads under the new key and writes under its new key");
        c.client.updateKeys(false);
        assertArrayEquals(FrameCodec.encode(new Frame.KeyUpdate(0)), c.clientWrites().get(0));
        c.serverRecv.update();
        c.client.send(new Frame.Ping(1));
        assertEquals(0x20, c.clientWrites().get(0)[5]);
    }

    @Test
    void aFrameAfterAKeyChangeInTheSameRecordIsUnexpected() throws ProtocolException {
        Connected c = new Connected("national-full-app-secret");
        c.serverSends(FrameCodec.encode(new Frame.KeyUpdate(0)), FrameCodec.encode(new Frame.Ping(1)));
        assertEquals(ErrorCode.UNEXPECTED_FRAME, closedEvent(c.client.eventsReceived()).code());
    }

    @Test
    void closeIsAnsweredAndReportedAsClean() throws ProtocolException {
        Connected c = new Connected("national-full-app-secret");
        c.serverSends(FrameCodec.encode(new Frame.Close(ErrorCode.SHUTTING_DOWN.code(), "restart")));
        Events.ConnectionClosed closed = closedEvent(c.client.eventsReceived());
        assertEquals(ErrorCode.SHUTTING_DOWN, closed.code());
        assertTrue(closed.clean() && closed.byPeer());
        assertArrayEquals(FrameCodec.encode(new Frame.Close(ErrorCode.OK.code(), "")), c.clientWrites().get(0));
    }

    @Test
    void ourCloseThenTheEndOfTheStreamIsClean() throws ProtocolException {
        Connected c = new Connected("national-full-app-secret");
        c.client.close(ErrorCode.OK, "bye");
        assertEquals(ClientConnection.State.CLOSING, c.client.state());
        assertArrayEquals(FrameCodec.encode(new Frame.Close(ErrorCode.OK.code(), "bye")), c.clientWrites().get(0));
        assertThrows(IllegalStateException.class, () -> c.client.send(new Frame.Ping(1)));
        c.serverSends(FrameCodec.encode(new Frame.Ping(2, 0, 3)));
        assertTrue(c.clientWrites().isEmpty(), "no PONG while CLOSING");
        c.client.receiveData(new byte[0], 0, 0);
        Events.ConnectionClosed closed = closedEvent(c.client.eventsReceived());
        assertTrue(closed.clean());
        assertEquals(ErrorCode.OK, closed.code());
    }

    @Test
    void errorsInRecordsByCode() throws ProtocolException {
        Connected c = new Connected("national-full-app-secret");
        c.serverSends(FrameCodec.encode(new Frame.Error(9, 0, ErrorCode.NOT_FOUND.code(), "no such conversation")));
        Frame.Error e = assertInstanceOf(Frame.Error.class, c.client.eventsReceived().get(0));
        assertEquals(9, e.requestId());
        c.serverSends(FrameCodec.encode(new Frame.Error(451, "a new request error")));
        assertInstanceOf(Frame.Error.class, c.client.eventsReceived().get(0), "unknown 4xx: non-fatal");
        assertFalse(c.client.isClosed());
        c.serverSends(FrameCodec.encode(new Frame.Error(599, "a new fatal code")));
        Events.ConnectionClosed closed = closedEvent(c.client.eventsReceived());
        assertEquals(ErrorCode.INTERNAL_ERROR, closed.code());
        assertTrue(closed.byPeer());
    }

    @Test
    void outsideRecordsNothingIsAcceptedOnceConnected() throws ProtocolException {
        Connected c = new Connected("national-full-app-secret");
        byte[] error = FrameCodec.encode(new Frame.Error(ErrorCode.AUTH_FAILED.code(), "x"));
        c.feed(error);
        assertEquals(ErrorCode.UNEXPECTED_FRAME, closedEvent(c.client.eventsReceived()).code());
    }

    @Test
    void aCriticalUnknownTypeFailsAndAnIgnorableOneIsSkipped() throws ProtocolException {
        Connected c = new Connected("national-full-app-secret");
        byte[] ignorable = {0, 0, 0, 1, 1, (byte) 0x90, 0, 0, 0, 0, 0, 0, 42};
        c.serverSends(ignorable, FrameCodec.encode(new Frame.Pong(4)));
        assertInstanceOf(Frame.Pong.class, c.client.eventsReceived().get(0));
        byte[] critical = {0, 0, 0, 0, 1, 0x7E, 0, 0, 0, 0, 0, 0};
        c.serverSends(critical);
        assertEquals(ErrorCode.UNKNOWN_FRAME_TYPE, closedEvent(c.client.eventsReceived()).code());
    }

    @Test
    void sendIsForConnectedClientsAndClientFramesOnly() throws ProtocolException {
        ClientConnection fresh = new ClientConnection(HandshakeVectorsTest.config(scenario("national-full-app-secret")),
                0.0);
        assertThrows(IllegalStateException.class, () -> fresh.send(new Frame.Ping(1)));
        Connected c = new Connected("national-full-app-secret");
        assertThrows(IllegalArgumentException.class, () -> c.client.send(new Frame.KeyUpdate(1)));
        assertThrows(IllegalArgumentException.class, () -> c.client.send(new Frame.Deliver(1, 1, 1, 1,
                new byte[16], 1, "x", new byte[0], List.of())));
        fresh.connect(0.0);
        assertThrows(IllegalStateException.class, () -> fresh.connect(0.0), "connect() once");
    }

    @Test
    void anExpiredTicketOrOneForAnotherSuiteIsNotOffered() {
        Map<String, Object> s = scenario("national-resumption-psk-only");
        ClientConfig config = HandshakeVectorsTest.config(s);
        double late = config.ticket().receivedAt() + config.ticket().lifetimeS();
        ClientConnection client = new ClientConnection(config, late, HandshakeVectorsTest.clientRandoms(s));
        client.connect(late);
        byte[] hello = client.dataToSend();
        assertEquals(0, hello[hello.length - 1], "no binder: the ticket has expired");
        ClientConfig intlOnly = config.toBuilder().suites(Suite.INTERNATIONAL).build();
        ClientConnection other = new ClientConnection(intlOnly, 1.0, HandshakeVectorsTest.clientRandoms(s));
        other.connect(config.ticket().receivedAt() + 1);
        byte[] hello2 = other.dataToSend();
        assertEquals(0, hello2[hello2.length - 1], "no binder: the ticket is national");
    }

    @Test
    void mutatedServerFlightsNeverThrowAndAlwaysEndWithAnEvent() {
        java.util.Random rnd = new java.util.Random(15);
        for (String name : List.of("national-full-app-secret", "international-full-app-secret",
                "national-resumption-psk-only")) {
            Map<String, Object> s = scenario(name);
            byte[] flight = HandshakeVectorsTest.hex(Vectors.list(s, "steps").get(1), "hex");
            for (int i = 0; i < 150; i++) {
                ClientConnection client = new ClientConnection(HandshakeVectorsTest.config(s), 0.0,
                        HandshakeVectorsTest.clientRandoms(s));
                client.connect(0.0);
                client.dataToSend();
                byte[] bad = flight.clone();
                int cut = bad.length;
                switch (i % 3) {
                    case 0 -> bad[rnd.nextInt(bad.length)] ^= (byte) (1 << rnd.nextInt(8));
                    case 1 -> bad[rnd.nextInt(Math.min(120, bad.length))] = (byte) rnd.nextInt(256); // the hello
                    default -> cut = rnd.nextInt(bad.length);
                }
                client.receiveData(bad, 0, cut);
                client.receiveData(new byte[0], 0, 0);
                List<Object> events = client.eventsReceived();
                assertTrue(client.isClosed(), name + " mutation " + i);
                Events.ConnectionClosed closed = closedEvent(events);
                assertTrue(closed.code() != ErrorCode.INTERNAL_ERROR, name + " mutation " + i + ": " + closed);
            }
        }
    }
}
