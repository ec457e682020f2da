package io.kefu.client;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The bound on sends submitted and not yet settled, in count and bytes: {@code send()} waits for room, which is how
 * a fast producer is slowed to the server's pace. An empty window takes any single message. Thread-safe.
 */
final class SendPermits {
    /** Messages submitted and not yet acknowledged: past it send() waits. */
    static final int MAX_PENDING_SENDS = 10_000;
    /** Body bytes submitted and not yet acknowledged (64 MiB). */
    static final long MAX_PENDING_BYTES = 64L << 20;

    private final ReentrantLock lock = new ReentrantLock();
    private final Condition room = lock.newCondition();
    private final int maxCount;
    private final long maxBytes;
    private int count;
    private long bytes;

    SendPermits(int maxCount, long maxBytes) {
        this.maxCount = maxCount;
        this.maxBytes = maxBytes;
    }

    /** Take room for a send of {@code size} bytes, waiting up to the timeout (negative: for ever). */
    boolean acquire(long size, long timeoutNanos) throws InterruptedException {
        lock.lockInterruptibly();
        try {
            long left = timeoutNanos;
            while (count > 0 && (count >= maxCount || bytes + size > maxBytes)) {
                if (timeoutNanos < 0) {
                    room.await();
                } else {
                    if (left <= 0) {
                        return false;
                    }
                    left = room.awaitNanos(left);
                }
            }
            count++;
            bytes += size;
            return true;
        } finally {
            lock.unlock();
        }
    }

    /** Give back the room of a settled send. */
    void release(long size) {
        lock.lock();
        try {
            count--;
            bytes -= size;
            room.signalAll();
        } finally {
            lock.unlock();
        }
    }

    static long nanos(double seconds) {
        return seconds < 0 ? -1 : (long) (seconds * TimeUnit.SECONDS.toNanos(1));
    }
}
