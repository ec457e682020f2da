package io.kefu.client;

import io.kefu.protocol.Frame;
import io.kefu.protocol.SendWindow;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * The client's pending sends: the sans-IO {@link SendWindow} behind one lock, so that {@code send()} can submit
 * from any thread and wait for room, while the I/O thread takes what goes on the wire and settles what the server
 * answered. This class adds only the lock, on which callers wait for room, and the policy the client gives the
 * window; the bookkeeping is the window's.
 *
 * <p>Policy, as clients/python/outbox.py: at most {@link #MAX_PENDING_SENDS} messages or {@link #MAX_PENDING_BYTES}
 * submitted and not settled (past that {@code send()} waits); no separate window for what is on the wire (the
 * bound on pending sends is the only one); no retransmission on the same connection (the keepalive detects a dead
 * one, and a reconnect sends everything unsettled again); RATE_LIMITED waits out a jittered backoff; SHUTTING_DOWN
 * waits for the next connection (spec section 4.10 item 10).
 *
 * <p>Futures are never completed while the lock is held: the callers do that with what these methods return.
 * Thread-safe.
 */
final class GuardedSendWindow {
    /**
     * Messages submitted and not yet settled: a few seconds of a busy agent desk at worst; past it send() waits, so
     * a producer cannot outrun a slow or unreachable server without bound.
     */
    static final int MAX_PENDING_SENDS = SendWindow.DEFAULT_MAX_PENDING;
    /** Body and metadata value bytes submitted and not yet settled (64 MiB). */
    static final long MAX_PENDING_BYTES = SendWindow.DEFAULT_MAX_PENDING_BYTES;
    /** Bytes of SENDs put on the wire per flush: one flush never builds an unbounded batch. */
    static final long MAX_FLUSH_BYTES = 1 << 20;

    /**
     * What the client attaches to each pending SEND: the callers' future and the send timeout's timer. Not
     * thread-safe: the timer is the I/O thread's.
     */
    static final class Caller {
        final CompletableFuture<SendReceipt> future = new CompletableFuture<>();
        IoLoop.Timer deadline;

        void cancelDeadline() {
            if (deadline != null) {
                deadline.cancel();
                deadline = null;
            }
        }
    }

    /**
     * Guards {@link #window}; its waiters are the callers waiting for room. The I/O thread and a producer each hold
     * it for a moment once per message (a plain monitor, on which the JVM spins briefly before parking).
     */
    private final Object lock = new Object();
    private final SendWindow window;

    GuardedSendWindow() {
        this(MAX_PENDING_SENDS, MAX_PENDING_BYTES);
    }

    GuardedSendWindow(int maxCount, long maxBytes) {
        this.window = new SendWindow(maxCount, maxBytes, maxCount, Double.POSITIVE_INFINITY,
                Double.POSITIVE_INFINITY, new SplittableRandom());
    }

    /** The state the client attached to a pending SEND. */
    static Caller caller(SendWindow.PendingSend entry) {
        return (Caller) entry.attachment();
    }

    /**
     * Adds a SEND, waiting up to {@code timeoutNanos} for room (negative: for ever, 0: not at all). A SEND whose
     * client message id is pending already needs no room: the pending entry is returned.
     *
     * @return the entry (with its {@link Caller}), or null if there was no room in time
     */
    SendWindow.PendingSend submit(Frame.Send frame, long timeoutNanos) throws InterruptedException {
        long size = SendWindow.sizeOf(frame);
        Caller caller = new Caller(); // allocated before taking the lock, which the I/O thread wants too
        long deadline = System.nanoTime() + timeoutNanos;
        synchronized (lock) {
            while (window.get(frame.clientMsgId()) == null && !window.hasRoom(size)) {
                if (timeoutNanos < 0) {
                    lock.wait();
                } else {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        return null;
                    }
                    TimeUnit.NANOSECONDS.timedWait(lock, left);
                }
            }
            SendWindow.PendingSend entry = window.submit(frame);
            if (entry.attachment() == null) {
                entry.attach(caller);
            }
            return entry;
        }
    }

    /** The SENDs for the wire now, at most {@link #MAX_FLUSH_BYTES} of them (at least one). */
    List<SendWindow.PendingSend> takeSendable(double now) {
        synchronized (lock) { // not locked(): no lambda on the paths taken once per message or per flush
            return window.takeSendable(now, MAX_FLUSH_BYTES);
        }
    }

    /** Whether SENDs wait for the wire. */
    boolean hasSendable() {
        return locked(window::hasSendable);
    }

    /** Settles a SEND by its SEND_ACK; an ACCEPTED or REFUSED one makes room. */
    SendWindow.Outcome onSendAck(Frame.SendAck ack, double now) {
        synchronized (lock) {
            return madeRoom(window.onSendAck(ack, now));
        }
    }

    /** Settles a SEND refused by a non-fatal ERROR; {@link SendWindow.Outcome.Kind#UNKNOWN} if no longer pending. */
    SendWindow.Outcome onRefused(SendWindow.PendingSend entry, int code, double now) {
        return locked(() -> window.get(entry.clientMsgId()) != entry
                ? new SendWindow.Outcome(SendWindow.Outcome.Kind.UNKNOWN, null, code, Double.NaN)
                : madeRoom(window.onRefused(entry.clientMsgId(), code, now)));
    }

    private SendWindow.Outcome madeRoom(SendWindow.Outcome outcome) {
        if (outcome.kind() == SendWindow.Outcome.Kind.ACCEPTED || outcome.kind() == SendWindow.Outcome.Kind.REFUSED) {
            lock.notifyAll();
        }
        return outcome;
    }

    /** Stops tracking a SEND (abandoned by its caller); false if it was no longer pending. */
    boolean remove(SendWindow.PendingSend entry) {
        return locked(() -> {
            if (window.get(entry.clientMsgId()) != entry) {
                return false;
            }
            window.remove(entry.clientMsgId());
            lock.notifyAll();
            return true;
        });
    }

    /** A new connection: everything unsettled goes again, in submission order. */
    void requeueAll() {
        locked(() -> {
            window.requeueAll();
            return null;
        });
    }

    /** Removes and returns every pending SEND (the client is closing or has failed). */
    List<SendWindow.PendingSend> drain() {
        return locked(() -> {
            lock.notifyAll();
            return window.drain();
        });
    }

    /** The number of SENDs submitted and not settled. */
    int size() {
        return locked(window::size);
    }

    private <T> T locked(Supplier<T> action) {
        synchronized (lock) {
            return action.get();
        }
    }
}
