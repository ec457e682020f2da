package io.kefu.client;

import io.kefu.protocol.ClientConfig;
import io.kefu.protocol.DeliveryTracker;
import io.kefu.protocol.ErrorCode;
import io.kefu.protocol.Events;
import io.kefu.protocol.Frame;
import io.kefu.protocol.MetaEntry;
import io.kefu.protocol.SendWindow;
import io.kefu.protocol.SessionTicket;
import io.kefu.protocol.Suite;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Optional;
import java.util.PrimitiveIterator;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicReference;

/**
 * A kefu client: one user (app id) on one device, over one TCP connection at a time, driven by one I/O thread.
 *
 * <pre>{@code
 * try (KefuClient client = KefuClient.builder().url(url).build()) {
 *     client.connect();
 *     SendReceipt receipt = client.send(conversationId, "您好").get();   // durable once this returns
 *     Message message = client.receive(Duration.ofSeconds(30));         // in order, each once
 * }
 * }</pre>
 *
 * <p>Theory of operation (as clients/python/client.py): the client owns at most one live connection and survives
 * the loss of any of them. Pending sends (the sans-IO {@link io.kefu.protocol.SendWindow}, behind a lock so that
 * {@code send()} can wait for room), per-conversation watermarks and acknowledgements not yet written (the sans-IO
 * {@link io.kefu.protocol.DeliveryTracker}), the delivery queue, history fetches in progress and the latest
 * resumption ticket live here. When a handshake
 * completes the client sends SYNC(conversation, handled) for every conversation it knows plus SYNC(0), re-issues
 * fetches in progress and puts every pending SEND on the wire again with its original client message id (the server
 * stores each once). When a connection is lost (or a GOAWAY drains it) the client reconnects after the backoff
 * schedule (the GOAWAY's parameters once one arrived), resuming with the latest ticket, and stops only on refusals
 * that retrying cannot cure (bad credentials, no common suite, unpinned server key). Deliveries at or below what was
 * already queued are dropped, so the application sees each message once and in order per conversation.
 *
 * <p>Acknowledgement: by default (implicit) a message is acknowledged when the application asks for the next one
 * ({@link #receive}, the iterator of {@link #deliveries()}, or the listener returning normally) or closes the
 * client; with {@link Builder#explicitAck(boolean) explicitAck(true)} only when {@link Message#ack()} is called, in
 * any order, from any thread. After a reconnect the messages not acked are given again (flagged as redeliveries).
 *
 * <p>Thread safety: every public method may be called from any thread. Futures are completed, and the connection
 * callbacks run, on the client's I/O thread: do not block in them (use the {@code ...Async} stages of
 * {@link CompletableFuture} for slow work). The deliveries are meant for one consumer at a time.
 */
public final class KefuClient implements AutoCloseable {
    /** close() waits this long for the server's CLOSE before dropping the connection. */
    static final Duration CLOSE_TIMEOUT = Duration.ofSeconds(2);
    /** Largest {@code limit} of one history fetch. */
    public static final int MAX_FETCH_MESSAGES = 10_000;
    /** Metadata key naming the other members (comma-separated) of the conversation a SEND creates. */
    public static final String MEMBERS_KEY = "kefu.to";
    /** Service conversations get ids from here up (spec section 13.2); clients never create one above it. */
    public static final long SERVICE_BASE = 1L << 62;
    /** The bit that makes a service conversation's id its staff channel (section 13.2). */
    public static final long STAFF_BIT = 1L << 63;
    /** Largest frame body (the spec's limit), checked locally before sending. */
    static final int MAX_BODY = 1 << 20;
    private static final int SEND_OVERHEAD = 64;
    private static final SecureRandom RANDOM = new SecureRandom();

    private final Builder options;
    private final ClientConfig config;
    private final IoLoop loop;
    private final GuardedSendWindow sends = new GuardedSendWindow();
    private final Inbox inbox;
    private final ServiceApi service;
    private final AtomicReference<Message> inHand = new AtomicReference<>();
    // --- the I/O thread's state ---
    private final DeliveryTracker tracker = new DeliveryTracker();
    private final List<Fetch> fetches = new ArrayList<>();
    private Link link;
    private Link announced;
    private SessionTicket ticket;
    private Backoff policy;
    private double goawayDelay = -1;
    private PrimitiveIterator.OfDouble schedule;
    private IoLoop.Timer reconnectTimer;
    private boolean reconnecting;
    private Events.ConnectionClosed endedByServer;
    private boolean established;
    private Runnable onClosed;
    // --- read from any thread ---
    private volatile boolean started;
    private volatile boolean closed;
    private volatile KefuException failure;
    private volatile Suite suite;
    private volatile boolean resumed;
    private volatile boolean connected;
    private volatile int reconnects;

    private KefuClient(Builder b) {
        this.options = b.copy();
        ClientConfig.Builder cb = ClientConfig.builder(b.appId, io.kefu.protocol.Pins.of(b.pins))
                .suites(b.suites)
                .keepaliveMs(Math.toIntExact(b.keepalive.toMillis()))
                .pskMode(b.pskWithEcdhe ? io.kefu.protocol.PskMode.PSK_WITH_ECDHE
                        : io.kefu.protocol.PskMode.PSK_ONLY);
        if (b.appSecret != null) {
            cb.appSecret(b.appSecret);
        }
        if (b.clientKey != null) {
            cb.clientKey(b.clientKey);
        }
        this.config = cb.build();
        this.policy = b.backoff;
        this.loop = new IoLoop("kefu-io-" + b.appId, this::crashed);
        this.inbox = new Inbox(() -> loop.execute(this::resumeReading));
        this.service = new ServiceApi(this);
    }

