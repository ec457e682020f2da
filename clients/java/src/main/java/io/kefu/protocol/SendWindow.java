package io.kefu.protocol;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.OptionalDouble;
import java.util.random.RandomGenerator;

/**
 * The sending side of delivery (spec/PROTOCOL.md sections 4.1, 4.2, 4.10 items 3 and 4): the SENDs waiting for
 * their SEND_ACK, which of them go on the wire now, and when one is sent again. Sans-IO: time is passed in as
 * seconds on any monotonic clock, and randomness (the jitter of the rate-limit backoff) is given at construction.
 *
 * <p>Theory of operation. Every submitted SEND is a {@link PendingSend}, keyed by its {@code client_msg_id} and kept
 * in submission order until a SEND_ACK settles it. Because the server stores a message once per (sender,
 * {@code client_msg_id}) and answers a repeat with the original acknowledgement (flag DUPLICATE, section 4.2),
 * sending a SEND again is always safe, and this class does so whenever its fate is unknown:
 * <ul>
 *   <li><b>Window.</b> At most {@code window} SENDs are on the wire without a SEND_ACK; {@link #takeSendable}
 *       releases the next ones in line as acknowledgements free the window, at most a given number of bytes at a
 *       time (one flush never builds an unbounded batch).</li>
 *   <li><b>Retransmission after rto.</b> A SEND without a SEND_ACK {@code rto} seconds after it went out is sent
 *       again on the same connection, and its rto doubles (from {@code rtoInitial} up to {@code rtoMax}). A server
 *       answers every SEND exactly once, so this only matters for a server that is stuck or a connection that died
 *       silently; the keepalive catches the latter too. With an infinite {@code rtoInitial} (as the Python client,
 *       which relies on the keepalive) a SEND goes again only on the next connection.</li>
 *   <li><b>Reconnect.</b> {@link #requeueAll()} on a new connection puts every unsettled SEND back in line, in
 *       submission order, with its original {@code client_msg_id} (section 4.10 item 3).</li>
 *   <li><b>Refusals.</b> RATE_LIMITED (429) waits out an exponential backoff with jitter, then goes to the end of
 *       the line (as the Python client's {@code Outbox.requeue}); SHUTTING_DOWN (503) waits for the next connection
 *       (section 4.10 item 10); every other status is final.</li>
 *   <li><b>Idempotency.</b> {@link #submit} of a {@code client_msg_id} already pending returns the pending entry
 *       instead of adding a second; a SEND_ACK for an id no longer pending (an answer to an earlier attempt) is
 *       reported as {@link Outcome.Kind#UNKNOWN} and changes nothing.</li>
 * </ul>
 * Admission is bounded: {@link #hasRoom(long)} says whether a SEND of {@link #sizeOf a given size} fits the count
 * and byte bounds; a caller that waits for room slows a fast producer to the server's pace (the Java client guards
 * its window with a lock on which {@code send()} waits). Each entry carries an {@link PendingSend#attachment()
 * attachment}, the caller's own state for it (the client's future and deadline), so that nothing else keeps a second
 * map of the pending SENDs.
 *
 * <p>Thread-safety: not thread-safe. Confine an instance to one thread (the client's I/O thread) or guard every call
 * with one lock. It does no I/O and reads no clock.
 */
public final class SendWindow {
    /** SENDs submitted and not settled, by default: a few seconds of a busy agent desk at worst. */
    public static final int DEFAULT_MAX_PENDING = 10_000;

    /** Body and metadata value bytes submitted and not settled, by default (64 MiB). */
    public static final long DEFAULT_MAX_PENDING_BYTES = 64L << 20;

    /**
     * SENDs on the wire without a SEND_ACK, by default: with the server's group commit every 2 ms, enough for tens
     * of thousands of messages a second across a 10 ms round trip.
     */
    public static final int DEFAULT_WINDOW = 256;

    /**
     * First retransmission timeout of a SEND, by default: 10 s, far above a healthy server's commit time (a few ms)
     * and below the keepalive's detection of a dead connection (about 1.25 intervals of 30 s).
     */
    public static final double DEFAULT_RTO_INITIAL = 10.0;

    /** Cap of the doubling retransmission timeout, by default. */
    public static final double DEFAULT_RTO_MAX = 60.0;

    /** First wait after a RATE_LIMITED refusal, as the Python client (seconds). */
    public static final double RATE_LIMITED_INITIAL = 0.2;

