package io.kefu.client;

import java.util.ArrayDeque;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The bounded queue of messages between the client's I/O thread (the producer) and the application (consumers).
 *
 * <p>Bounded by high and low water marks on messages and bytes: above the high mark the I/O thread stops reading
 * from the socket (TCP pushes back on the server), and once a consumer takes the queue down to the low mark
 * {@code onLow} is run so that reading resumes. Thread-safe.
 */
final class Inbox {
    /** Messages queued for the app before the client stops reading from the socket. */
    static final int HIGH_MESSAGES = 1000;
    /** Messages queued at or below which reading resumes (hysteresis). */
    static final int LOW_MESSAGES = 500;
    /** Message bytes queued before the client stops reading: 16 MiB. */
    static final long HIGH_BYTES = 16L << 20;
    /** Message bytes queued at or below which reading resumes. */
    static final long LOW_BYTES = 8L << 20;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition notEmpty = lock.newCondition();
    private final ArrayDeque<Message> queue = new ArrayDeque<>();
    private final Runnable onLow;
    private long bytes;
    private boolean paused;
    private boolean closed;
    private RuntimeException error;

    /** @param onLow run (on the consumer's thread) when a paused producer may read again */
    Inbox(Runnable onLow) {
        this.onLow = onLow;
    }

    /** Queue a message; true when the producer must pause reading (it is then told by {@code onLow}). */
    boolean put(Message message) {
        lock.lock();
        try {
            if (closed) {
                return false;
            }
            queue.addLast(message);
            bytes += message.bodyLength();
            notEmpty.signal();
            paused = queue.size() >= HIGH_MESSAGES || bytes >= HIGH_BYTES;
            return paused;
        } finally {
            lock.unlock();
        }
    }

    /** Whether the producer should stay paused right now. */
    boolean aboveHigh() {
        lock.lock();
        try {
            return queue.size() >= HIGH_MESSAGES || bytes >= HIGH_BYTES;
        } finally {
            lock.unlock();
        }
    }

    /**
     * The next message, waiting up to {@code timeoutNanos} (negative: for ever); null on timeout or once closed.
     * Throws the failure set by {@link #fail} once the queue is empty.
     */
    Message take(long timeoutNanos) throws InterruptedException {
        boolean resume = false;
        Message message;
        lock.lockInterruptibly();
        try {
            long left = timeoutNanos;
            while (queue.isEmpty()) {
                if (closed) {
                    return null;
                }
                if (error != null) {
                    throw error;
                }
                if (timeoutNanos < 0) {
                    notEmpty.await();
                } else {
                    if (left <= 0) {
                        return null;
                    }
                    left = notEmpty.awaitNanos(left);
                }
            }
            if (closed) {
                return null;
            }
            message = queue.pollFirst();
            bytes -= message.bodyLength();
            if (paused && queue.size() <= LOW_MESSAGES && bytes <= LOW_BYTES) {
                paused = false;
                resume = true;
            }
        } finally {
            lock.unlock();
        }
        if (resume) {
            onLow.run();
        }
        return message;
    }

    /** Drop what is queued (never given to the app, so not acknowledged: the server delivers it again). */
    void discard() {
        lock.lock();
        try {
            queue.clear();
            bytes = 0;
            paused = false;
        } finally {
            lock.unlock();
        }
    }

    /** Discard what is queued and end every take() with null. */
    void close() {
        lock.lock();
        try {
            closed = true;
            queue.clear();
            bytes = 0;
            notEmpty.signalAll();
        } finally {
            lock.unlock();
        }
    }

    /** End take() with {@code failure} once the queued messages are consumed. */
    void fail(RuntimeException failure) {
        lock.lock();
        try {
            error = failure;
            notEmpty.signalAll();
        } finally {
            lock.unlock();
        }
    }
}
