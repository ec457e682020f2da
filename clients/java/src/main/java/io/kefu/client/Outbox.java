package io.kefu.client;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;

/**
 * The sending side: messages waiting for their SEND_ACK (spec/PROTOCOL.md sections 4.1, 4.2), as
 * clients/python/outbox.py.
 *
 * <p>Every send is a {@link PendingSend} keyed by its client message id, kept in submission order until a SEND_ACK
 * settles it. {@code unsent} lists the ones to put on the wire next: all of them after a reconnect (same client
 * message id, so the server stores each once and answers a repeat with the original receipt), or one whose
 * RATE_LIMITED refusal has waited out its backoff. The bound on what is pending is {@link SendPermits}.
 *
 * <p>Not thread-safe: used by the client's I/O thread only.
 */
final class Outbox {
    /** Bytes of SENDs put on the wire per flush: one flush never builds an unbounded batch. */
    static final int MAX_FLUSH_BYTES = 1 << 20;

    private final LinkedHashMap<PendingSend.Key, PendingSend> entries = new LinkedHashMap<>();
    private ArrayDeque<PendingSend> unsent = new ArrayDeque<>();

    int size() {
        return entries.size();
    }

    PendingSend get(PendingSend.Key key) {
        return entries.get(key);
    }

    /** Track a new send and queue it for the wire. */
    void add(PendingSend entry) {
        entries.put(entry.key, entry);
        unsent.addLast(entry);
    }

    /** Stop tracking a send (settled or abandoned). */
    PendingSend remove(PendingSend.Key key) {
        PendingSend entry = entries.remove(key);
        if (entry != null) {
            entry.cancelTimers();
        }
        return entry;
    }

    /** Put one send back in line (its rate-limit backoff is over). */
    void requeue(PendingSend entry) {
        if (entries.get(entry.key) == entry) {
            entry.retry = null;
            unsent.addLast(entry);
        }
    }

    /** A new connection: every send not waiting out a backoff goes again, in submission order. */
    void requeueAll() {
        ArrayDeque<PendingSend> again = new ArrayDeque<>(entries.size());
        for (PendingSend entry : entries.values()) {
            if (entry.retry == null) {
                again.addLast(entry);
            }
        }
        unsent = again;
    }

    /** The next sends for the wire, at most {@link #MAX_FLUSH_BYTES} of them (at least one). */
    List<PendingSend> takeUnsent() {
        List<PendingSend> taken = new ArrayList<>();
        long budget = MAX_FLUSH_BYTES;
        while (!unsent.isEmpty() && (budget > 0 || taken.isEmpty())) {
            PendingSend entry = unsent.pollFirst();
            if (entries.get(entry.key) != entry || entry.retry != null) {
                continue;
            }
            taken.add(entry);
            budget -= entry.size;
        }
        return taken;
    }

    boolean hasUnsent() {
        return !unsent.isEmpty();
    }

    /** Remove and return every pending send (the client is closing or has failed). */
    List<PendingSend> drain() {
        List<PendingSend> all = new ArrayList<>(entries.values());
        for (PendingSend entry : all) {
            entry.cancelTimers();
        }
        entries.clear();
        unsent.clear();
        return all;
    }
}
