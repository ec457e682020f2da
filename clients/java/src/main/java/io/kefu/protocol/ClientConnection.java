package io.kefu.protocol;

import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.Set;

/**
 * The client side of one kefu connection, sans-IO (spec/PROTOCOL.md sections 5 to 7): no sockets, no threads, no
 * clock. The adapter feeds it bytes and time and writes out what it returns, in the style of h11:
 *
 * <ul>
 *   <li>{@link #connect(double)} queues CLIENT_HELLO (resuming when the configuration holds a usable ticket);
 *   <li>{@link #receiveData(byte[], int, int)} feeds bytes read from the socket (length 0: end of stream). It never
 *       throws for anything the peer sent: a bad input becomes a {@link Events.ConnectionClosed} event and, where the
 *       protocol says so, an ERROR frame queued for the peer;
 *   <li>{@link #eventsReceived()} returns the events since the last call: {@link Events.HandshakeComplete},
 *       {@link Events.TicketReceived}, {@link Events.ConnectionClosed}, and application {@link Frame}s;
 *   <li>{@link #dataToSend()} returns the bytes to write: plaintext hellos and every frame queued since the last
 *       call, sealed into as few records as fit;
 *   <li>{@link #timer()} and {@link #handleTimer(double)}: the handshake deadline and the keepalive (section 7.3);
 *   <li>{@link #send(Frame)}, {@link #updateKeys(boolean)} and {@link #close(ErrorCode, String)} once connected.
 * </ul>
 *
 * <p>Theory of operation. The client's states are START, WAIT_SERVER_HELLO, WAIT_SERVER_FINISHED, CONNECTED,
 * CLOSING and CLOSED (section 7.1). Each state accepts a fixed set of outer frame types, checked from the header
 * alone before any body byte is buffered ({@link #outerLimit}), and, inside records, a fixed set of inner types
 * ({@link #dispatchInner}); everything else is UNEXPECTED_FRAME. A chunk holding the last handshake frame and
 * application records is judged frame by frame, each under the state it arrives in. Misuse by the caller (sending
 * before the handshake, a frame type a client never sends) is an {@link IllegalStateException} or
 * {@link IllegalArgumentException}.
 *
 * <p>Thread-safety: not thread-safe. One thread (the adapter's I/O thread) drives each connection.
 */
public final class ClientConnection {
    /** The client's handshake deadline (section 7.3). */
    public static final double HANDSHAKE_TIMEOUT_S = 10.0;
    /** Keepalive checks per negotiated interval (section 7.3). */
    public static final int KEEPALIVE_TICKS = 4;
    /** Events held between two {@link #eventsReceived()} calls; past it the connection fails with OVERLOADED. */
    public static final int MAX_EVENTS_BUFFERED = 100_000;
    /** Largest record plaintext: one maximal frame and its header. */
    public static final int MAX_RECORD_PLAINTEXT = 1_048_588;
    /** Largest RECORD body before the handshake completes: one handshake frame, its header and the tag. */
    static final int HANDSHAKE_RECORD_LIMIT = 4096 + 12 + 16;
    private static final long NOT_ACCEPTED = -1;

    static final byte[] SERVER_SIGNATURE_CONTEXT = context("kefu v1, server signature");
    static final byte[] CLIENT_SIGNATURE_CONTEXT = context("kefu v1, client signature");

    /** Auth modes of CLIENT_FINISHED (section 5.5). */
    static final int AUTH_RESUMED = 0;
    static final int AUTH_APP_SECRET = 1;
    static final int AUTH_CLIENT_KEY = 2;

    /** Types a client may {@link #send}: section 7.2's table, less KEY_UPDATE (the core sends it itself). */
    private static final Set<FrameType> CLIENT_SENDS = EnumSet.of(FrameType.SEND, FrameType.DELIVER_ACK,
            FrameType.SYNC, FrameType.PING, FrameType.PONG, FrameType.ERROR, FrameType.CLOSE,
            FrameType.AGENT_STATUS, FrameType.OPEN_CONVERSATION, FrameType.TRANSFER, FrameType.END_CONVERSATION,
            FrameType.WATCH, FrameType.DRAFT_DECISION, FrameType.SEARCH, FrameType.CONVERSATION_INFO);
    /** Types a client accepts inside records once connected: what a server sends, and KEY_UPDATE. */
    private static final Set<FrameType> CLIENT_RECEIVES = EnumSet.of(FrameType.SEND_ACK, FrameType.DELIVER,
            FrameType.SYNC_DONE, FrameType.PING, FrameType.PONG, FrameType.ERROR, FrameType.GOAWAY, FrameType.CLOSE,
            FrameType.NEW_TICKET, FrameType.KEY_UPDATE, FrameType.OPENED, FrameType.SEARCH_RESULT,
            FrameType.QUEUE_POSITION, FrameType.SENTIMENT, FrameType.RESULT);

