package io.kefu.protocol;

import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeSet;

/**
 * The receiving side of delivery (spec/PROTOCOL.md sections 4.3, 4.4, 4.10): per conversation, which DELIVERs are
 * new, which are duplicates, how far the app has processed, and the cumulative DELIVER_ACK entries to send. The same
 * bookkeeping as the Python client's {@code clients/python/inbox.py} ({@code Cursors} and {@code AckCoalescer}).
 *
 * <p>Theory of operation. Per conversation the tracker keeps two watermarks: {@code received}, the highest seq
 * admitted for the app, and {@code handled}, the highest seq the app is done with. The server sends a conversation's
 * stream in increasing seq order; seqs may be skipped (the connection's own messages are never sent back to it,
 * section 4.10 item 5), and a skipped seq counts as handled once everything around it is.
 * <ul>
 *   <li>{@link #admit(long, long)} classifies a DELIVER: above {@code received} it is {@link Verdict#NEW} (give it
 *       to the app); at or below it, a duplicate (a retransmission, a resume after reconnecting) that never reaches
 *       the app: {@link Verdict#QUEUED} if the app has not finished with it yet, {@link Verdict#HANDLED} if it has,
 *       in which case the earlier acknowledgement was evidently lost and it is queued again.</li>
 *   <li>Implicit acknowledgement: the app processes messages one after the other and {@link #markHandled} moves
 *       {@code handled} to each in turn.</li>
 *   <li>Explicit acknowledgement: the app may ack in any order (it hands messages to tasks).
 *       {@link #handOut} records each seq given to the app; {@link #acknowledge} removes it from the unacked set,
 *       and {@code handled} advances only over the contiguous run: to just below the lowest seq still unacked, or
 *       to the highest seq handed out when none is left. A cumulative DELIVER_ACK therefore never covers a message
 *       the app has not acked (section 4.4).</li>
 *   <li>On a new connection with explicit acknowledgement, {@link #rewind} lowers {@code received} to
 *       {@code handled}: the server resends everything after {@code handled} (the client resumes each conversation
 *       with SYNC after {@link #resumePoints()}), the messages handed out but not acked are admitted again (see
 *       {@link #wasHandedOut}), and those already acked are dropped as {@link Verdict#QUEUED}.</li>
 *   <li>Every advance of {@code handled} queues the conversation's new position; {@link #takeAcks()} returns them as
 *       DELIVER_ACK frames of at most {@link #MAX_ACK_ENTRIES} entries, one entry per conversation.</li>
 * </ul>
 * Seqs are compared as signed {@code long}s: a conversation's seqs count from 1 and never reach 2^63.
 *
 * <p>Memory is bounded: at most {@code maxConversations} conversations are tracked, the least recently active
 * forgotten first (a forgotten conversation is resumed from the server's stored cursor by SYNC(0) instead).
 *
 * <p>Thread-safety: not thread-safe. Confine an instance to one thread (the client's I/O thread) or guard every call
 * with one lock. It does no I/O and reads no clock.
 */
public final class DeliveryTracker {
    /**
     * Conversations tracked by default: 100 000 (a few MB), as the Python client. Enough for an integration's
     * connection; a forgotten conversation costs only a resume from the server's cursor.
     */
    public static final int MAX_TRACKED_CONVERSATIONS = 100_000;

    /** Entries per DELIVER_ACK frame: 64 KiB of entries, far below the frame limit and the {@code u16} count. */
    public static final int MAX_ACK_ENTRIES = 4096;

    /**
     * What to do with a DELIVER.
     *
     * <p>Thread-safety: an enum; immutable.
     */
    public enum Verdict {
        /** Next in line: give it to the app. */
        NEW,
        /** Already admitted and not yet handled (queued or in the app's hands), or acked already: drop it. */
        QUEUED,
        /** Already handled: drop it; its acknowledgement has been queued again (the earlier one was lost). */
        HANDLED
    }

    /**
     * A conversation and a seq: where to resume it (SYNC {@code after_seq}).
     *
     * <p>Thread-safety: immutable.
     *
     * @param conversationId the conversation
     * @param seq the highest seq handled (0 if none)
     */
    public record Position(long conversationId, long seq) {}

    /** One conversation's watermarks. */
    private static final class Cursor {
        long received;
        long handled;
        long handed;
        TreeSet<Long> unacked;
    }

