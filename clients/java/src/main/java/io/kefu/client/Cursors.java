package io.kefu.client;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * Per-conversation watermarks: the duplicate filter and the resume points for SYNC (as clients/python/inbox.py).
 *
 * <p>Per conversation the client keeps {@code received}, the highest seq queued for the app, and {@code handled},
 * the highest seq the app finished with. A DELIVER at or below {@code received} is a duplicate and never reaches
 * the app; at or below {@code handled} too, the earlier acknowledgement was evidently lost, so it is sent again.
 * With explicit acknowledgement each cursor also keeps {@code handed} (the highest seq given out) and the seqs given
 * out and not acked: {@code handled} advances to just below the lowest unacked one. After a reconnect
 * {@link #rewind} lowers {@code received} to {@code handled}, so the messages not acked come again.
 *
 * <p>Not thread-safe: used by the client's I/O thread only.
 */
final class Cursors {
    /** Watermarks kept for this many conversations, least recently active forgotten first. */
    static final int MAX_TRACKED_CONVERSATIONS = 100_000;

    /** What to do with a DELIVER. */
    enum Verdict {
        /** Next in line: queue it for the app. */
        NEW,
        /** Already queued or in the app's hands: drop. */
        QUEUED,
        /** Already handled: drop, and acknowledge again. */
        HANDLED
    }

    private static final class Cursor {
        long received;
        long handled;
        long handed;
        TreeSet<Long> unacked;
    }

    private final int limit;
    private final LinkedHashMap<Long, Cursor> cursors;

    Cursors() {
        this(MAX_TRACKED_CONVERSATIONS);
    }

    Cursors(int limit) {
        this.limit = limit;
        this.cursors = new LinkedHashMap<>(64, 0.75f, true) {
            private static final long serialVersionUID = 1L;

            @Override
            protected boolean removeEldestEntry(Map.Entry<Long, Cursor> eldest) {
                return size() > Cursors.this.limit;
            }
        };
    }

    int size() {
        return cursors.size();
    }

    private Cursor get(long conversationId) {
        return cursors.computeIfAbsent(conversationId, k -> new Cursor());
    }

    /** Classify a DELIVER; a NEW one raises {@code received}. */
    Verdict admit(long conversationId, long seq) {
        Cursor c = get(conversationId);
        if (seq > c.received) {
            c.received = seq;
            if (seq <= c.handed && !(c.unacked != null && c.unacked.contains(seq))) {
                return Verdict.QUEUED; // resent after a rewind, but the app acked it already
            }
            return Verdict.NEW;
        }
        return seq <= c.handled ? Verdict.HANDLED : Verdict.QUEUED;
    }

    /** The app is done with {@code seq} (implicit acknowledgement). */
    void markHandled(long conversationId, long seq) {
        Cursor c = get(conversationId);
        c.handled = Math.max(c.handled, seq);
    }

    /** Explicit acknowledgement: {@code seq} was given to the app and waits for its ack. */
    void handOut(long conversationId, long seq) {
        Cursor c = get(conversationId);
        c.handed = Math.max(c.handed, seq);
        if (c.unacked == null) {
            c.unacked = new TreeSet<>();
        }
        c.unacked.add(seq);
    }

    /** Whether {@code seq} was given to the app before (explicit acknowledgement). */
    boolean wasHanded(long conversationId, long seq) {
        Cursor c = cursors.get(conversationId);
        return c != null && seq <= c.handed;
    }

    /** Explicit acknowledgement of {@code seq}: the new {@code handled} when it advanced, else 0. */
    long acknowledge(long conversationId, long seq) {
        Cursor c = cursors.get(conversationId);
        if (c == null || c.unacked == null || !c.unacked.remove(seq)) {
            return 0;
        }
        long upto = c.unacked.isEmpty() ? c.handed : c.unacked.first() - 1;
        if (upto <= c.handled) {
            return 0;
        }
        c.handled = upto;
        return upto;
    }

    /** Explicit acknowledgement, on a new connection: take again everything after {@code handled}. */
    void rewind() {
        for (Cursor c : cursors.values()) {
            c.received = c.handled;
        }
    }

    /** The highest seq the app handled in this conversation (0 if none). */
    long handled(long conversationId) {
        Cursor c = cursors.get(conversationId);
        return c == null ? 0 : c.handled;
    }

    /** Drop a conversation (the server says we are not, or no longer, a member). */
    void forget(long conversationId) {
        cursors.remove(conversationId);
    }

    /** (conversation, handled) pairs of every known conversation, most recently active first. */
    List<long[]> resumePoints() {
        List<long[]> points = new ArrayList<>(cursors.size());
        for (Map.Entry<Long, Cursor> e : cursors.entrySet()) {
            points.add(new long[] {e.getKey(), e.getValue().handled});
        }
        java.util.Collections.reverse(points);
        return points;
    }
}