    /**
     * The connection states (section 7.1).
     *
     * <p>Immutable; safe to share between threads.
     */
    public enum State {
        /** Before CLIENT_HELLO. */
        START,
        /** CLIENT_HELLO sent. */
        WAIT_SERVER_HELLO,
        /** SERVER_HELLO processed; receiving under the server handshake key. */
        WAIT_SERVER_FINISHED,
        /** Handshake complete. */
        CONNECTED,
        /** This side sent CLOSE; still reading until the peer's CLOSE or the end of the stream. */
        CLOSING,
        /** Done; nothing more is read or processed. */
        CLOSED
    }

    private final ClientConfig config;
    private final FixedRandoms fixed;
    private final SecureRandom random;
    private State state = State.START;

    private byte[] in = new byte[0];
    private int inLength;
    private final List<Object> events = new ArrayList<>();
    private final List<byte[]> out = new ArrayList<>();
    private final List<byte[]> pending = new ArrayList<>();
    private int pendingLength;
    private RecordLayer sendLayer;
    private RecordLayer recvLayer;
    private int recvEpoch;

    private Suite suite;
    private final Map<Suite, KeyShare> shares = new EnumMap<>(Suite.class);
    private final Map<Suite, Transcript> transcripts = new EnumMap<>(Suite.class);
    private Transcript transcript;
    private KeySchedule schedule;
    private SessionTicket ticket;
    private byte[] clientHandshakeSecret;
    private byte[] resumptionSecret;
    private boolean resumed;
    private int keepaliveMs;

    private final double started;
    private double clock;
    private Double timer;
    private double keepaliveS;
    private int recvIdle;
    private int sendIdle;
    private boolean received;
    private boolean sent;
    private boolean sentClose;

    /**
     * A client connection, not yet connected.
     *
     * @param config how to connect
     * @param now the current time in seconds (any monotonic clock; the handshake deadline counts from it)
     */
    public ClientConnection(ClientConfig config, double now) {
        this(config, now, null);
    }

    /** A client connection with fixed randomness: test vectors only. */
    ClientConnection(ClientConfig config, double now, FixedRandoms fixed) {
        this.config = config;
        this.fixed = fixed;
        this.random = new SecureRandom();
        this.started = now;
        this.clock = now;
        this.timer = now + HANDSHAKE_TIMEOUT_S;
        this.keepaliveMs = config.keepaliveMs();
    }

    private static byte[] context(String text) {
        byte[] ctx = new byte[64 + text.length() + 1];
        Arrays.fill(ctx, 0, 64, (byte) 0x20);
        byte[] t = text.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(t, 0, ctx, 64, t.length);
        return ctx;
    }

    // --- the verbs --------------------------------------------------------------------------------------------

    /**
     * Queues CLIENT_HELLO: a fresh random, one key share per offered suite, and the configured ticket with its
     * binder when it is for an offered suite and not expired at {@code now}.
     *
     * @param now the current time in seconds (the ticket's age)
     * @throws IllegalStateException unless called once, first
     */
    public void connect(double now) {
        if (state != State.START) {
            throw new IllegalStateException("connect() once, from the start state");
        }
        clock = now;
        List<KeyShare> offered = new ArrayList<>();
        for (Suite s : config.suites()) {
            byte[] d = fixed != null ? fixed.shares().get(s) : null;
            KeyShare share = d != null ? KeyShare.fromPrivate(s, d) : KeyShare.generate(s, random);
            shares.put(s, share);
            offered.add(share);
        }
        SessionTicket t = config.ticket();
        if (t != null && (!config.suites().contains(t.suite()) || t.expired(now))) {
            t = null;
        }
        ticket = t;
        byte[] helloRandom = new byte[32];
        if (fixed != null) {
            helloRandom = fixed.random().clone();
        } else {
            random.nextBytes(helloRandom);
        }
        PskMode mode = t != null ? config.pskMode() : PskMode.NONE;
        byte[] ticketBytes = t != null ? t.ticket() : new byte[0];
        long age = t != null ? t.obfuscatedAge(now) : 0;
        byte[] binder = t != null ? new byte[Crypto.HASH_LENGTH] : new byte[0];
        List<Integer> suites = new ArrayList<>(config.suites().size());
        for (Suite s : config.suites()) {
            suites.add(s.code());
        }
        List<KeyShareEntry> keyShares = new ArrayList<>(offered.size());
        for (KeyShare share : offered) {
            keyShares.add(new KeyShareEntry(share.suite().code(), share.publicBytes()));
        }
        Frame.ClientHello frame = new Frame.ClientHello(helloRandom, suites, keyShares, config.keepaliveMs(),
                mode.code(), ticketBytes, age, binder);
        byte[] hello = FrameCodec.encode(frame);
        if (t != null) {
            binder = binder(t, hello);
            hello = FrameCodec.encode(new Frame.ClientHello(helloRandom, suites, keyShares, config.keepaliveMs(),
                    mode.code(), ticketBytes, age, binder));
        }
        for (Suite s : config.suites()) {
            Transcript tr = new Transcript(s.hash());
            tr.add(hello);
            transcripts.put(s, tr);
        }
        out.add(hello);
        state = State.WAIT_SERVER_HELLO;
    }