    private final LinkedHashMap<Long, Cursor> cursors;
    private final LinkedHashMap<Long, Long> pendingAcks = new LinkedHashMap<>();

    /** A tracker of at most {@link #MAX_TRACKED_CONVERSATIONS} conversations. */
    public DeliveryTracker() {
        this(MAX_TRACKED_CONVERSATIONS);
    }

    /**
     * A tracker of at most {@code maxConversations} conversations.
     *
     * @param maxConversations the bound, at least 1
     * @throws IllegalArgumentException if {@code maxConversations} is below 1
     */
    public DeliveryTracker(int maxConversations) {
        if (maxConversations < 1) {
            throw new IllegalArgumentException("maxConversations must be at least 1");
        }
        // Access order: iteration goes from the least to the most recently active conversation.
        this.cursors = new LinkedHashMap<>(64, 0.75f, true) {
            private static final long serialVersionUID = 1L;

            @Override
            protected boolean removeEldestEntry(Map.Entry<Long, Cursor> eldest) {
                return size() > maxConversations;
            }
        };
    }

    private Cursor cursor(long conversationId) {
        return cursors.computeIfAbsent(conversationId, id -> new Cursor());
    }

    /**
     * The number of conversations tracked.
     *
     * @return at most the bound given at construction
     */
    public int size() {
        return cursors.size();
    }

    /**
     * Classifies a DELIVER of the live stream; a {@link Verdict#NEW} one raises {@code received}, a
     * {@link Verdict#HANDLED} one queues the conversation's position again.
     *
     * @param conversationId the DELIVER's conversation
     * @param seq its seq
     * @return what to do with it
     */
    public Verdict admit(long conversationId, long seq) {
        Cursor c = cursor(conversationId);
        if (seq > c.received) {
            c.received = seq;
            if (seq <= c.handed && !(c.unacked != null && c.unacked.contains(seq))) {
                return Verdict.QUEUED; // resent after a rewind, but the app acked it already: not again
            }
            return Verdict.NEW;
        }
        if (seq <= c.handled) {
            queueAck(conversationId, c.handled);
            return Verdict.HANDLED;
        }
        return Verdict.QUEUED;
    }

    /**
     * {@link #admit(long, long)} of a DELIVER frame.
     *
     * @param deliver the frame
     * @return what to do with it
     */
    public Verdict admit(Frame.Deliver deliver) {
        return admit(deliver.conversationId(), deliver.seq());
    }

    /**
     * Whether admitting {@code seq} keeps the stream gapless: it is a duplicate or the very next seq. A client uses
     * it for an unlabelled DELIVER that may belong to a SYNC fetch (section 4.5): taking a later seq into the live
     * stream would make the live DELIVER of a skipped seq look like a duplicate.
     *
     * @param conversationId the conversation
     * @param seq the seq
     * @return true if {@code seq <= received + 1}
     */
    public boolean keepsGapless(long conversationId, long seq) {
        Cursor c = cursors.get(conversationId);
        return seq <= (c != null ? c.received : 0) + 1;
    }

    /**
     * Implicit acknowledgement: the app is done with {@code seq} (and with every earlier seq of the conversation).
     * Queues the new position when it advances.
     *
     * @param conversationId the conversation
     * @param seq the seq
     */
    public void markHandled(long conversationId, long seq) {
        Cursor c = cursor(conversationId);
        if (seq > c.handled) {
            c.handled = seq;
            queueAck(conversationId, seq);
        }
    }

    /**
     * Explicit acknowledgement: {@code seq} was given to the app and waits for its {@link #acknowledge}.
     *
     * @param conversationId the conversation
     * @param seq the seq
     */
    public void handOut(long conversationId, long seq) {
        Cursor c = cursor(conversationId);
        c.handed = Math.max(c.handed, seq);
        if (c.unacked == null) {
            c.unacked = new TreeSet<>();
        }
        c.unacked.add(seq);
    }

    /**
     * Whether {@code seq} was given to the app before: a message admitted again after {@link #rewind} is a
     * redelivery the app may have seen.
     *
     * @param conversationId the conversation
     * @param seq the seq
     * @return true if {@code seq} is at or below the highest seq handed out
     */
    public boolean wasHandedOut(long conversationId, long seq) {
        Cursor c = cursors.get(conversationId);
        return c != null && seq <= c.handed;
    }

