package io.kefu.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Test only: the server's side of the handshake as spec/PROTOCOL.md section 5 describes it (server steps, ticket
 * sealing of section 5.6's informative paragraph), built from handshakes.json's inputs, so that the test can check
 * the vectors in the server role too. It checks what a server checks with assertions rather than ERROR frames: it is
 * fed only the recorded client flights. Parsing and encoding go through {@link FrameCodec}, the handshake computations
 * through the same {@link KeySchedule}, {@link RecordLayer} and signing code the client uses.
 */
final class VectorServer {
    private final Map<String, Object> scenario;
    private final Map<String, Object> inputs;
    private final Map<String, Object> own;
    private final long nowMs;
    private final List<byte[]> out = new ArrayList<>();
    private final List<byte[]> pending = new ArrayList<>();
    final List<Object> events = new ArrayList<>();
    private Suite suite;
    private Transcript transcript;
    private KeySchedule schedule;
    private RecordLayer send;
    private RecordLayer recv;
    private byte[] cAp;
    private int keepaliveMs;
    private String ticketAppId;
    private String ticketClientKey;
    private boolean resumed;
    byte[] resumptionSecret;

    VectorServer(Map<String, Object> inputs, Map<String, Object> scenario) {
        this.inputs = inputs;
        this.scenario = scenario;
        this.own = HandshakeVectorsTest.map(scenario, "inputs");
        this.nowMs = ((Number) scenario.get("now_ms")).longValue();
    }

    RecordLayer sendLayer() {
        return send;
    }

    void send(Frame frame) {
        pending.add(FrameCodec.encode(frame));
    }

    byte[] dataToSend() {
        if (!pending.isEmpty()) {
            byte[] plaintext = new byte[0];
            for (byte[] p : pending) {
                plaintext = ClientConnection.concat(plaintext, p);
            }
            pending.clear();
            out.add(send.seal(plaintext));
        }
        byte[] all = new byte[0];
        for (byte[] b : out) {
            all = ClientConnection.concat(all, b);
        }
        out.clear();
        return all;
    }

    void receive(byte[] wire) throws ProtocolException {
        int pos = 0;
        while (pos < wire.length) {
            int end = pos + 12 + (int) u32(wire, pos);
            byte[] frame = Arrays.copyOfRange(wire, pos, end);
            if (frame[5] == 0x0F) {
                byte[] plain = recv.open(Arrays.copyOf(frame, 12), Arrays.copyOfRange(frame, 12, frame.length));
                int p = 0;
                while (p < plain.length) {
                    int e = p + 12 + (int) u32(plain, p);
                    byte[] inner = Arrays.copyOfRange(plain, p, e);
                    Frame f = FrameCodec.decode(inner, 0, inner.length);
                    if (f instanceof Frame.ClientFinished cf) {
                        onClientFinished(cf, inner);
                    } else {
                        events.add(f);
                    }
                    p = e;
                }
            } else {
                onClientHello((Frame.ClientHello) FrameCodec.decode(frame, 0, frame.length), frame);
            }
            pos = end;
        }
    }

    private static long u32(byte[] b, int off) {
        return ((b[off] & 0xFFL) << 24) | ((b[off + 1] & 0xFF) << 16) | ((b[off + 2] & 0xFF) << 8) | (b[off + 3] & 0xFF);
    }

    // --- tickets (section 5.6, informative: key_id || nonce || AEAD(state)) -----------------------------------

    private Crypto.Aead ticketAead(Suite s) {
        byte[] secret = HandshakeVectorsTest.hex(inputs, "ticket_secret");
        return Crypto.Aead.of(s, KeySchedule.expandLabel(s.hash(), secret, "ticket key", new byte[0], 16));
    }

    private byte[] keyId(Suite s) {
        return Arrays.copyOf(s.hash().digest(HandshakeVectorsTest.hex(inputs, "ticket_secret")), 4);
    }

    private byte[] ticketAad(Suite s) {
        return ClientConnection.concat(keyId(s), new byte[] {(byte) (s.code() >>> 8), (byte) s.code()});
    }

    /** The ticket's state fields, or null if it does not open under {@code s}. */
    private WireReader openTicket(byte[] ticket, Suite s) {
        if (ticket.length < 16 || !Arrays.equals(Arrays.copyOf(ticket, 4), keyId(s))) {
            return null;
        }
        try {
            byte[] state = ticketAead(s).open(Arrays.copyOfRange(ticket, 4, 16),
                    Arrays.copyOfRange(ticket, 16, ticket.length), ticketAad(s));
            return new WireReader(state, 0, state.length, "ticket");
        } catch (ProtocolException e) {
            return null;
        }
    }