    /** Cap of the doubling wait after RATE_LIMITED refusals (seconds). */
    public static final double RATE_LIMITED_MAX = 10.0;

    /** Spread of every rate-limit wait: each is drawn uniformly from [w(1 - j), w(1 + j)] with j = 0.2. */
    public static final double RATE_LIMITED_JITTER = 0.2;

    /** Where a pending SEND is. */
    private enum State {
        /** Waiting for the wire. */
        UNSENT,
        /** On the wire, without a SEND_ACK; sent again at {@code deadline}. */
        IN_FLIGHT,
        /** Refused with RATE_LIMITED; back in line at {@code deadline}. */
        BACKOFF,
        /** Refused with SHUTTING_DOWN; back in line on the next connection. */
        HELD
    }

    /**
     * One SEND waiting for its SEND_ACK.
     *
     * <p>Thread-safety: its state is read and changed by the owning {@link SendWindow}; follow that class's rule.
     */
    public static final class PendingSend {
        private final Frame.Send frame;
        private final long size;
        private final long order;
        private State state = State.UNSENT;
        private double deadline;
        private double rto;
        private double backoff;
        private int transmissions;
        private Object attachment;

        private PendingSend(Frame.Send frame, long order, double rto) {
            this.frame = frame;
            this.order = order;
            this.rto = rto;
            this.size = sizeOf(frame);
        }

        /**
         * The caller's own state for this SEND, as set by {@link #attach}.
         *
         * @return the attachment, or null
         */
        public Object attachment() {
            return attachment;
        }

        /**
         * Attaches the caller's own state to this SEND (replacing any earlier attachment); the window never reads
         * it.
         *
         * @param value the attachment, or null
         */
        public void attach(Object value) {
            this.attachment = value;
        }

        /**
         * The SEND as submitted (its {@code request_id} as given; use {@link #frame(long)} to label an attempt).
         *
         * @return the frame
         */
        public Frame.Send frame() {
            return frame;
        }

        /**
         * The SEND with another {@code request_id}, for one attempt on one connection (section 3.1: the SEND_ACK
         * echoes it; correlation is by {@code client_msg_id} all the same).
         *
         * @param requestId the request id, 0 to 2^32 - 1
         * @return the frame to put on the wire
         */
        public Frame.Send frame(long requestId) {
            Frame.Send f = frame;
            return new Frame.Send(
                    requestId, f.flags(), f.clientMsgId(), f.conversationId(), f.contentType(), f.body(), f.metadata());
        }

        /**
         * The idempotency key.
         *
         * @return the 16-byte {@code client_msg_id} (the frame's array; do not modify it)
         */
        public byte[] clientMsgId() {
            return frame.clientMsgId();
        }

        /**
         * The bytes this SEND counts against the byte bound: its body and metadata values.
         *
         * @return the size
         */
        public long size() {
            return size;
        }

        /**
         * How many times {@link SendWindow#takeSendable} has released this SEND for the wire.
         *
         * @return 0 before the first time
         */
        public int transmissions() {
            return transmissions;
        }
    }

    /**
     * What a SEND_ACK (or a refusing ERROR) did to the pending SENDs.
     *
     * <p>Thread-safety: immutable.
     *
     * @param kind what happened
     * @param entry the pending SEND concerned, or null for {@link Kind#UNKNOWN}
     * @param status the wire status (0 for OK)
     * @param retryAt when the SEND goes back in line, for {@link Kind#RETRY_LATER}; NaN otherwise
     */
    public record Outcome(Kind kind, PendingSend entry, int status, double retryAt) {
        /**
         * The kinds of outcome.
         *
         * <p>Thread-safety: an enum; immutable.
         */
        public enum Kind {
            /** Stored durably (OK, with or without DUPLICATE: the same thing, section 4.2); no longer pending. */
            ACCEPTED,
            /** Refused for good with {@code status}; no longer pending. */
            REFUSED,
            /** RATE_LIMITED: goes again at {@code retryAt}. */
            RETRY_LATER,
            /** SHUTTING_DOWN: goes again on the next connection ({@link SendWindow#requeueAll()}). */
            RETRY_ON_RECONNECT,
            /** No pending SEND has this {@code client_msg_id}: settled before, abandoned, or not ours. */
            UNKNOWN
        }
    }