    /** The binder over the CLIENT_HELLO body without its last 33 bytes (section 5.6). */
    private static byte[] binder(SessionTicket t, byte[] helloWithPlaceholder) {
        Crypto.Hash hash = t.suite().hash();
        byte[] covered = Arrays.copyOfRange(helloWithPlaceholder, FrameCodec.HEADER_LEN,
                helloWithPlaceholder.length - 1 - Crypto.HASH_LENGTH);
        KeySchedule ks = new KeySchedule(hash, t.psk());
        return hash.hmac(ks.binderKey(), hash.digest(covered));
    }

    /**
     * Feeds bytes received from the server. A ticket that arrives is stamped with the latest time this connection
     * was given (by the constructor, {@link #connect}, {@link #handleTimer} or
     * {@link #receiveData(byte[], int, int, double)}).
     *
     * @param data the buffer
     * @param off where the bytes start
     * @param len how many bytes; 0 means the server ended the stream
     */
    public void receiveData(byte[] data, int off, int len) {
        if (state == State.CLOSED) {
            return;
        }
        received = true;
        if (len == 0) {
            onEof();
            return;
        }
        append(data, off, len);
        try {
            int pos = 0;
            while (state != State.CLOSED && inLength - pos >= FrameCodec.HEADER_LEN) {
                int end = takeFrame(pos);
                if (end < 0) {
                    break;
                }
                pos = end;
            }
            compact(state == State.CLOSED ? inLength : pos);
        } catch (ProtocolException e) {
            fail(e.code(), e.reason());
        } catch (RuntimeException e) {
            // A bug of ours met on peer input: the contract is that receiveData never throws, so end the
            // connection, and say what it was (section 9: INTERNAL_ERROR is "failed unexpectedly").
            fail(ErrorCode.INTERNAL_ERROR, "client failed on input: " + e);
        }
    }

    /**
     * Feeds bytes received from the server and tells the connection the time (tickets received are stamped with it).
     *
     * @param data the buffer
     * @param off where the bytes start
     * @param len how many bytes; 0 means the server ended the stream
     * @param now the current time in seconds
     */
    public void receiveData(byte[] data, int off, int len, double now) {
        clock = now;
        receiveData(data, off, len);
    }

    /**
     * The events since the last call, oldest first: {@link Events.HandshakeComplete}, {@link Events.TicketReceived},
     * {@link Events.ConnectionClosed} and application {@link Frame}s (SEND_ACK, DELIVER, SYNC_DONE, PONG, GOAWAY, a
     * non-fatal ERROR, the customer-service frames).
     *
     * @return a new list; the connection's queue is emptied
     */
    public List<Object> eventsReceived() {
        List<Object> copy = new ArrayList<>(events);
        events.clear();
        return copy;
    }

    /**
     * The bytes to write to the socket: everything queued, sealed into records.
     *
     * @return the bytes; an empty array when there is nothing to write
     */
    public byte[] dataToSend() {
        flush();
        if (out.isEmpty()) {
            return new byte[0];
        }
        sent = true;
        int total = 0;
        for (byte[] b : out) {
            total += b.length;
        }
        byte[] all = new byte[total];
        int pos = 0;
        for (byte[] b : out) {
            System.arraycopy(b, 0, all, pos, b.length);
            pos += b.length;
        }
        out.clear();
        return all;
    }

    /**
     * When {@link #handleTimer} must next be called.
     *
     * @return the time in seconds, or empty when no timer is armed
     */
    public OptionalDouble timer() {
        return timer == null ? OptionalDouble.empty() : OptionalDouble.of(timer);
    }