    // --- CLIENT_HELLO -> SERVER_HELLO, SERVER_FINISHED ----------------------------------------------------------

    @SuppressWarnings("unchecked")
    private void onClientHello(Frame.ClientHello ch, byte[] encoded) throws ProtocolException {
        byte[] psk = null;
        for (Object code : (List<Object>) inputs.get("server_suites")) {
            Suite s = Suite.ofCode(((Number) code).intValue());
            if (suite == null && ch.suites().contains(s.code())) {
                suite = s; // the first suite of the server's preference that the client offers
            }
            WireReader state = ch.ticket().length > 0 && ch.suites().contains(s.code())
                    ? openTicket(ch.ticket(), s) : null;
            if (state != null && psk == null) {
                suite = s;
                assertEquals(1, state.u8()); // version
                assertEquals(s.code(), state.u16());
                long issued = state.u64();
                long lifetime = state.u32();
                long ageAdd = state.u32();
                state.fixed(16); // ticket id
                ticketAppId = new String(state.bytes(1), StandardCharsets.UTF_8);
                ticketClientKey = new String(state.bytes(1), StandardCharsets.UTF_8);
                psk = state.bytes(1);
                byte[] covered = Arrays.copyOfRange(encoded, 12, encoded.length - 1 - ch.binder().length);
                byte[] binder = s.hash().hmac(new KeySchedule(s.hash(), psk).binderKey(), s.hash().digest(covered));
                assertArrayEquals(binder, ch.binder(), "binder");
                long ageMs = (ch.obfuscatedAge() - ageAdd) & 0xFFFFFFFFL;
                assertTrue(nowMs < issued + lifetime * 1000 && ageMs <= lifetime * 1000, "ticket expired");
            }
        }
        assertNotNull(suite, "no common suite");
        resumed = psk != null;
        byte[] shareBytes = new byte[0];
        byte[] shared = null;
        if (!resumed || ch.pskMode() == PskMode.PSK_WITH_ECDHE.code()) {
            KeyShareEntry entry = ch.keyShares().stream().filter(e -> e.suite() == suite.code()).findFirst()
                    .orElseThrow();
            KeyShare share = KeyShare.fromPrivate(suite,
                    HandshakeVectorsTest.hex(HandshakeVectorsTest.map(inputs, "server_ephemeral"), suite.label()));
            shareBytes = share.publicBytes();
            shared = share.exchange(entry.key());
        }
        keepaliveMs = (int) Math.max(5_000, Math.min(ch.keepaliveMs(), 300_000));
        byte[] hello = FrameCodec.encode(new Frame.ServerHello(0, 0, HandshakeVectorsTest.hex(inputs, "server_random"),
                suite.code(), shareBytes, resumed ? 1 : 0, keepaliveMs));
        transcript = new Transcript(suite.hash());
        transcript.add(encoded);
        transcript.add(hello);
        schedule = new KeySchedule(suite.hash(), psk);
        schedule.addSharedSecret(shared);
        byte[][] hs = schedule.handshakeTraffic(transcript.digest());
        out.add(hello);
        send = new RecordLayer(suite, hs[1]);
        recv = new RecordLayer(suite, hs[0]);
        sendServerFinished();
    }

    private void sendServerFinished() {
        int keyType = 0;
        byte[] pub = new byte[0];
        byte[] signature = new byte[0];
        if (!resumed) {
            Map<String, Object> keys = HandshakeVectorsTest.map(inputs, "server_private_keys");
            KeyType type = suite.keyType();
            SigningKey key = SigningKey.of(type, HandshakeVectorsTest.hex(keys, type == KeyType.SM2 ? "sm2" : "ed25519"));
            keyType = type.code();
            pub = key.verifyKey().publicBytes();
            byte[] signed = transcript.digest(Transcript.signedPart(new Frame.ServerFinished(keyType, pub, new byte[0],
                    new byte[0])));
            byte[] k = own.containsKey("server_signature_k") ? HandshakeVectorsTest.hex(own, "server_signature_k") : null;
            signature = key.sign(ClientConnection.concat(ClientConnection.SERVER_SIGNATURE_CONTEXT, signed),
                    new FixedRandoms(new byte[32], Map.of(), k).nonceSource());
        }
        byte[] covered = Transcript.macedPart(new Frame.ServerFinished(keyType, pub, signature, new byte[0]));
        byte[] mac = suite.hash().hmac(schedule.finishedKey(send.secret()), transcript.digest(covered));
        byte[] sf = FrameCodec.encode(new Frame.ServerFinished(0, 0, keyType, pub, signature, mac));
        out.add(send.seal(sf));
        transcript.add(sf);
        byte[][] ap = schedule.applicationTraffic(transcript.digest());
        cAp = ap[0];
        send = new RecordLayer(suite, ap[1]);
    }