    private final int maxPending;
    private final long maxPendingBytes;
    private final int window;
    private final double rtoInitial;
    private final double rtoMax;
    private final RandomGenerator random;
    private final LinkedHashMap<Key, PendingSend> entries = new LinkedHashMap<>();
    private final ArrayDeque<PendingSend> unsent = new ArrayDeque<>();
    /** Entries with a finite deadline (IN_FLIGHT and BACKOFF): what timer() and takeSendable() scan. */
    private final LinkedHashSet<PendingSend> timed = new LinkedHashSet<>();
    private long bytes;
    private int inFlight;
    private long nextOrder;

    /**
     * A window with the default bounds and timeouts.
     *
     * @param random the source of the rate-limit backoff's jitter
     */
    public SendWindow(RandomGenerator random) {
        this(DEFAULT_MAX_PENDING, DEFAULT_MAX_PENDING_BYTES, DEFAULT_WINDOW, DEFAULT_RTO_INITIAL, DEFAULT_RTO_MAX,
                random);
    }

    /**
     * A window with the given bounds and timeouts.
     *
     * @param maxPending SENDs submitted and not settled, at least 1
     * @param maxPendingBytes their body and metadata bytes, at least 1
     * @param window SENDs on the wire without a SEND_ACK, at least 1
     * @param rtoInitial seconds before an unanswered SEND is sent again, positive
     *     ({@link Double#POSITIVE_INFINITY}: never on the same connection)
     * @param rtoMax the cap of the doubling timeout, at least {@code rtoInitial}
     * @param random the source of the rate-limit backoff's jitter
     * @throws IllegalArgumentException if a bound is out of range
     */
    public SendWindow(
            int maxPending, long maxPendingBytes, int window, double rtoInitial, double rtoMax,
            RandomGenerator random) {
        if (maxPending < 1 || maxPendingBytes < 1 || window < 1 || !(rtoInitial > 0) || !(rtoMax >= rtoInitial)) {
            throw new IllegalArgumentException("bounds out of range");
        }
        this.maxPending = maxPending;
        this.maxPendingBytes = maxPendingBytes;
        this.window = window;
        this.rtoInitial = rtoInitial;
        this.rtoMax = rtoMax;
        this.random = random;
    }

    /**
     * A fresh random {@code client_msg_id} (section 4.1: a random 128-bit value).
     *
     * @param random the source; a {@link java.security.SecureRandom} makes ids unguessable
     * @return 16 random bytes
     */
    public static byte[] newClientMsgId(RandomGenerator random) {
        byte[] id = new byte[16];
        random.nextBytes(id);
        return id;
    }

    /**
     * The bytes a SEND counts against the byte bound: its body and metadata values (as the Python client's outbox).
     *
     * @param frame the SEND
     * @return the size
     */
    public static long sizeOf(Frame.Send frame) {
        long bytes = frame.body().length;
        for (MetaEntry m : frame.metadata()) {
            bytes += m.value().length;
        }
        return bytes;
    }

    /** A 16-byte {@code client_msg_id} as a map key: two longs, cheap to hash and compare. */
    private static final class Key {
        private static final VarHandle LONGS = MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.BIG_ENDIAN);
        private final long high;
        private final long low;

        private Key(byte[] clientMsgId) {
            this.high = (long) LONGS.get(clientMsgId, 0);
            this.low = (long) LONGS.get(clientMsgId, 8);
        }

        static Key of(byte[] clientMsgId) {
            if (clientMsgId.length != 16) {
                throw new IllegalArgumentException("client_msg_id must be 16 bytes, got " + clientMsgId.length);
            }
            return new Key(clientMsgId);
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Key k && k.high == high && k.low == low;
        }