    /**
     * Runs the handshake deadline and the keepalive (section 7.3): fails with HANDSHAKE_TIMEOUT when the handshake
     * has not completed in time; once connected, checks four times per negotiated interval, sends a PING after
     * 0.75 to 1 interval without sending, and fails with KEEPALIVE_TIMEOUT after 1.25 to 1.5 intervals without
     * receiving. Calling it early does nothing.
     *
     * @param now the current time in seconds
     */
    public void handleTimer(double now) {
        clock = now;
        if (timer == null || now < timer || state == State.CLOSED) {
            return;
        }
        if (state != State.CONNECTED && state != State.CLOSING) {
            fail(ErrorCode.HANDSHAKE_TIMEOUT, "handshake deadline passed");
            return;
        }
        recvIdle = received ? 0 : recvIdle + 1;
        sendIdle = sent ? 0 : sendIdle + 1;
        received = false;
        sent = false;
        timer = now + keepaliveS / KEEPALIVE_TICKS;
        if (recvIdle >= KEEPALIVE_TICKS * 3 / 2 - 1) {
            fail(ErrorCode.KEEPALIVE_TIMEOUT, "no traffic for 1.5 keepalive intervals");
        } else if (sendIdle >= KEEPALIVE_TICKS - 1 && state == State.CONNECTED) {
            sendIdle = 0;
            byte[] opaque = new byte[8];
            random.nextBytes(opaque);
            queue(FrameCodec.encode(new Frame.Ping(java.nio.ByteBuffer.wrap(opaque).getLong())));
        }
    }

    /**
     * Queues an application frame; it is sealed with the others at the next {@link #dataToSend()}.
     *
     * @param frame a frame a client sends: SEND, DELIVER_ACK, SYNC, PING, PONG, ERROR, CLOSE or a customer-service
     *     request (section 13)
     * @throws IllegalStateException unless the connection is CONNECTED
     * @throws IllegalArgumentException for a frame type a client never sends (KEY_UPDATE included: see
     *     {@link #updateKeys}) or a frame larger than one record
     */
    public void send(Frame frame) {
        if (state != State.CONNECTED) {
            throw new IllegalStateException("cannot send " + frame.type() + " in state " + state);
        }
        if (!CLIENT_SENDS.contains(frame.type())) {
            throw new IllegalArgumentException("a client never sends " + frame.type());
        }
        byte[] encoded = FrameCodec.encode(frame);
        if (encoded.length > MAX_RECORD_PLAINTEXT) {
            throw new IllegalArgumentException(frame.type() + " body exceeds " + (MAX_RECORD_PLAINTEXT - 12)
                    + " bytes");
        }
        queue(encoded);
    }

    /**
     * Sends KEY_UPDATE and moves to the next sending key (section 6.4): the KEY_UPDATE is the last frame of a
     * record that also carries whatever was queued before it.
     *
     * @param requestPeer true to ask the server to update its own sending key too
     * @throws IllegalStateException unless the connection is CONNECTED
     */
    public void updateKeys(boolean requestPeer) {
        if (state != State.CONNECTED || sendLayer == null) {
            throw new IllegalStateException("cannot update keys in state " + state);
        }
        queue(FrameCodec.encode(new Frame.KeyUpdate(requestPeer ? 1 : 0)));
        flush();
        sendLayer.update();
    }

    /**
     * Closes: once connected, queues CLOSE and reads on until the server's CLOSE or the end of the stream (state
     * CLOSING); during the handshake, sends nothing and ends at once (state CLOSED; the server sees the stream end).
     *
     * @param code OK for a normal close, otherwise why
     * @param reason a human-readable detail (at most 65,535 bytes of UTF-8)
     */
    public void close(ErrorCode code, String reason) {
        if (state == State.CONNECTED) {
            queue(FrameCodec.encode(new Frame.Close(code.code(), reason)));
            sentClose = true;
            state = State.CLOSING;
        } else if (state != State.CLOSING) {
            state = State.CLOSED;
            timer = null;
        }
    }

    /**
     * Whether the connection is over (closed cleanly or failed): nothing more is processed.
     *
     * @return true in state CLOSED
     */
    public boolean isClosed() {
        return state == State.CLOSED;
    }

    /**
     * The connection's state.
     *
     * @return the state
     */
    public State state() {
        return state;
    }

    /**
     * The negotiated suite.
     *
     * @return the suite, or {@code null} before SERVER_HELLO
     */
    public Suite suite() {
        return suite;
    }

    /**
     * Plaintext queued by {@link #send} and not yet sealed (what an adapter may bound).
     *
     * @return bytes
     */
    public int pendingBytes() {
        return pendingLength;
    }

    /**
     * Bytes held for an incomplete frame.
     *
     * @return bytes
     */
    public int bufferedIncomplete() {
        return inLength;
    }

    /** Sending and receiving layers, for tests in this package. */
    RecordLayer sendLayer() {
        return sendLayer;
    }

    RecordLayer recvLayer() {
        return recvLayer;
    }

    byte[] resumptionSecret() {
        return resumptionSecret;
    }

    /**
     * The state and suite only; never a key.
     *
     * @return for example {@code "ClientConnection[CONNECTED, national]"}
     */
    @Override
    public String toString() {
        return "ClientConnection[" + state + (suite != null ? ", " + suite.label() : "") + "]";
    }

    // --- input buffer -----------------------------------------------------------------------------------------