    // --- CLIENT_FINISHED -> NEW_TICKET ---------------------------------------------------------------------------

    private void onClientFinished(Frame.ClientFinished cf, byte[] encoded) {
        Crypto.Hash hash = suite.hash();
        byte[] prefix = Arrays.copyOfRange(encoded, 12, encoded.length - 1 - cf.verifyData().length);
        byte[] expected = hash.hmac(schedule.finishedKey(recv.secret()), transcript.digest(prefix));
        assertTrue(Crypto.constantTimeEquals(expected, cf.verifyData()), "client Finished");
        byte[] proofPrefix = Arrays.copyOf(prefix, prefix.length - 2 - cf.proof().length);
        byte[] covered = transcript.digest(proofPrefix);
        String appId;
        String clientKey = "";
        if (resumed) {
            assertEquals(ClientConnection.AUTH_RESUMED, cf.authMode());
            assertEquals("", cf.appId());
            assertEquals(0, cf.proof().length);
            appId = ticketAppId;
            clientKey = ticketClientKey;
        } else if (cf.authMode() == ClientConnection.AUTH_APP_SECRET) {
            appId = cf.appId();
            byte[] secret = HandshakeVectorsTest.hex(inputs, "app_secret");
            byte[] prk = hash.hkdfExtract(appId.getBytes(StandardCharsets.UTF_8), secret);
            byte[] stored = hash.digest(KeySchedule.expandLabel(hash, prk, "client key", new byte[0], 32));
            byte[] sig = hash.hmac(stored, covered);
            byte[] key = new byte[32];
            for (int i = 0; i < 32; i++) {
                key[i] = (byte) (cf.proof()[i] ^ sig[i]);
            }
            assertTrue(Crypto.constantTimeEquals(hash.digest(key), stored), "app proof");
        } else {
            assertEquals(ClientConnection.AUTH_CLIENT_KEY, cf.authMode());
            assertEquals(suite.keyType().code(), cf.keyType());
            appId = cf.appId();
            String registered = SigningKey.of(KeyType.SM2, HandshakeVectorsTest.hex(inputs, "client_sm2_private_key"))
                    .verifyKey().fingerprint();
            clientKey = VerifyKey.fingerprint(KeyType.SM2, cf.publicKey());
            assertEquals(registered, clientKey);
            try {
                assertTrue(VerifyKey.of(KeyType.SM2, cf.publicKey()).verify(cf.proof(),
                        ClientConnection.concat(ClientConnection.CLIENT_SIGNATURE_CONTEXT, covered)), "client key");
            } catch (ProtocolException e) {
                throw new AssertionError(e);
            }
        }
        assertEquals(inputs.get("app_id"), appId);
        transcript.add(encoded);
        resumptionSecret = schedule.resumptionSecret(transcript.digest());
        recv = new RecordLayer(suite, cAp);
        events.add(new Events.HandshakeComplete(suite, resumed, appId, keepaliveMs, "", clientKey));
        issueTicket(appId, clientKey);
    }

    private void issueTicket(String appId, String clientKey) {
        byte[] nonce = HandshakeVectorsTest.hex(own, "ticket_nonce");
        long ageAdd = ((Number) own.get("ticket_age_add")).longValue();
        long lifetime = ((Number) inputs.get("ticket_lifetime_s")).longValue();
        byte[] psk = schedule.ticketPsk(resumptionSecret, nonce);
        WireWriter w = new WireWriter(128);
        w.u8(1, "version");
        w.u16(suite.code(), "suite");
        w.u64(nowMs, "issued_ms");
        w.u32(lifetime, "lifetime_s");
        w.u32(ageAdd, "age_add");
        w.fixed(HandshakeVectorsTest.hex(own, "ticket_id"), 16, "ticket_id");
        w.text(appId, 1, "app_id");
        w.text(clientKey, 1, "client_key");
        w.bytes(psk, 1, "psk");
        byte[] state = w.toByteArray();
        byte[] ticket = ClientConnection.concat(ClientConnection.concat(keyId(suite), nonce),
                ticketAead(suite).seal(nonce, state, ticketAad(suite)));
        pending.add(FrameCodec.encode(new Frame.NewTicket(0, 0, lifetime, ageAdd, nonce, ticket)));
    }

    @Override
    public String toString() {
        return "VectorServer[" + scenario.get("name") + "]";
    }
}