        @Override
        public int hashCode() {
            return Long.hashCode(high * 31 + low);
        }
    }

    /**
     * Whether a SEND of {@code size} bytes fits the bounds now. An empty window takes any single SEND.
     *
     * @param size its body and metadata bytes
     * @return true if {@link #submit} would accept it
     */
    public boolean hasRoom(long size) {
        return entries.isEmpty() || (entries.size() < maxPending && bytes + size <= maxPendingBytes);
    }

    /**
     * Adds a SEND, to go out at the next {@link #takeSendable}. Idempotent on {@code client_msg_id}: if a SEND with
     * that id is pending, it is returned and nothing is added.
     *
     * @param frame the SEND; its {@code client_msg_id} is 16 bytes
     * @return the pending entry
     * @throws IllegalStateException if it does not fit the bounds ({@link #hasRoom(long)} is false)
     * @throws IllegalArgumentException if the {@code client_msg_id} is not 16 bytes
     */
    public PendingSend submit(Frame.Send frame) {
        Key key = Key.of(frame.clientMsgId());
        PendingSend existing = entries.get(key);
        if (existing != null) {
            return existing;
        }
        PendingSend entry = new PendingSend(frame, nextOrder++, rtoInitial);
        if (!hasRoom(entry.size)) {
            throw new IllegalStateException("no room: " + entries.size() + " SENDs, " + bytes + " bytes pending");
        }
        entries.put(key, entry);
        bytes += entry.size;
        unsent.addLast(entry);
        return entry;
    }

    /**
     * The pending SEND with this id.
     *
     * @param clientMsgId the 16-byte id
     * @return the entry, or null if none is pending
     */
    public PendingSend get(byte[] clientMsgId) {
        return clientMsgId.length == 16 ? entries.get(new Key(clientMsgId)) : null;
    }

    /**
     * The SENDs to put on the wire now: those whose rto expired (sent again, their rto doubled), then those whose
     * rate-limit backoff is over, then the next ones in line, as far as the window allows. Each returned SEND counts
     * as sent at {@code now}.
     *
     * @param now the current time, in seconds
     * @return the SENDs, possibly none
     */
    public List<PendingSend> takeSendable(double now) {
        return takeSendable(now, Long.MAX_VALUE);
    }

    /**
     * {@link #takeSendable(double)}, releasing SENDs from the line only while their sizes add up to less than
     * {@code maxBytes} (at least one SEND, when any is sendable); the rest stay in line for the next call
     * ({@link #hasSendable()} says so).
     *
     * @param now the current time, in seconds
     * @param maxBytes the byte budget of this call (body and metadata bytes, as {@link #sizeOf})
     * @return the SENDs, possibly none
     */
    public List<PendingSend> takeSendable(double now, long maxBytes) {
        List<PendingSend> out = new ArrayList<>();
        if (!timed.isEmpty()) {
            releaseExpired(now, out);
        }
        long budget = maxBytes;
        for (PendingSend e : out) {
            budget -= e.size;
        }
        while (inFlight < window && !unsent.isEmpty() && (budget > 0 || out.isEmpty())) {
            PendingSend e = unsent.pollFirst();
            e.state = State.IN_FLIGHT;
            e.deadline = now + e.rto;
            e.transmissions++;
            inFlight++;
            if (e.deadline != Double.POSITIVE_INFINITY) {
                timed.add(e);
            }
            budget -= e.size;
            out.add(e);
        }
        return out;
    }

    /** Retransmits the SENDs whose rto expired (into {@code out}) and puts those whose backoff is over in line. */
    private void releaseExpired(double now, List<PendingSend> out) {
        List<PendingSend> backInLine = new ArrayList<>();
        for (PendingSend e : timed) {
            if (e.deadline > now) {
                continue;
            }
            if (e.state == State.IN_FLIGHT) {
                e.rto = Math.min(e.rto * 2, rtoMax);
                e.deadline = now + e.rto;
                e.transmissions++;
                out.add(e);
            } else {
                backInLine.add(e);
            }
        }
        out.sort(Comparator.comparingLong(e -> e.order));
        backInLine.sort(Comparator.comparingLong(e -> e.order));
        for (PendingSend e : backInLine) {
            timed.remove(e);
            e.state = State.UNSENT;
            unsent.addLast(e);
        }
    }

    /**
     * Whether {@link #takeSendable} would release a SEND now without any time passing.
     *
     * @return true if an unsent SEND fits the window
     */
    public boolean hasSendable() {
        return inFlight < window && !unsent.isEmpty();
    }

    /**
     * When {@link #takeSendable} next has something to do because time passed: the earliest rto expiry or end of a
     * rate-limit backoff. Scans the SENDs in flight and in backoff (at most the window and the refused ones).
     *
     * @return the time in seconds, or empty if no SEND waits on a timer
     */
    public OptionalDouble timer() {
        double min = Double.POSITIVE_INFINITY;
        for (PendingSend e : timed) {
            min = Math.min(min, e.deadline);
        }
        return min == Double.POSITIVE_INFINITY ? OptionalDouble.empty() : OptionalDouble.of(min);
    }

    /**
     * Settles a SEND by its SEND_ACK (matched by {@code client_msg_id}, whatever the {@code request_id}).
     *
     * @param ack the frame
     * @param now the current time, in seconds (the start of a rate-limit backoff)
     * @return what happened
     */
    public Outcome onSendAck(Frame.SendAck ack, double now) {
        return settle(ack.clientMsgId(), ack.status(), now);
    }

    /**
     * Settles a SEND refused by a non-fatal ERROR that carried its request id (the caller maps the request id to the
     * {@code client_msg_id}); the same rules as a SEND_ACK with that status.
     *
     * @param clientMsgId the SEND's id
     * @param code the ERROR's code
     * @param now the current time, in seconds
     * @return what happened
     */
    public Outcome onRefused(byte[] clientMsgId, int code, double now) {
        return settle(clientMsgId, code, now);
    }

    private Outcome settle(byte[] clientMsgId, int status, double now) {
        PendingSend e = get(clientMsgId);
        if (e == null) {
            return new Outcome(Outcome.Kind.UNKNOWN, null, status, Double.NaN);
        }
        if (status == ErrorCode.RATE_LIMITED.code()) {
            leaveCurrentState(e);
            e.backoff = e.backoff == 0 ? RATE_LIMITED_INITIAL : Math.min(e.backoff * 2, RATE_LIMITED_MAX);
            double spread = RATE_LIMITED_JITTER * (2 * random.nextDouble() - 1);
            e.state = State.BACKOFF;
            e.deadline = now + e.backoff * (1 + spread);
            timed.add(e);
            return new Outcome(Outcome.Kind.RETRY_LATER, e, status, e.deadline);
        }
        if (status == ErrorCode.SHUTTING_DOWN.code()) {
            leaveCurrentState(e);
            e.state = State.HELD;
            return new Outcome(Outcome.Kind.RETRY_ON_RECONNECT, e, status, Double.NaN);
        }
        remove(clientMsgId);
        Outcome.Kind kind = status == ErrorCode.OK.code() ? Outcome.Kind.ACCEPTED : Outcome.Kind.REFUSED;
        return new Outcome(kind, e, status, Double.NaN);
    }

    private void leaveCurrentState(PendingSend e) {
        switch (e.state) {
            case UNSENT -> unsent.remove(e);
            case IN_FLIGHT -> {
                inFlight--;
                timed.remove(e);
            }
            case BACKOFF -> timed.remove(e);
            case HELD -> { }
        }
    }

    /**
     * A new connection: every SEND not waiting out a rate-limit backoff goes again, in submission order, with a
     * fresh rto. Call it when the handshake completes (the SENDs in flight on the lost connection are in an unknown
     * state: sending them again is safe, section 4.10 item 4).
     */
    public void requeueAll() {
        unsent.clear();
        inFlight = 0;
        timed.removeIf(e -> e.state == State.IN_FLIGHT);
        for (PendingSend e : entries.values()) {
            if (e.state != State.BACKOFF) {
                e.state = State.UNSENT;
                e.rto = rtoInitial;
                unsent.addLast(e);
            }
        }
    }

    /**
     * Stops tracking a SEND (the caller gave up on it: a timeout or a cancellation) and frees its room. A SEND_ACK
     * that arrives for it later is {@link Outcome.Kind#UNKNOWN}.
     *
     * @param clientMsgId the SEND's id
     * @return the entry, or null if none was pending
     */
    public PendingSend remove(byte[] clientMsgId) {
        PendingSend e = clientMsgId.length == 16 ? entries.remove(new Key(clientMsgId)) : null;
        if (e != null) {
            leaveCurrentState(e);
            bytes -= e.size;
        }
        return e;
    }

    /**
     * Removes and returns every pending SEND (the client is closing or has failed).
     *
     * @return the entries, in submission order
     */
    public List<PendingSend> drain() {
        List<PendingSend> all = new ArrayList<>(entries.values());
        entries.clear();
        unsent.clear();
        timed.clear();
        bytes = 0;
        inFlight = 0;
        return all;
    }

    /**
     * The number of SENDs submitted and not settled.
     *
     * @return the count
     */
    public int size() {
        return entries.size();
    }

    /**
     * The number of SENDs on the wire without a SEND_ACK.
     *
     * @return at most the window
     */
    public int inFlight() {
        return inFlight;
    }

    /**
     * The body and metadata bytes of the SENDs submitted and not settled.
     *
     * @return the byte count
     */
    public long pendingBytes() {
        return bytes;
    }
}