    private void append(byte[] data, int off, int len) {
        if (in.length - inLength < len) {
            in = Arrays.copyOf(in, Math.max(inLength + len, in.length * 2));
        }
        System.arraycopy(data, off, in, inLength, len);
        inLength += len;
    }

    private void compact(int consumed) {
        System.arraycopy(in, consumed, in, 0, inLength - consumed);
        inLength -= consumed;
        if (inLength == 0 && in.length > 65536) {
            in = new byte[0];
        }
    }

    /**
     * Checks the header at {@code pos} under the current state and, once its body is complete, handles the frame.
     *
     * @return where the next frame starts, or -1 when the body is still incomplete
     */
    private int takeFrame(int pos) throws ProtocolException {
        long length = ((in[pos] & 0xFFL) << 24) | ((in[pos + 1] & 0xFF) << 16) | ((in[pos + 2] & 0xFF) << 8)
                | (in[pos + 3] & 0xFF);
        int version = in[pos + 4] & 0xFF;
        int type = in[pos + 5] & 0xFF;
        if (version != 1) {
            throw new ProtocolException(ErrorCode.UNSUPPORTED_VERSION, "version " + version);
        }
        long limit = outerLimit(type);
        if (limit == NOT_ACCEPTED) {
            throw new ProtocolException(ErrorCode.UNEXPECTED_FRAME,
                    String.format("client got type 0x%02x in state %s", type, state));
        }
        if (length > limit) {
            throw new ProtocolException(ErrorCode.FRAME_TOO_LARGE,
                    String.format("type 0x%02x declares %d bytes", type, length));
        }
        int end = pos + FrameCodec.HEADER_LEN + (int) length;
        if (end > inLength) {
            return -1;
        }
        dispatchOuter(type, pos, end);
        return end;
    }

    /** The largest body of each outer type in the current state, NOT_ACCEPTED when refused from the header. */
    private long outerLimit(int type) {
        FrameType known = FrameType.of(type).orElse(null);
        if (known == null) {
            return NOT_ACCEPTED;
        }
        return switch (state) {
            case CONNECTED, CLOSING -> known == FrameType.RECORD ? FrameCodec.bodyLimit(type) : NOT_ACCEPTED;
            case START -> known == FrameType.ERROR ? FrameCodec.MAX_HANDSHAKE_BODY : NOT_ACCEPTED;
            case WAIT_SERVER_HELLO -> switch (known) {
                case SERVER_HELLO, GOAWAY, ERROR -> FrameCodec.MAX_HANDSHAKE_BODY;
                default -> NOT_ACCEPTED;
            };
            case WAIT_SERVER_FINISHED -> switch (known) {
                case ERROR -> FrameCodec.MAX_HANDSHAKE_BODY;
                case RECORD -> HANDSHAKE_RECORD_LIMIT;
                default -> NOT_ACCEPTED;
            };
            case CLOSED -> NOT_ACCEPTED;
        };
    }

    // --- receiving --------------------------------------------------------------------------------------------

    private void dispatchOuter(int type, int pos, int end) throws ProtocolException {
        if (type == FrameType.RECORD.code()) { // opened from the buffer: a decoded Frame.Record would copy it again
            openRecord(Arrays.copyOfRange(in, pos, pos + FrameCodec.HEADER_LEN),
                    Arrays.copyOfRange(in, pos + FrameCodec.HEADER_LEN, end));
            return;
        }
        Frame frame = FrameCodec.decode(in, pos, end - pos);
        if (frame instanceof Frame.ServerHello hello) {
            onServerHello(hello, Arrays.copyOfRange(in, pos, end));
        } else if (frame instanceof Frame.Goaway goaway) {
            onRefused(goaway);
        } else if (frame instanceof Frame.Error error) {
            onError(error);
        } else {
            throw new ProtocolException(ErrorCode.UNEXPECTED_FRAME, "client got " + frame.type() + " in plaintext");
        }
    }

    private void openRecord(byte[] header, byte[] body) throws ProtocolException {
        if (recvLayer == null) {
            throw new ProtocolException(ErrorCode.UNEXPECTED_FRAME, "RECORD before keys are established");
        }
        byte[] plaintext = recvLayer.open(header, body);
        List<FrameCodec.InnerFrame> inner = FrameCodec.decodeInner(plaintext, 0, plaintext.length);
        for (int i = 0; i < inner.size(); i++) {
            FrameCodec.InnerFrame f = inner.get(i);
            if (f.frame() instanceof Frame.Unknown) {
                continue; // an unknown ignorable type
            }
            int epoch = recvEpoch;
            dispatchInner(f, plaintext);
            if (state == State.CLOSED) {
                return;
            }
            if (i != inner.size() - 1 && epoch != recvEpoch) {
                throw new ProtocolException(ErrorCode.UNEXPECTED_FRAME, "key change not at a record end");
            }
        }
    }

