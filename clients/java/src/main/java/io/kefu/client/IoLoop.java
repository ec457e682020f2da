package io.kefu.client;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.util.ArrayList;
import java.util.List;
import java.util.PriorityQueue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

/**
 * The one I/O thread of a client: a {@link Selector}, a queue of tasks handed in by other threads, timers, and
 * flushes run once at the end of each iteration.
 *
 * <p>Theory of operation: every piece of client state that outlives a call belongs to this thread. Other threads
 * only {@link #execute} tasks (a lock-free queue; the selector is woken at most once per batch, so a burst of sends
 * costs one wake-up), and the thread runs, per iteration: the ready channels, the tasks, the timers that are due,
 * then the deferred flushes (each connection writes once per iteration, however many frames were queued).
 *
 * <p>Thread-safe: {@link #execute} and {@link #inLoop} from any thread; everything else on the loop thread only.
 */
final class IoLoop {
    /** A cancellable timer (loop thread only). */
    final class Timer implements Comparable<Timer> {
        final long deadlineNanos;
        final Runnable action;
        final long order;
        boolean cancelled;

        Timer(long deadlineNanos, Runnable action, long order) {
            this.deadlineNanos = deadlineNanos;
            this.action = action;
            this.order = order;
        }

        void cancel() {
            if (!cancelled) {
                cancelled = true;
                cancelledTimers++;
            }
        }

        @Override
        public int compareTo(Timer other) {
            int c = Long.compare(deadlineNanos, other.deadlineNanos);
            return c != 0 ? c : Long.compare(order, other.order);
        }
    }

    /** Cancelled timers tolerated in the heap before it is compacted (a few hundred KiB). */
    private static final int COMPACT_MIN = 4096;

    private final Selector selector;
    private final ConcurrentLinkedQueue<Runnable> tasks = new ConcurrentLinkedQueue<>();
    private final AtomicBoolean wakeupPending = new AtomicBoolean();
    private final PriorityQueue<Timer> timers = new PriorityQueue<>();
    private final List<Runnable> deferred = new ArrayList<>();
    private final Thread thread;
    private final Consumer<Throwable> onCrash;
    private long timerOrder;
    private int cancelledTimers;
    private volatile boolean stopped;

    IoLoop(String name, Consumer<Throwable> onCrash) {
        try {
            this.selector = Selector.open();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        this.onCrash = onCrash;
        this.thread = new Thread(this::run, name);
        this.thread.setDaemon(true);
    }

    void start() {
        thread.start();
    }

    Selector selector() {
        return selector;
    }

    boolean inLoop() {
        return Thread.currentThread() == thread;
    }

    /** Run {@code task} on the loop thread (soon; in submission order). */
    void execute(Runnable task) {
        tasks.add(task);
        if (!inLoop() && wakeupPending.compareAndSet(false, true)) {
            selector.wakeup();
        }
    }

    /** Run {@code action} on the loop thread after {@code seconds} (loop thread only). */
    Timer schedule(double seconds, Runnable action) {
        if (cancelledTimers > COMPACT_MIN && cancelledTimers > timers.size() / 2) {
            timers.removeIf(t -> t.cancelled); // cancelled timers (settled sends) must not pile up until due
            cancelledTimers = 0;
        }
        Timer timer = new Timer(System.nanoTime() + (long) (Math.max(0, seconds) * 1e9), action, timerOrder++);
        timers.add(timer);
        return timer;
    }

    /** Run {@code action} once at the end of this iteration (loop thread only). */
    void defer(Runnable action) {
        deferred.add(action);
    }

    /** Stop after this iteration and close the selector; waits for the thread unless called on it. */
    void stop() {
        stopped = true;
        selector.wakeup();
        if (!inLoop()) {
            try {
                thread.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }

    private void run() {
        try {
            while (!stopped) {
                once();
            }
        } catch (Throwable t) {
            onCrash.accept(t);
        } finally {
            for (SelectionKey key : selector.keys()) {
                try {
                    key.channel().close();
                } catch (IOException ignored) {
                    // closing anyway
                }
            }
            try {
                selector.close();
            } catch (IOException ignored) {
                // closing anyway
            }
        }
    }

    private void once() throws IOException {
        long wait = tasks.isEmpty() && deferred.isEmpty() ? waitMillis() : 0;
        if (wait == 0) {
            selector.selectNow();
        } else {
            selector.select(wait < 0 ? 0 : wait);
        }
        wakeupPending.set(false);
        if (!selector.selectedKeys().isEmpty()) {
            for (SelectionKey key : selector.selectedKeys()) {
                if (key.isValid() && key.attachment() instanceof Ready ready) {
                    ready.ready(key);
                }
            }
            selector.selectedKeys().clear();
        }
        Runnable task;
        while ((task = tasks.poll()) != null) {
            task.run();
        }
        runTimers();
        while (!deferred.isEmpty()) {
            List<Runnable> now = new ArrayList<>(deferred);
            deferred.clear();
            for (Runnable action : now) {
                action.run();
            }
        }
    }

    /** Milliseconds until the next timer (at least 1), or -1 when there is none. */
    private long waitMillis() {
        Timer next;
        while ((next = timers.peek()) != null && next.cancelled) {
            timers.poll();
            cancelledTimers--;
        }
        if (next == null) {
            return -1;
        }
        long nanos = next.deadlineNanos - System.nanoTime();
        return nanos <= 0 ? 0 : Math.max(1, (nanos + 999_999) / 1_000_000);
    }

    private void runTimers() {
        long now = System.nanoTime();
        Timer next;
        while ((next = timers.peek()) != null && (next.cancelled || next.deadlineNanos <= now)) {
            timers.poll();
            if (next.cancelled) {
                cancelledTimers--;
            } else {
                next.cancelled = true;
                next.action.run();
            }
        }
    }

    /** What a selection key's attachment implements. */
    interface Ready {
        void ready(SelectionKey key);
    }
}