    /**
     * A builder of a client.
     *
     * @return a fresh builder
     */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * A random, nonzero 62-bit conversation id for a conversation this client opens (positive, below
     * {@link #SERVICE_BASE}).
     *
     * @return the id
     */
    public static long newConversationId() {
        long id = RANDOM.nextLong() >>> 2;
        return id == 0 ? 1 : id;
    }

    /**
     * The staff channel of a service conversation (its owner and watching supervisors: whispers, AI drafts).
     *
     * @param conversationId a service conversation
     * @return its staff channel
     */
    public static long staffChannel(long conversationId) {
        return conversationId | STAFF_BIT;
    }

    /**
     * Whether a conversation id is a staff channel.
     *
     * @param conversationId the id
     * @return true for a staff channel
     */
    public static boolean isStaffChannel(long conversationId) {
        return (conversationId & STAFF_BIT) != 0;
    }

    // --- public state -------------------------------------------------------------------------------------

    /**
     * The app id this client authenticates as.
     *
     * @return the app id
     */
    public String appId() {
        return options.appId;
    }

    /**
     * Whether a connection is up and usable right now.
     *
     * @return true when connected
     */
    public boolean isConnected() {
        return connected;
    }

    /**
     * The suite of the current connection.
     *
     * @return the suite, empty while disconnected
     */
    public Optional<Suite> suite() {
        return connected ? Optional.ofNullable(suite) : Optional.empty();
    }

    /**
     * Whether the current connection resumed a session with a ticket (no certificate signature).
     *
     * @return true for a resumed connection
     */
    public boolean isResumed() {
        return connected && resumed;
    }

    /**
     * Successful reconnections since {@link #connect()}.
     *
     * @return the count
     */
    public int reconnects() {
        return reconnects;
    }

    /**
     * The customer-service requests and events (spec section 13).
     *
     * @return the service API of this client
     */
    public ServiceApi service() {
        return service;
    }

    @Override
    public String toString() {
        String state = closed ? "closed" : connected ? "connected" : "disconnected";
        return "KefuClient[" + options.appId + " at " + options.host + ":" + options.port + " " + state + "]";
    }

    // --- lifecycle ----------------------------------------------------------------------------------------

    /**
     * Open the first connection and complete the handshake, blocking the caller.
     *
     * <p>The first connection is not retried, except after a refusal for load (ServerBusyException), which is
     * retried after the server's delay while the connect timeout allows.
     *
     * @throws ConnectException (AuthFailedException, ServerNotTrustedException, NoCommonSuiteException,
     *     ServerBusyException, ConnectTimeoutException) when no connection could be made
     * @throws ClientClosedException when the client is closed
     */
    public void connect() {
        if (closed) {
            throw new ClientClosedException("the client is closed");
        }
        synchronized (this) {
            if (started) {
                throw new IllegalStateException("connect() was already called");
            }
            started = true;
        }
        loop.start();
        long deadline = System.nanoTime() + options.connectTimeout.toNanos();
        while (true) {
            CompletableFuture<Link> attempt = new CompletableFuture<>();
            loop.execute(() -> dial(attempt));
            try {
                Link first = await(attempt, options.connectTimeout.toNanos() + TimeUnit.SECONDS.toNanos(1));
                loop.execute(() -> {
                    announced = first;
                    callback(options.onConnected);
                });
                return;
            } catch (ServerBusyException busy) {
                CompletableFuture<Double> delay = new CompletableFuture<>();
                loop.execute(() -> delay.complete(refusalDelay()));
                double seconds = delay.join();
                if (seconds < 0 || System.nanoTime() + (long) (seconds * 1e9) >= deadline) {
                    shutdownAfterFailedConnect();
                    throw busy;
                }
                sleep(seconds);
            } catch (KefuException e) {
                shutdownAfterFailedConnect();
                throw e;
            }
        }
    }

    /**
     * Acknowledge the message in hand (implicit acknowledgement), send CLOSE and wait briefly for the server's CLOSE.
     * Pending sends, fetches and requests end with {@link ClientClosedException}; the deliveries end. Idempotent.
     */
    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (!started) {
            return;
        }
        Message held = inHand.getAndSet(null);
        CompletableFuture<Void> done = new CompletableFuture<>();
        loop.execute(() -> {
            if (held != null) {
                markHandled(held);
            }
            shutdown(done);
        });
        try {
            done.get(CLOSE_TIMEOUT.toMillis() * 2, TimeUnit.MILLISECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (ExecutionException | TimeoutException e) {
            // closing anyway
        }
        loop.stop();
    }

    // --- sending ------------------------------------------------------------------------------------------

    /**
     * Send a text message.
     *
     * @param conversationId the conversation (nonzero)
     * @param text the text
     * @return a future completed with the receipt once the server has made the message durable
     * @see #send(Outgoing)
     */
    public CompletableFuture<SendReceipt> send(long conversationId, String text) {
        return send(Outgoing.text(conversationId, text));
    }

    /**
     * Send a message; the future completes once the server has made it durable.
     *
     * <p>The message is retried transparently with the same client message id across reconnects, after RATE_LIMITED
     * (following a backoff) and after SHUTTING_DOWN (on the next connection); the server stores it once (a repeat
     * returns the original receipt, {@code duplicate()} true). The future fails with {@link SendRefusedException}
     * (with the server's code) when the server refuses it, {@link SendTimeoutException} after the timeout,
     * {@link ClientClosedException} or {@link ConnectionLostException} when the client ends first. When the window
     * of messages not yet acknowledged is full (10,000 messages or 64 MiB) this call blocks until there is room, at
     * most for the timeout.
     *
     * @param message the message
     * @return a future of the receipt
     * @throws IllegalArgumentException when the message is invalid (checked locally)
     */
    public CompletableFuture<SendReceipt> send(Outgoing message) {
        Frame.Send frame = sendFrame(message);
        Duration timeout = message.timeout() != null ? message.timeout() : options.sendTimeout;
        KefuException refused = openError();
        if (refused != null) {
            return CompletableFuture.failedFuture(refused);
        }
        long waitNanos = timeout == null ? -1 : loop.inLoop() ? 0 : timeout.toNanos();
        SendWindow.PendingSend entry;
        try {
            entry = sends.submit(frame, waitNanos);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            entry = null;
        }
        if (entry == null) {
            return CompletableFuture.failedFuture(new SendTimeoutException(frame.clientMsgId()));
        }
        GuardedSendWindow.Caller caller = GuardedSendWindow.caller(entry);
        if (entry.frame() == frame) { // a new entry, not a repeat of a pending client message id
            SendWindow.PendingSend submitted = entry;
            loop.execute(() -> submitted(submitted, timeout));
        }
        return caller.future.copy();
    }

    /** The SEND frame of one send() call (request id 0: each attempt gets its own), checked locally. */
    private static Frame.Send sendFrame(Outgoing m) {
        if (m.conversationId() == 0) {
            throw new IllegalArgumentException("conversation id must be nonzero");
        }
        List<MetaEntry> meta = new ArrayList<>(m.metadata().size() + 1);
        long size = m.body().length + SEND_OVERHEAD;
        for (Map.Entry<String, byte[]> e : m.metadata().entrySet()) {
            meta.add(new MetaEntry(e.getKey(), e.getValue()));
            size += e.getKey().getBytes(StandardCharsets.UTF_8).length + e.getValue().length + 3;
        }
        if (!m.to().isEmpty()) {
            byte[] members = String.join(",", m.to()).getBytes(StandardCharsets.UTF_8);
            meta.add(new MetaEntry(MEMBERS_KEY, members));
            size += MEMBERS_KEY.length() + members.length + 3;
        }
        if (size > MAX_BODY) {
            throw new IllegalArgumentException("message of " + size + " bytes exceeds the frame limit of " + MAX_BODY);
        }
        byte[] cmid = m.clientMsgId();
        if (cmid == null) {
            cmid = SendWindow.newClientMsgId(RANDOM);
        }
        return new Frame.Send(cmid.clone(), m.conversationId(), m.contentType(), m.body(), List.copyOf(meta));
    }

    /** A new pending SEND, on the I/O thread: arm its timeout and put it on the wire. */
    private void submitted(SendWindow.PendingSend entry, Duration timeout) {
        GuardedSendWindow.Caller caller = GuardedSendWindow.caller(entry);
        KefuException refused = openError();
        if (refused != null) {
            if (sends.remove(entry)) {
                caller.future.completeExceptionally(refused);
            }
            return;
        }
        if (timeout != null && !caller.future.isDone()) {
            caller.deadline = loop.schedule(timeout.toNanos() / 1e9, () -> {
                caller.deadline = null;
                if (sends.remove(entry)) { // abandoned: stop retrying
                    caller.future.completeExceptionally(new SendTimeoutException(entry.clientMsgId()));
                }
            });
        }
        kick();
    }

    // --- receiving ----------------------------------------------------------------------------------------

    /**
     * The next message, waiting at most {@code timeout}; acknowledges the previous one (implicit acknowledgement).
     *
     * @param timeout how long to wait, or null for ever
     * @return the message, or null after the timeout or once the client is closed
     * @throws ConnectionLostException when the client can no longer reconnect (after the queued messages)
     * @throws InterruptedException when the calling thread is interrupted
     */
    public Message receive(Duration timeout) throws InterruptedException {
        releaseInHand();
        if (closed) {
            return null;
        }
        Message message = inbox.take(timeout == null ? -1 : timeout.toNanos());
        if (message != null && !options.explicitAck) {
            inHand.set(message);
        }
        return message;
    }

    /**
     * The incoming messages as a blocking iterator, in order per conversation, each once: {@code hasNext()} waits
     * for the next message and returns false once the client is closed. Asking for the next message acknowledges
     * the previous one (implicit acknowledgement). One consumer at a time.
     *
     * @return an iterable whose iterator blocks
     */
    public Iterable<Message> deliveries() {
        return () -> new Iterator<>() {
            private Message next;

            @Override
            public boolean hasNext() {
                if (next == null) {
                    try {
                        next = receive(null);
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        return false;
                    }
                }
                return next != null;
            }

            @Override
            public Message next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                Message m = next;
                next = null;
                return m;
            }
        };
    }

    /**
     * Call {@code listener} with every incoming message, in order, on one thread of the client's own
     * ("kefu-listener-APP"), until the client is closed. A call that returns normally acknowledges its message
     * (implicit acknowledgement); one that throws leaves it unacknowledged and passes the exception to the error
     * callback. Call once; do not also use {@link #receive} or {@link #deliveries()}.
     *
     * @param listener what to call
     * @return the listener's thread (a daemon; it ends once the client is closed or has failed)
     */
    public Thread startListener(MessageListener listener) {
        Thread thread = new Thread(() -> {
            try {
                Message message;
                while ((message = receive(null)) != null) {
                    try {
                        listener.onMessage(message);
                    } catch (RuntimeException e) {
                        inHand.compareAndSet(message, null); // not handled: delivered again later
                        reportError(e);
                    }
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (KefuException e) {
                reportError(e);
            }
        }, "kefu-listener-" + options.appId);
        thread.setDaemon(true);
        thread.start();
        return thread;
    }

    /**
     * Fetch history: the messages {@code afterSeq < seq <= untilSeq} (at most {@code limit}, fewer if the server
     * caps it), in order. They are not acknowledged and do not pass through the deliveries. To read on, call again
     * with {@code afterSeq} = the last seq returned.
     *
     * @param conversationId the conversation
     * @param afterSeq exclusive lower bound
     * @param untilSeq inclusive upper bound, above {@code afterSeq}
     * @param limit at most this many, 1 to {@link #MAX_FETCH_MESSAGES}
     * @return a future of the messages
     */
    public CompletableFuture<List<Message>> history(long conversationId, long afterSeq, long untilSeq, int limit) {
        if (limit <= 0 || limit > MAX_FETCH_MESSAGES) {
            throw new IllegalArgumentException("limit must be within 1.." + MAX_FETCH_MESSAGES);
        }
        if (untilSeq <= afterSeq) {
            throw new IllegalArgumentException("untilSeq must be above afterSeq");
        }
        KefuException refused = openError();
        if (refused != null) {
            return CompletableFuture.failedFuture(refused);
        }
        Fetch fetch = new Fetch(conversationId, afterSeq, untilSeq, limit);
        loop.execute(() -> {
            KefuException now = openError();
            if (now != null) {
                fetch.future.completeExceptionally(now);
                return;
            }
            fetches.add(fetch);
            fetch.future.whenComplete((r, e) -> fetches.remove(fetch));
            if (link != null && link.usable()) {
                issueFetch(link, fetch);
            }
        });
        return fetch.future.copy();
    }

    // --- acknowledgement ----------------------------------------------------------------------------------

    private void releaseInHand() {
        Message held = inHand.getAndSet(null);
        if (held != null) {
            loop.execute(() -> markHandled(held));
        }
    }

    private void markHandled(Message message) {
        tracker.markHandled(message.conversationId(), message.seq());
        acksQueued();
    }

    /** Message.ack() of a live message, from any thread. */
    private void acknowledge(Message message) {
        if (closed) {
            return;
        }
        if (!options.explicitAck) {
            if (inHand.compareAndSet(message, null)) {
                loop.execute(() -> markHandled(message));
            }
            return;
        }
        loop.execute(() -> {
            if (tracker.acknowledge(message.conversationId(), message.seq()) != 0) {
                acksQueued();
            }
        });
    }

    /** The tracker may have queued DELIVER_ACK entries: have the next flush send them. */
    private void acksQueued() {
        if (link != null && link.ready && tracker.hasPendingAcks()) {
            link.scheduleFlush();
        }
    }

    private void resumeReading() {
        if (link != null && link.readPaused && !inbox.aboveHigh()) {
            link.resumeReading();
        }
    }

    // --- link events (I/O thread) -------------------------------------------------------------------------

    private final Link.Owner owner = new Link.Owner() {
        @Override
        public void linkEvent(Link l, Object event) {
            onEvent(l, event);
        }

        @Override
        public void linkFlushing(Link l) {
            onFlushing(l);
        }

        @Override
        public void linkLost(Link l) {
            onLost(l);
        }
    };

    private void onEvent(Link l, Object event) {
        if (event instanceof Frame.Deliver d) {
            if (l == link) {
                onDeliver(l, d);
            }
        } else if (event instanceof Frame.SendAck a) {
            onSendAck(l, a);
        } else if (event instanceof Frame.SyncDone s) {
            Object found = l.requests.remove(s.requestId());
            if (found instanceof Fetch f) {
                f.future.complete(List.copyOf(f.messages));
            }
        } else if (event instanceof Events.HandshakeComplete hc) {
            onReady(l, hc);
        } else if (event instanceof Events.TicketReceived t) {
            ticket = t.ticket();
        } else if (event instanceof Frame.Goaway g) {
            onGoaway(l, g);
        } else if (event instanceof Frame.Error e) {
            onRequestError(l, e);
        } else if (event instanceof Frame frame) {
            service.onFrame(l, frame);
        }
        if (l == link && !connected && l.usable()) {
            connected = true; // the server accepted the handshake (its first frame after it arrived)
        }
    }

    private void onFlushing(Link l) {
        if (l != link) {
            return;
        }
        for (Optional<Frame.DeliverAck> acks = tracker.takeAcks(); acks.isPresent(); acks = tracker.takeAcks()) {
            l.core.send(acks.get());
        }
        if (l.draining || l.writePaused()) {
            return;
        }
        for (SendWindow.PendingSend entry : sends.takeSendable(Clock.now())) {
            long requestId = l.nextRequestId();
            l.requests.put(requestId, entry);
            l.core.send(entry.frame(requestId));
        }
        if (sends.hasSendable()) {
            l.scheduleFlush();
        }
    }

    private void onReady(Link l, Events.HandshakeComplete hc) {
        if (closed) {
            l.close(ErrorCode.OK, "");
            return;
        }
        link = l;
        suite = hc.suite();
        resumed = hc.resumed();
        if (options.explicitAck) { // what the app was given and did not ack comes again
            tracker.rewind();
            inbox.discard();
        }
        for (DeliveryTracker.Position point : tracker.resumePoints()) {
            requestResume(l, point.conversationId(), point.seq());
        }
        requestResume(l, 0, 0);
        for (Fetch fetch : fetches) {
            issueFetch(l, fetch);
        }
        sends.requeueAll();
        if (inbox.aboveHigh()) {
            l.pauseReading();
        }
        l.scheduleFlush();
    }

    private void onDeliver(Link l, Frame.Deliver frame) {
        if (frame.requestId() != 0) {
            Object found = l.requests.get(frame.requestId());
            if (found instanceof Fetch fetch) {
                fetch.add(frame);
                return;
            }
        }
        switch (tracker.admit(frame)) {
            case NEW -> {
                boolean seen = options.explicitAck && tracker.wasHandedOut(frame.conversationId(), frame.seq());
                if (options.explicitAck) {
                    tracker.handOut(frame.conversationId(), frame.seq());
                }
                if (inbox.put(toMessage(frame, this::acknowledge, seen))) {
                    l.pauseReading();
                }
            }
            case HANDLED -> l.scheduleFlush(); // the tracker queued the acknowledgement again
            case QUEUED -> {
                // already queued or in the application's hands: its acknowledgement comes when it is done
            }
        }
    }

    static Message toMessage(Frame.Deliver f, Message.Acknowledger acknowledger, boolean seen) {
        Map<String, byte[]> meta = new LinkedHashMap<>();
        for (MetaEntry e : f.metadata()) {
            meta.put(e.key(), e.value());
        }
        return new Message(f.conversationId(), f.seq(), f.sender(), f.body(), f.contentType(), f.clientMsgId(),
                f.serverMsgId(), f.timestampMs(), meta, seen || (f.flags() & 1) != 0, acknowledger);
    }

    private void onSendAck(Link l, Frame.SendAck ack) {
        l.requests.remove(ack.requestId());
        double now = Clock.now();
        SendWindow.Outcome outcome = sends.onSendAck(ack, now);
        if (outcome.kind() == SendWindow.Outcome.Kind.ACCEPTED) {
            GuardedSendWindow.Caller caller = GuardedSendWindow.caller(outcome.entry());
            caller.cancelDeadline();
            caller.future.complete(new SendReceipt(ack.clientMsgId(), ack.conversationId(), ack.seq(),
                    ack.serverMsgId(), ack.timestampMs(), (ack.flags() & 1) != 0));
        } else {
            settled(outcome, "", now);
        }
    }

    /**
     * What a refusal did to a pending SEND: a final one fails its future, RATE_LIMITED puts it back on the wire
     * after its backoff, SHUTTING_DOWN on the next connection (nothing to do here); an unknown one was settled
     * already (an answer to an earlier attempt) or abandoned.
     */
    private void settled(SendWindow.Outcome outcome, String reason, double now) {
        switch (outcome.kind()) {
            case REFUSED -> {
                GuardedSendWindow.Caller caller = GuardedSendWindow.caller(outcome.entry());
                caller.cancelDeadline();
                caller.future.completeExceptionally(new SendRefusedException(outcome.status(), reason));
            }
            case RETRY_LATER -> loop.schedule(Math.max(0, outcome.retryAt() - now), this::kick);
            case ACCEPTED, RETRY_ON_RECONNECT, UNKNOWN -> { }
        }
    }

    private void onRequestError(Link l, Frame.Error error) {
        Object found = error.requestId() != 0 ? l.requests.remove(error.requestId()) : null;
        if (service.onError(found, error.code(), error.reason())) {
            return;
        }
        boolean rateLimited = error.code() == Codes.RATE_LIMITED;
        if (found instanceof SendWindow.PendingSend entry) {
            double now = Clock.now();
            settled(sends.onRefused(entry, error.code(), now), error.reason(), now);
        } else if (found instanceof Fetch fetch) {
            if (rateLimited) {
                loop.schedule(policy.initialSeconds(), () -> {
                    if (l == link && l.usable() && fetches.contains(fetch)) {
                        issueFetch(l, fetch);
                    }
                });
            } else {
                fetch.future.completeExceptionally(new RequestRefusedException(error.code(), error.reason()));
            }
        } else if (found instanceof Resume resume) {
            if (rateLimited) {
                loop.schedule(policy.initialSeconds(), () -> {
                    if (l == link && l.usable()) {
                        requestResume(l, resume.conversationId(), tracker.handled(resume.conversationId()));
                    }
                });
            } else if (error.code() == Codes.FORBIDDEN || error.code() == Codes.NOT_FOUND) {
                tracker.forget(resume.conversationId());
            }
        }
    }

    private void onGoaway(Link l, Frame.Goaway g) {
        Backoff asked = Backoff.fromGoaway(g.reconnectDelayMs(), g.backoffInitialMs(), g.backoffMaxMs(),
                g.jitterPermille());
        policy = asked.withoutFirst();
        goawayDelay = asked.firstSeconds();
        if (!l.ready) {
            return; // a handshake refused for load: the ConnectionClosed that follows fails it as ServerBusyException
        }
        l.flush(); // acknowledgements still go out on this connection
        l.draining = true;
        l.close(ErrorCode.OK, "goaway");
    }

    /** A SYNC that resumes the live stream of one conversation (0: every conversation behind). */
    record Resume(long conversationId) {}

    private void requestResume(Link l, long conversationId, long afterSeq) {
        long requestId = l.nextRequestId();
        l.requests.put(requestId, new Resume(conversationId));
        l.send(new Frame.Sync(requestId, 0, conversationId, afterSeq, 0, 0));
    }

    private void issueFetch(Link l, Fetch fetch) {
        long requestId = l.nextRequestId();
        l.requests.put(requestId, fetch);
        fetch.messages.clear();
        l.send(new Frame.Sync(requestId, 0, fetch.conversationId, fetch.after, fetch.until, fetch.limit));
    }

    private void kick() {
        if (link != null && link.usable()) {
            link.scheduleFlush();
        }
    }

    /** Drop the current connection without CLOSE, as a network failure would (tests, benchmarks). */
    void abortConnection() {
        loop.execute(() -> {
            if (link != null) {
                link.abort();
            }
        });
    }

    /** Take the resumption ticket held for the next connection, or null (tests, benchmarks). */
    SessionTicket takeTicket() {
        CompletableFuture<SessionTicket> held = new CompletableFuture<>();
        loop.execute(() -> {
            held.complete(ticket);
            ticket = null;
        });
        return held.join();
    }

    /** Resume the first connection with this ticket (tests, benchmarks); call before connect(). */
    void offerTicket(SessionTicket value) {
        loop.execute(() -> ticket = value);
    }

    /** Whether a resumption ticket is held for the next connection (tests). */
    boolean hasTicket() {
        CompletableFuture<Boolean> held = new CompletableFuture<>();
        loop.execute(() -> held.complete(ticket != null));
        return held.join();
    }

    Link currentLink() {
        return link;
    }

    IoLoop loop() {
        return loop;
    }

    // --- connecting (I/O thread) --------------------------------------------------------------------------

    private void dial(CompletableFuture<Link> result) {
        SessionTicket offered = ticket;
        ticket = null; // single use
        if (offered != null && offered.expired(Clock.now())) {
            offered = null;
        }
        ClientConfig withTicket = config.toBuilder().ticket(offered).build();
        Link l = new Link(owner, loop, withTicket);
        IoLoop.Timer deadline = loop.schedule(options.connectTimeout.toNanos() / 1e9, () -> {
            if (!l.handshake.isDone()) {
                l.handshake.completeExceptionally(new ConnectTimeoutException(options.host + ":" + options.port
                        + ": no handshake within " + options.connectTimeout.toMillis() + " ms"));
                l.abort();
            }
        });
        l.handshake.whenComplete((hc, error) -> {
            deadline.cancel();
            if (error == null && !l.isLost()) {
                established = true;
                connected = link == l;
                result.complete(l);
            } else {
                l.abort();
                result.completeExceptionally(error != null ? error
                        : Codes.connectError(KefuException.NO_CODE, "connection lost"));
            }
        });
        InetSocketAddress local = options.localAddress == null ? null
                : new InetSocketAddress(options.localAddress, 0);
        l.open(new InetSocketAddress(options.host, options.port), local);
    }

    private double refusalDelay() {
        if (goawayDelay < 0) {
            return -1;
        }
        return nextDelay();
    }

    private double nextDelay() {
        if (schedule == null) {
            schedule = policy.withFirst(goawayDelay).delays(RANDOM::nextDouble);
            goawayDelay = -1;
        }
        return schedule.nextDouble();
    }

    private void onLost(Link l) {
        service.onLinkLost(l);
        if (l != link) {
            return;
        }
        link = null;
        connected = false;
        resumed = false;
        if (announced == l) {
            announced = null;
            callback(options.onDisconnected);
        }
        if (closed) {
            Runnable then = onClosed;
            onClosed = null;
            if (then != null) {
                then.run();
            }
            return;
        }
        if (failure != null || !established) {
            return; // (not established: the first connect() failed after the handshake; it throws, no retry)
        }
        Events.ConnectionClosed end = l.end;
        if (end != null && end.byPeer() && end.code() == ErrorCode.AUTH_FAILED) {
            endedByServer = end;
            ticket = null; // a ticket would resume the very credentials the server just refused
        }
        if (!options.reconnect) {
            int code = end != null ? end.code().code() : KefuException.NO_CODE;
            fail(new ConnectionLostException(code, "connection lost ("
                    + (end != null ? end.code().name() : "transport closed") + ")"));
            return;
        }
        if (!reconnecting) {
            reconnecting = true;
            schedule = null;
            attemptReconnect(endedByServer != null ? 0 : nextDelay());
        }
    }

    private void attemptReconnect(double delay) {
        reconnectTimer = loop.schedule(delay, () -> {
            reconnectTimer = null;
            if (closed || failure != null) {
                reconnecting = false;
                return;
            }
            CompletableFuture<Link> attempt = new CompletableFuture<>();
            attempt.whenComplete((l, error) -> {
                if (closed) {
                    reconnecting = false;
                    if (l != null) {
                        l.close(ErrorCode.OK, "");
                    }
                    return;
                }
                if (error == null) {
                    reconnecting = false;
                    reconnects++;
                    endedByServer = null;
                    schedule = null;
                    announced = l;
                    callback(options.onReconnected);
                    return;
                }
                KefuException ke = error instanceof KefuException k ? k
                        : new ConnectException(KefuException.NO_CODE, error.toString());
                if (ke.code() != KefuException.NO_CODE && Codes.notRetried(ke.code())) {
                    reconnecting = false;
                    fail(refusal(ke));
                    return;
                }
                reportError(ke);
                if (ke instanceof ServerBusyException) {
                    schedule = null; // the refusal's GOAWAY: its delay, then its backoff
                }
                attemptReconnect(nextDelay());
            });
            dial(attempt);
        });
    }

    private ConnectionLostException refusal(KefuException e) {
        Events.ConnectionClosed ended = endedByServer;
        if (ended != null && e.code() == ended.code().code()) {
            return new CredentialsRefusedException(e.code(), "the server ended the session (" + ended.code().name()
                    + ": " + ended.reason() + ") and refused the app again: " + e.getMessage());
        }
        return new ConnectionLostException(e.code(), "reconnecting failed for good: " + e.getMessage());
    }

    private void fail(KefuException error) {
        failure = error;
        failPending(error);
        service.fail(error);
        inbox.fail(error);
        reportError(error);
    }

    private void failPending(KefuException error) {
        for (SendWindow.PendingSend entry : sends.drain()) {
            GuardedSendWindow.Caller caller = GuardedSendWindow.caller(entry);
            caller.cancelDeadline();
            caller.future.completeExceptionally(error);
        }
        for (Fetch fetch : new ArrayList<>(fetches)) {
            fetch.future.completeExceptionally(error);
        }
    }

    private void shutdown(CompletableFuture<Void> done) {
        if (reconnectTimer != null) {
            reconnectTimer.cancel();
        }
        ClientClosedException error = new ClientClosedException("the client was closed");
        Link l = link;
        Runnable finish = () -> {
            if (done.isDone()) {
                return;
            }
            link = null;
            connected = false;
            failPending(error);
            service.fail(error);
            inbox.close();
            done.complete(null);
        };
        if (l == null || l.isLost()) {
            finish.run();
            return;
        }
        IoLoop.Timer timeout = loop.schedule(CLOSE_TIMEOUT.toNanos() / 1e9, () -> {
            l.abort();
            finish.run();
        });
        onClosed = () -> {
            timeout.cancel();
            finish.run();
        };
        l.close(ErrorCode.OK, "");
    }

    private void shutdownAfterFailedConnect() {
        closed = true;
        CompletableFuture<Void> done = new CompletableFuture<>();
        loop.execute(() -> shutdown(done));
        done.completeOnTimeout(null, CLOSE_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS).join();
        loop.stop();
    }

    private void crashed(Throwable t) {
        KefuException error = new ConnectionLostException(KefuException.NO_CODE, "the client's I/O thread failed: "
                + t);
        failure = error;
        connected = false;
        inbox.fail(error);
        reportError(t);
    }

    // --- callbacks ----------------------------------------------------------------------------------------

    private void callback(Runnable callback) {
        if (callback == null) {
            return;
        }
        try {
            callback.run();
        } catch (RuntimeException e) {
            reportError(e);
        }
    }

    private void reportError(Throwable error) {
        if (options.onError == null) {
            return;
        }
        try {
            options.onError.accept(error);
        } catch (RuntimeException ignored) {
            // an error callback that fails has nobody left to tell
        }
    }

    // --- helpers ------------------------------------------------------------------------------------------

    /** The error an operation must end with now, or null when the client is open. */
    KefuException openError() {
        if (closed) {
            return new ClientClosedException("the client is closed");
        }
        KefuException f = failure;
        if (f instanceof CredentialsRefusedException) {
            return new CredentialsRefusedException(f.code(), f.getMessage());
        }
        if (f != null) {
            return new ConnectionLostException(f.code(), f.getMessage());
        }
        if (!started) {
            return new ClientClosedException("call connect() first");
        }
        return null;
    }

    private static <T> T await(CompletableFuture<T> future, long nanos) {
        try {
            return future.get(nanos, TimeUnit.NANOSECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new ConnectException(KefuException.NO_CODE, "interrupted");
        } catch (TimeoutException e) {
            throw new ConnectTimeoutException("no handshake in time");
        } catch (ExecutionException e) {
            if (e.getCause() instanceof KefuException k) {
                throw k;
            }
            throw new ConnectException(KefuException.NO_CODE, String.valueOf(e.getCause()));
        }
    }

    private static void sleep(double seconds) {
        try {
            Thread.sleep((long) (seconds * 1000));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // --- the builder --------------------------------------------------------------------------------------

    /**
     * The configuration of a client: {@code KefuClient.builder().host(..).port(..).appId(..).appSecret(..).pin(..)}
     * or {@code KefuClient.builder().url("kefu://app:secret@host:port?pin=...")}, then {@link #build()}. Values are
     * checked by {@link #build()} (IllegalArgumentException); the secret is never shown in a message or toString.
     * Not thread-safe (configure on one thread); the client it builds is.
     */
    public static final class Builder {
        private String host;
        private int port = KefuUrl.DEFAULT_PORT;
        private String appId;
        private byte[] appSecret;
        private io.kefu.protocol.SigningKey clientKey;
        private final List<String> pins = new ArrayList<>();
        private List<Suite> suites = List.of(Suite.NATIONAL);
        private Duration keepalive = Duration.ofSeconds(30);
        private Duration connectTimeout = Duration.ofSeconds(10);
        private Duration sendTimeout = Duration.ofSeconds(30);
        private boolean reconnect = true;
        private Backoff backoff = Backoff.DEFAULT;
        private boolean pskWithEcdhe;
        private boolean explicitAck;
        private String localAddress;
        private Runnable onConnected;
        private Runnable onDisconnected;
        private Runnable onReconnected;
        private java.util.function.Consumer<Throwable> onError;

        Builder() {}

        Builder copy() {
            Builder b = new Builder();
            b.host = host;
            b.port = port;
            b.appId = appId;
            b.appSecret = appSecret == null ? null : appSecret.clone();
            b.clientKey = clientKey;
            b.pins.addAll(pins);
            b.suites = suites;
            b.keepalive = keepalive;
            b.connectTimeout = connectTimeout;
            b.sendTimeout = sendTimeout;
            b.reconnect = reconnect;
            b.backoff = backoff;
            b.pskWithEcdhe = pskWithEcdhe;
            b.explicitAck = explicitAck;
            b.localAddress = localAddress;
            b.onConnected = onConnected;
            b.onDisconnected = onDisconnected;
            b.onReconnected = onReconnected;
            b.onError = onError;
            return b;
        }

        /**
         * Everything a {@code kefu://APP_ID[:SECRET]@HOST[:PORT]?pin=PIN[&pin=...][&suite=SUITE...]} URL states
         * (the form {@code kefu app add} and the Python client use); later calls add to it or replace its values.
         *
         * @param url the URL
         * @return this builder
         * @throws IllegalArgumentException for a malformed URL (the message never contains the URL)
         */
        public Builder url(String url) {
            KefuUrl u = KefuUrl.parse(url);
            host = u.host();
            port = u.port();
            appId = u.appId();
            if (u.secret() != null) {
                appSecret(u.secret());
            }
            pins.addAll(u.pins());
            if (!u.suites().isEmpty()) {
                suites = u.suites();
            }
            return this;
        }

        /**
         * The server's host name or address.
         *
         * @param value the host
         * @return this builder
         */
        public Builder host(String value) {
            host = value;
            return this;
        }

        /**
         * The server's port (default 7420).
         *
         * @param value the port
         * @return this builder
         */
        public Builder port(int value) {
            port = value;
            return this;
        }

        /**
         * This client's user: the app id it was registered with.
         *
         * @param value the app id
         * @return this builder
         */
        public Builder appId(String value) {
            appId = value;
            return this;
        }

        /**
         * The app's secret as {@code kefu app add} prints it (base64url, padding optional).
         *
         * @param text the printed secret
         * @return this builder
         * @throws IllegalArgumentException when the text is not base64url (the message does not contain it)
         */
        public Builder appSecret(String text) {
            appSecret = ClientConfig.decodeAppSecret(text);
            return this;
        }

        /**
         * The app's secret as bytes.
         *
         * @param secret the secret
         * @return this builder
         */
        public Builder appSecret(byte[] secret) {
            appSecret = secret.clone();
            return this;
        }

        /**
         * A client signing key registered for the app, instead of the secret.
         *
         * @param key the key
         * @return this builder
         */
        public Builder clientKey(io.kefu.protocol.SigningKey key) {
            clientKey = key;
            return this;
        }

        /**
         * Trust a server key: {@code sm2:<64 hex>} or {@code ed25519:<64 hex>} as the server prints it and writes
         * it to keys/pins.txt. Repeatable; at least one is needed.
         *
         * @param value the pin
         * @return this builder
         */
        public Builder pin(String value) {
            pins.add(KefuUrl.checkPin(value.strip()));
            return this;
        }

        /**
         * Trust several server keys.
         *
         * @param values the pins
         * @return this builder
         */
        public Builder pins(java.util.Collection<String> values) {
            values.forEach(this::pin);
            return this;
        }

        /**
         * The suites offered on every connection, exactly as given, in order of preference (default NATIONAL).
         *
         * @param values the suites
         * @return this builder
         */
        public Builder suites(Suite... values) {
            suites = List.of(values);
            return this;
        }

        /**
         * Idle time after which the client sends PING (5 to 300 s; default 30 s).
         *
         * @param value the interval
         * @return this builder
         */
        public Builder keepalive(Duration value) {
            keepalive = value;
            return this;
        }

        /**
         * Time for the TCP connect plus the handshake of one attempt (default 10 s).
         *
         * @param value the timeout
         * @return this builder
         */
        public Builder connectTimeout(Duration value) {
            connectTimeout = value;
            return this;
        }

        /**
         * How long a send waits for its receipt unless the message says otherwise (default 30 s: long enough to
         * ride out a reconnect and a server restart); null waits for ever.
         *
         * @param value the timeout, or null
         * @return this builder
         */
        public Builder sendTimeout(Duration value) {
            sendTimeout = value;
            return this;
        }

        /**
         * Reconnect after a connection is lost (default true), with backoff, resuming the session.
         *
         * @param value whether to reconnect
         * @return this builder
         */
        public Builder reconnect(boolean value) {
            reconnect = value;
            return this;
        }

        /**
         * The reconnect backoff until a GOAWAY says otherwise (default 0.5 s doubling to 30 s, &plusmn;20 %).
         *
         * @param value the policy
         * @return this builder
         */
        public Builder backoff(Backoff value) {
            backoff = value;
            return this;
        }

        /**
         * Add a fresh key exchange to resumed handshakes (forward secrecy per connection; default false).
         *
         * @param value whether to
         * @return this builder
         */
        public Builder pskWithEcdhe(boolean value) {
            pskWithEcdhe = value;
            return this;
        }

        /**
         * Explicit acknowledgement: a message is acknowledged only when {@link Message#ack()} is called (default
         * false: when the application asks for the next one).
         *
         * @param value whether acknowledgement is explicit
         * @return this builder
         */
        public Builder explicitAck(boolean value) {
            explicitAck = value;
            return this;
        }

        /**
         * Bind this source address (e.g. 127.0.0.x for load tests).
         *
         * @param value the address
         * @return this builder
         */
        public Builder localAddress(String value) {
            localAddress = value;
            return this;
        }

        /**
         * Called (on the I/O thread) once the first connection is up.
         *
         * @param callback what to run
         * @return this builder
         */
        public Builder onConnected(Runnable callback) {
            onConnected = callback;
            return this;
        }

        /**
         * Called (on the I/O thread) whenever a usable connection is lost or closed.
         *
         * @param callback what to run
         * @return this builder
         */
        public Builder onDisconnected(Runnable callback) {
            onDisconnected = callback;
            return this;
        }

        /**
         * Called (on the I/O thread) after each successful reconnection.
         *
         * @param callback what to run
         * @return this builder
         */
        public Builder onReconnected(Runnable callback) {
            onReconnected = callback;
            return this;
        }

        /**
         * Called with errors the application would not otherwise see: a failed reconnection attempt, the error that
         * ends the client, an exception a callback or the listener threw.
         *
         * @param callback what to call
         * @return this builder
         */
        public Builder onError(java.util.function.Consumer<Throwable> callback) {
            onError = callback;
            return this;
        }

        /**
         * The client (not connected yet: call {@link KefuClient#connect()}).
         *
         * @return the client
         * @throws IllegalArgumentException when the configuration is incomplete or invalid
         */
        public KefuClient build() {
            if (host == null || host.isEmpty()) {
                throw new IllegalArgumentException("host is empty");
            }
            if (port <= 0 || port >= 1 << 16) {
                throw new IllegalArgumentException("port must be 1..65535, got " + port);
            }
            if (appId == null || appId.isEmpty()) {
                throw new IllegalArgumentException("appId is empty");
            }
            if (suites.isEmpty()) {
                throw new IllegalArgumentException("offer at least one suite");
            }
            if (pins.isEmpty()) {
                throw new IllegalArgumentException("need at least one server pin (pin(), or pin= in a URL)");
            }
            if (appSecret == null && clientKey == null) {
                throw new IllegalArgumentException("need appSecret or clientKey");
            }
            long ms = keepalive.toMillis();
            if (ms < ClientConfig.MIN_KEEPALIVE_MS || ms > ClientConfig.MAX_KEEPALIVE_MS) {
                throw new IllegalArgumentException("keepalive must be within 5..300 s");
            }
            if (connectTimeout.isNegative() || connectTimeout.isZero()
                    || (sendTimeout != null && (sendTimeout.isNegative() || sendTimeout.isZero()))) {
                throw new IllegalArgumentException("timeouts must be positive");
            }
            return new KefuClient(this);
        }

        @Override
        public String toString() {
            return "KefuClient.Builder[" + appId + " at " + host + ":" + port + ", suites=" + suites + ", pins="
                    + pins + "]";
        }
    }
}