    private void dispatchInner(FrameCodec.InnerFrame inner, byte[] p) throws ProtocolException {
        Frame f = inner.frame();
        if (state == State.WAIT_SERVER_FINISHED) {
            if (f instanceof Frame.ServerFinished sf) {
                onServerFinished(sf, Arrays.copyOfRange(p, inner.offset(), inner.offset() + inner.length()));
            } else if (f instanceof Frame.Error error) {
                onError(error);
            } else {
                throw unexpected(f.typeCode());
            }
            return;
        }
        if ((state != State.CONNECTED && state != State.CLOSING) || !CLIENT_RECEIVES.contains(f.type())) {
            throw unexpected(f.typeCode());
        }
        if (f instanceof Frame.Error error) {
            onError(error);
        } else if (f instanceof Frame.Close close) {
            onClose(close);
        } else if (f instanceof Frame.Ping ping) {
            if (state == State.CONNECTED) {
                queue(FrameCodec.encode(new Frame.Pong(ping.requestId(), 0, ping.opaque())));
            }
        } else if (f instanceof Frame.KeyUpdate update) {
            onKeyUpdate(update.updateRequested());
        } else if (f instanceof Frame.NewTicket ticket) {
            onNewTicket(ticket);
        } else {
            appFrame(f);
        }
    }

    private ProtocolException unexpected(int type) {
        String name = FrameType.of(type).map(Enum::name).orElse(String.format("0x%02x", type));
        return new ProtocolException(ErrorCode.UNEXPECTED_FRAME, "client got " + name + " in state " + state);
    }

    private void appFrame(Object frame) throws ProtocolException {
        if (events.size() >= MAX_EVENTS_BUFFERED) {
            throw new ProtocolException(ErrorCode.OVERLOADED, "events not drained");
        }
        events.add(frame);
    }

    private boolean handshakeOver() {
        return state == State.CONNECTED || state == State.CLOSING || state == State.CLOSED;
    }

    /** ERROR (section 4.7): fatal codes, unknown codes outside 400-499, and every ERROR during the handshake end the
     * connection; a non-fatal one is passed to the application as its {@link Frame}. */
    private void onError(Frame.Error error) throws ProtocolException {
        Optional<ErrorCode> known = ErrorCode.of(error.code());
        boolean fatal = known.map(ErrorCode::fatal).orElse(error.code() < 400 || error.code() >= 500);
        if (fatal || !handshakeOver()) {
            events.add(new Events.ConnectionClosed(known.orElse(ErrorCode.INTERNAL_ERROR), error.reason(), true));
            closed();
        } else {
            appFrame(error);
        }
    }

    /** A plaintext GOAWAY in WAIT_SERVER_HELLO: the server refused the handshake for load (section 5.9). */
    private void onRefused(Frame.Goaway g) {
        events.add(g);
        events.add(new Events.ConnectionClosed(ErrorCode.of(g.code()).orElse(ErrorCode.OVERLOADED), g.reason(), true));
        closed();
    }

    private void onClose(Frame.Close close) {
        if (!sentClose) {
            queue(FrameCodec.encode(new Frame.Close(ErrorCode.OK.code(), "")));
            sentClose = true;
        }
        events.add(new Events.ConnectionClosed(ErrorCode.of(close.code()).orElse(ErrorCode.OK), close.reason(), true,
                true));
        closed();
    }

    private void onKeyUpdate(int updateRequested) {
        recvLayer.update();
        recvEpoch++;
        if (updateRequested != 0 && sendLayer != null && state == State.CONNECTED) {
            queue(FrameCodec.encode(new Frame.KeyUpdate(0)));
            flush();
            sendLayer.update();
        }
    }

    private void onEof() {
        if (state == State.CLOSING) {
            events.add(new Events.ConnectionClosed(ErrorCode.OK, "peer ended the stream after our CLOSE", true, true));
        } else {
            events.add(new Events.ConnectionClosed(ErrorCode.TRUNCATED, "stream ended without CLOSE", true));
        }
        closed();
    }

    private void closed() {
        state = State.CLOSED;
        timer = null;
        in = new byte[0];
        inLength = 0;
    }

    /** Reports {@code code} to the server (encrypted if a sending key exists; nothing after our own CLOSE) and ends
     * the connection. */
    private void fail(ErrorCode code, String reason) {
        String shortReason = reason.length() > 200 ? reason.substring(0, 200) : reason;
        byte[] frame = FrameCodec.encode(new Frame.Error(code.code(), shortReason));
        if (!sentClose) {
            if (sendLayer != null) {
                pending.clear();
                pendingLength = 0;
                queue(frame);
                flush();
            } else {
                out.add(frame);
            }
        }
        events.add(new Events.ConnectionClosed(code, reason, false));
        closed();
    }