    /**
     * Explicit acknowledgement of {@code seq}, in any order. {@code handled} advances over the contiguous run only:
     * to just below the lowest seq still unacked, or to the highest seq handed out when none is. Costs
     * O(log unacked).
     *
     * @param conversationId the conversation
     * @param seq a seq handed out
     * @return the new {@code handled} when it advanced (its DELIVER_ACK entry is queued), else 0 (nothing new to
     *     acknowledge yet, or {@code seq} was acked before, or never handed out)
     */
    public long acknowledge(long conversationId, long seq) {
        Cursor c = cursors.get(conversationId);
        if (c == null || c.unacked == null || !c.unacked.remove(seq)) {
            return 0;
        }
        long upto = c.unacked.isEmpty() ? c.handed : c.unacked.first() - 1;
        if (upto <= c.handled) {
            return 0;
        }
        c.handled = upto;
        queueAck(conversationId, upto);
        return upto;
    }

    /**
     * Explicit acknowledgement, on a new connection: take again everything after {@code handled} (the messages
     * handed out and not acked come again; those acked are dropped).
     */
    public void rewind() {
        for (Cursor c : cursors.values()) {
            c.received = c.handled;
        }
    }

    /**
     * The highest seq the app handled in a conversation: its cumulative acknowledgement position.
     *
     * @param conversationId the conversation
     * @return the seq, 0 if none or not tracked
     */
    public long handled(long conversationId) {
        Cursor c = cursors.get(conversationId);
        return c != null ? c.handled : 0;
    }

    /**
     * Stops tracking a conversation (the server says the client is not, or no longer, a member).
     *
     * @param conversationId the conversation
     */
    public void forget(long conversationId) {
        cursors.remove(conversationId);
        pendingAcks.remove(conversationId);
    }

    /**
     * Where to resume each tracked conversation on a new connection: SYNC({@code conversationId}, {@code seq}, 0, 0)
     * for each, then SYNC(0, 0, 0, 0) (section 4.5).
     *
     * @return one position per conversation, most recently active first
     */
    public List<Position> resumePoints() {
        List<Position> out = new ArrayList<>(cursors.size());
        for (Map.Entry<Long, Cursor> e : cursors.entrySet()) {
            out.add(new Position(e.getKey(), e.getValue().handled));
        }
        Collections.reverse(out);
        return out;
    }

    private void queueAck(long conversationId, long seq) {
        Long pending = pendingAcks.get(conversationId);
        if (pending == null || seq > pending) {
            pendingAcks.put(conversationId, seq);
        }
    }

    /**
     * Whether acknowledgements wait to be sent.
     *
     * @return true if {@link #takeAcks()} would return a frame
     */
    public boolean hasPendingAcks() {
        return !pendingAcks.isEmpty();
    }

    /**
     * Takes the queued acknowledgements, at most {@link #MAX_ACK_ENTRIES} of them (the conversations that have
     * waited longest first), as one DELIVER_ACK with {@code request_id} 0.
     *
     * @return the frame, or empty if nothing waits
     */
    public Optional<Frame.DeliverAck> takeAcks() {
        if (pendingAcks.isEmpty()) {
            return Optional.empty();
        }
        List<AckEntry> entries = new ArrayList<>(Math.min(pendingAcks.size(), MAX_ACK_ENTRIES));
        Iterator<Map.Entry<Long, Long>> it = pendingAcks.entrySet().iterator();
        while (it.hasNext() && entries.size() < MAX_ACK_ENTRIES) {
            Map.Entry<Long, Long> e = it.next();
            entries.add(new AckEntry(e.getKey(), e.getValue()));
            it.remove();
        }
        return Optional.of(new Frame.DeliverAck(entries));
    }

    /**
     * Takes every queued acknowledgement, as as many DELIVER_ACK frames as needed.
     *
     * @return the frames, empty if nothing waits
     */
    public List<Frame.DeliverAck> takeAllAcks() {
        List<Frame.DeliverAck> frames = new ArrayList<>();
        for (Optional<Frame.DeliverAck> f = takeAcks(); f.isPresent(); f = takeAcks()) {
            frames.add(f.get());
        }
        return frames;
    }
}