    // --- sending ----------------------------------------------------------------------------------------------

    private void queue(byte[] encoded) {
        if (pendingLength + encoded.length > MAX_RECORD_PLAINTEXT) {
            flush();
        }
        pending.add(encoded);
        pendingLength += encoded.length;
    }

    private void flush() {
        if (pending.isEmpty()) {
            return;
        }
        byte[] plaintext = new byte[pendingLength];
        int pos = 0;
        for (byte[] b : pending) {
            System.arraycopy(b, 0, plaintext, pos, b.length);
            pos += b.length;
        }
        pending.clear();
        pendingLength = 0;
        if (sendLayer.needsUpdate(plaintext.length)) {
            out.add(sendLayer.seal(FrameCodec.encode(new Frame.KeyUpdate(0))));
            sendLayer.update();
        }
        out.add(sendLayer.seal(plaintext));
    }

    private void setSend(byte[] secret) {
        flush();
        sendLayer = new RecordLayer(suite, secret);
    }

    private void setRecv(byte[] secret) {
        recvLayer = new RecordLayer(suite, secret);
        recvEpoch++;
    }

    // --- the handshake (section 5.1, client steps) ------------------------------------------------------------

    private void onServerHello(Frame.ServerHello hello, byte[] encoded) throws ProtocolException {
        Suite chosen = Suite.ofCode(hello.suite());
        if (chosen == null || !shares.containsKey(chosen)) {
            throw new ProtocolException(ErrorCode.DOWNGRADE_DETECTED,
                    "server chose unoffered suite " + hello.suite());
        }
        suite = chosen;
        byte[] psk = acceptedPsk(hello, chosen);
        byte[] shared = null;
        if (hello.keyShare().length > 0 || psk == null) {
            if (hello.keyShare().length == 0) {
                throw new ProtocolException(ErrorCode.BAD_KEY_SHARE, "full handshake without a key share");
            }
            shared = shares.get(chosen).exchange(hello.keyShare());
        }
        transcript = transcripts.get(chosen);
        transcripts.clear();
        transcript.add(encoded);
        resumed = psk != null;
        schedule = new KeySchedule(chosen.hash(), psk);
        schedule.addSharedSecret(shared);
        byte[][] hs = schedule.handshakeTraffic(transcript.digest());
        clientHandshakeSecret = hs[0];
        setRecv(hs[1]);
        if (hello.keepaliveMs() < ClientConfig.MIN_KEEPALIVE_MS || hello.keepaliveMs() > ClientConfig.MAX_KEEPALIVE_MS) {
            throw new ProtocolException(ErrorCode.HANDSHAKE_FAILURE,
                    "keepalive " + hello.keepaliveMs() + " ms out of bounds");
        }
        keepaliveMs = (int) hello.keepaliveMs();
        state = State.WAIT_SERVER_FINISHED;
    }

    private byte[] acceptedPsk(Frame.ServerHello hello, Suite chosen) throws ProtocolException {
        if (hello.pskAccepted() == 0) {
            return null;
        }
        if (ticket == null || ticket.suite() != chosen) {
            throw new ProtocolException(ErrorCode.HANDSHAKE_FAILURE, "server accepted a ticket we did not offer");
        }
        boolean dhe = config.pskMode() == PskMode.PSK_WITH_ECDHE;
        if (dhe != (hello.keyShare().length > 0)) {
            throw new ProtocolException(ErrorCode.BAD_KEY_SHARE, "key share does not match the PSK mode");
        }
        return ticket.psk();
    }

    private void onServerFinished(Frame.ServerFinished sf, byte[] encoded) throws ProtocolException {
        Crypto.Hash hash = suite.hash();
        byte[] signed = Transcript.signedPart(sf);
        String serverKey;
        if (resumed) {
            if (sf.keyType() != 0 || sf.publicKey().length > 0 || sf.signature().length > 0) {
                throw new ProtocolException(ErrorCode.HANDSHAKE_FAILURE, "resumed handshake carries a server key");
            }
            serverKey = "";
        } else {
            serverKey = checkServerKey(sf, transcript.digest(signed));
        }
        byte[] covered = Transcript.macedPart(sf);
        byte[] expected = hash.hmac(schedule.finishedKey(recvLayer.secret()), transcript.digest(covered));
        if (!Crypto.constantTimeEquals(expected, sf.verifyData())) {
            throw new ProtocolException(ErrorCode.BAD_FINISHED, "server Finished does not verify");
        }
        transcript.add(encoded);
        byte[][] ap = schedule.applicationTraffic(transcript.digest());
        setSend(clientHandshakeSecret);
        sendClientFinished();
        setSend(ap[0]);
        setRecv(ap[1]);
        String clientKeyPin = !resumed && config.appSecret() == null && config.clientKey() != null
                ? config.clientKey().verifyKey().fingerprint() : "";
        events.add(new Events.HandshakeComplete(suite, resumed, config.appId(), keepaliveMs, serverKey, clientKeyPin));
        state = State.CONNECTED;
        keepaliveS = keepaliveMs / 1000.0;
        timer = started; // due at once: the next handleTimer(now) starts the keepalive from now
        for (KeyShare share : shares.values()) {
            share.destroy();
        }
        shares.clear();
        transcript = null;
        Arrays.fill(clientHandshakeSecret, (byte) 0);
    }

    private String checkServerKey(Frame.ServerFinished sf, byte[] coveredHash) throws ProtocolException {
        if (sf.keyType() != suite.keyType().code()) {
            throw new ProtocolException(ErrorCode.BAD_SIGNATURE, "server key type does not match the suite");
        }
        VerifyKey key = VerifyKey.of(suite.keyType(), sf.publicKey());
        if (!key.verify(sf.signature(), concat(SERVER_SIGNATURE_CONTEXT, coveredHash))) {
            throw new ProtocolException(ErrorCode.BAD_SIGNATURE, "signature over the transcript does not verify");
        }
        String pin = key.fingerprint();
        if (!config.pins().contains(pin)) {
            throw new ProtocolException(ErrorCode.SERVER_KEY_NOT_PINNED, "server key " + pin + " is not pinned");
        }
        return pin;
    }

    private void sendClientFinished() {
        Crypto.Hash hash = suite.hash();
        String appId = resumed ? "" : config.appId();
        byte[] none = new byte[0];
        byte[] secret = config.appSecret();
        SigningKey key = resumed || secret != null ? null : config.clientKey();
        int authMode = resumed ? AUTH_RESUMED : secret != null ? AUTH_APP_SECRET : AUTH_CLIENT_KEY;
        int keyType = key != null ? key.keyType().code() : 0;
        byte[] publicKey = key != null ? key.verifyKey().publicBytes() : none;
        byte[] proved = Transcript.provedPart(
                new Frame.ClientFinished(appId, authMode, keyType, publicKey, none, none));
        byte[] proof;
        if (resumed) {
            proof = none;
        } else if (secret != null) {
            proof = appProof(hash, appId, secret, transcript.digest(proved));
            Arrays.fill(secret, (byte) 0);
        } else {
            byte[] message = concat(CLIENT_SIGNATURE_CONTEXT, transcript.digest(proved));
            proof = fixed != null ? key.sign(message, fixed.nonceSource()) : key.sign(message, random);
        }
        byte[] maced = Transcript.macedPart(new Frame.ClientFinished(appId, authMode, keyType, publicKey, proof, none));
        byte[] mac = hash.hmac(schedule.finishedKey(sendLayer.secret()), transcript.digest(maced));
        byte[] encoded = FrameCodec.encode(new Frame.ClientFinished(appId, authMode, keyType, publicKey, proof, mac));
        queue(encoded);
        transcript.add(encoded);
        resumptionSecret = schedule.resumptionSecret(transcript.digest());
    }

    /**
     * The APP_SECRET proof (section 5.5): {@code ClientKey XOR HMAC(Hash(ClientKey), covered_hash)} with
     * {@code ClientKey = HKDF-Expand-Label(HKDF-Extract(app_id, app_secret), "client key", "", 32)}.
     */
    static byte[] appProof(Crypto.Hash hash, String appId, byte[] appSecret, byte[] coveredHash) {
        byte[] prk = hash.hkdfExtract(appId.getBytes(StandardCharsets.UTF_8), appSecret);
        byte[] clientKey = KeySchedule.expandLabel(hash, prk, "client key", new byte[0], Crypto.HASH_LENGTH);
        byte[] signature = hash.hmac(hash.digest(clientKey), coveredHash);
        byte[] proof = new byte[Crypto.HASH_LENGTH];
        for (int i = 0; i < proof.length; i++) {
            proof[i] = (byte) (clientKey[i] ^ signature[i]);
        }
        Arrays.fill(prk, (byte) 0);
        Arrays.fill(clientKey, (byte) 0);
        return proof;
    }

    private void onNewTicket(Frame.NewTicket nt) {
        if (nt.lifetimeS() <= 0 || nt.lifetimeS() > SessionTicket.MAX_LIFETIME_S) {
            return; // section 5.6: a ticket with an out-of-range lifetime is ignored
        }
        byte[] psk = schedule.ticketPsk(resumptionSecret, nt.nonce());
        events.add(new Events.TicketReceived(
                new SessionTicket(suite, nt.ticket(), psk, nt.lifetimeS(), nt.ageAdd(), clock)));
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}
