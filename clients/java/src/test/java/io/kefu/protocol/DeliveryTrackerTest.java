package io.kefu.protocol;

import static io.kefu.protocol.DeliveryTracker.Verdict.HANDLED;
import static io.kefu.protocol.DeliveryTracker.Verdict.NEW;
import static io.kefu.protocol.DeliveryTracker.Verdict.QUEUED;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Optional;
import java.util.Random;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/** The receiving side's bookkeeping: order, duplicates, gaps, implicit and explicit acknowledgement. */
class DeliveryTrackerTest {
    private static final long C = 42;
    private static final long D = 43;

    private static List<AckEntry> acks(DeliveryTracker t) {
        List<AckEntry> out = new ArrayList<>();
        for (Frame.DeliverAck f : t.takeAllAcks()) {
            assertEquals(0, f.requestId());
            out.addAll(f.acks());
        }
        return out;
    }

    @Test
    void inOrderMessagesAreNewAndAcknowledgedCumulatively() {
        DeliveryTracker t = new DeliveryTracker();
        for (long seq = 1; seq <= 3; seq++) {
            assertEquals(NEW, t.admit(C, seq));
        }
        assertFalse(t.hasPendingAcks(), "nothing is acknowledged before the app handled it");
        t.markHandled(C, 1);
        t.markHandled(C, 2);
        t.markHandled(C, 3);
        assertEquals(List.of(new AckEntry(C, 3)), acks(t), "one entry per conversation, the highest");
        assertEquals(3, t.handled(C));
        assertFalse(t.hasPendingAcks());
        t.markHandled(C, 2); // an older seq acknowledges nothing new
        assertFalse(t.hasPendingAcks());
    }

    @Test
    void duplicatesAreDroppedAndAHandledOneIsAcknowledgedAgain() {
        DeliveryTracker t = new DeliveryTracker();
        assertEquals(NEW, t.admit(C, 1));
        assertEquals(NEW, t.admit(C, 2));
        assertEquals(QUEUED, t.admit(C, 2), "a retransmission of a queued message");
        assertEquals(QUEUED, t.admit(C, 1));
        t.markHandled(C, 1);
        acks(t);
        assertEquals(HANDLED, t.admit(C, 1), "handled already: the ack was lost");
        assertEquals(List.of(new AckEntry(C, 1)), acks(t), "so it is sent again");
        assertEquals(QUEUED, t.admit(C, 2), "still in the app's hands: no ack yet");
        assertFalse(t.hasPendingAcks());
    }

    @Test
    void gapsAreTheConnectionsOwnMessagesAndCountAsHandled() {
        DeliveryTracker t = new DeliveryTracker();
        assertEquals(NEW, t.admit(C, 1));
        assertEquals(NEW, t.admit(C, 4), "2 and 3 were this connection's own: the server skips them");
        assertTrue(t.keepsGapless(C, 5));
        assertTrue(t.keepsGapless(C, 2), "a duplicate keeps it gapless");
        assertFalse(t.keepsGapless(C, 6));
        assertFalse(t.keepsGapless(D, 2));
        assertTrue(t.keepsGapless(D, 1));
        t.markHandled(C, 1);
        t.markHandled(C, 4);
        assertEquals(List.of(new AckEntry(C, 4)), acks(t));
        assertEquals(HANDLED, t.admit(C, 3), "a seq inside the gap, below handled: never given to the app");
        assertEquals(List.of(new AckEntry(C, 4)), acks(t), "and the position is acknowledged again");
    }

    @Test
    void conversationsAreIndependent() {
        DeliveryTracker t = new DeliveryTracker();
        assertEquals(NEW, t.admit(C, 5));
        assertEquals(NEW, t.admit(D, 1));
        assertEquals(NEW, t.admit(new Frame.Deliver(D, 2, 0, 0, new byte[16], 1, "x", new byte[0], List.of())));
        t.markHandled(D, 2);
        t.markHandled(C, 5);
        assertEquals(List.of(new AckEntry(D, 2), new AckEntry(C, 5)), acks(t), "in the order they were queued");
    }

    @Test
    void explicitAcksOutOfOrderAdvanceOnlyOverTheContiguousRun() {
        DeliveryTracker t = new DeliveryTracker();
        for (long seq = 1; seq <= 4; seq++) {
            assertEquals(NEW, t.admit(C, seq));
            t.handOut(C, seq);
        }
        assertEquals(0, t.acknowledge(C, 2), "1 is still unacked");
        assertEquals(0, t.acknowledge(C, 4));
        assertFalse(t.hasPendingAcks());
        assertEquals(0, t.handled(C));
        assertEquals(2, t.acknowledge(C, 1), "1 and 2 are done; 3 is not");
        assertEquals(List.of(new AckEntry(C, 2)), acks(t));
        assertEquals(0, t.acknowledge(C, 1), "acked before");
        assertEquals(0, t.acknowledge(C, 9), "never handed out");
        assertEquals(4, t.acknowledge(C, 3));
        assertEquals(List.of(new AckEntry(C, 4)), acks(t));
        assertEquals(4, t.handled(C));
    }

    @Test
    void explicitAcksAcrossAGap() {
        DeliveryTracker t = new DeliveryTracker();
        t.admit(C, 1);
        t.handOut(C, 1);
        t.admit(C, 3); // 2 is the connection's own
        t.handOut(C, 3);
        assertEquals(0, t.acknowledge(C, 3));
        assertEquals(3, t.acknowledge(C, 1), "the gap counts as handled once both sides are acked");
        assertEquals(List.of(new AckEntry(C, 3)), acks(t));
    }

    @Test
    void rewindGivesBackWhatWasNotAckedAndOnlyThat() {
        DeliveryTracker t = new DeliveryTracker();
        for (long seq = 1; seq <= 3; seq++) {
            t.admit(C, seq);
            t.handOut(C, seq);
        }
        assertEquals(1, t.acknowledge(C, 1));
        assertEquals(0, t.acknowledge(C, 3));
        t.rewind(); // a new connection: the server resends after handled = 1
        assertEquals(List.of(new DeliveryTracker.Position(C, 1)), t.resumePoints());
        assertEquals(HANDLED, t.admit(C, 1));
        assertEquals(NEW, t.admit(C, 2), "handed out, not acked: given to the app again");
        assertTrue(t.wasHandedOut(C, 2), "flagged as a possible repeat");
        assertEquals(QUEUED, t.admit(C, 3), "acked already: not given again");
        assertEquals(NEW, t.admit(C, 4));
        assertFalse(t.wasHandedOut(C, 4));
        t.handOut(C, 2);
        t.handOut(C, 4);
        assertEquals(3, t.acknowledge(C, 2), "3 was acked on the old connection");
        assertEquals(4, t.acknowledge(C, 4));
    }

    @Test
    void manyConversationsSplitIntoSeveralDeliverAcks() {
        DeliveryTracker t = new DeliveryTracker();
        int n = DeliveryTracker.MAX_ACK_ENTRIES + 10;
        for (long c = 1; c <= n; c++) {
            t.admit(c, 1);
            t.markHandled(c, 1);
        }
        Optional<Frame.DeliverAck> first = t.takeAcks();
        assertEquals(DeliveryTracker.MAX_ACK_ENTRIES, first.orElseThrow().acks().size());
        assertEquals(1, first.get().acks().get(0).conversationId(), "oldest first");
        List<Frame.DeliverAck> rest = t.takeAllAcks();
        assertEquals(1, rest.size());
        assertEquals(10, rest.get(0).acks().size());
        assertFalse(t.hasPendingAcks());
        assertEquals(Optional.empty(), t.takeAcks());
    }

    @Test
    void trackingIsBoundedLeastRecentlyActiveFirst() {
        DeliveryTracker t = new DeliveryTracker(2);
        t.admit(1, 1);
        t.admit(2, 1);
        t.admit(1, 2); // 1 is now the most recent
        t.admit(3, 1); // forgets 2
        assertEquals(2, t.size());
        assertEquals(List.of(new DeliveryTracker.Position(3, 0), new DeliveryTracker.Position(1, 0)),
                t.resumePoints());
        assertEquals(NEW, t.admit(2, 1), "a forgotten conversation starts afresh (and 1 is forgotten now)");
        t.forget(3);
        assertEquals(List.of(2L), t.resumePoints().stream().map(DeliveryTracker.Position::conversationId).toList());
    }

    @Test
    void forgetDropsPendingAcks() {
        DeliveryTracker t = new DeliveryTracker();
        t.admit(C, 1);
        t.markHandled(C, 1);
        t.forget(C);
        assertFalse(t.hasPendingAcks());
        assertEquals(0, t.handled(C));
    }

    /**
     * A randomized run against a model of the server's stream (section 4.10): in-order DELIVERs that skip the
     * connection's own seqs, random retransmissions, reconnects that resume after the tracker's position, and an app
     * that acks what it was given in random order. Every DELIVER_ACK entry must cover only seqs the app acked (or
     * own seqs), an acked seq never reaches the app again, no seq reaches it twice on one connection, and in the
     * end everything is acknowledged.
     */
    @Test
    void randomizedAgainstAModelOfTheServer() {
        for (int run = 0; run < 200; run++) {
            Random random = new Random(run);
            int last = 20 + random.nextInt(60);
            Set<Long> own = new HashSet<>();
            for (long seq = 1; seq <= last; seq++) {
                if (random.nextInt(5) == 0) {
                    own.add(seq);
                }
            }
            DeliveryTracker t = new DeliveryTracker();
            Set<Long> acked = new HashSet<>();
            Set<Long> everGiven = new HashSet<>();
            Set<Long> givenThisConnection = new HashSet<>();
            List<Long> inHand = new ArrayList<>();
            long nextToSend = 1; // the server's stream position
            long ackedByServer = 0;
            for (int step = 0; step < 2000 && ackedByServer < last; step++) {
                int action = random.nextInt(10);
                if (action < 4 && nextToSend <= last) {
                    long seq = nextToSend++;
                    if (!own.contains(seq)) {
                        deliver(t, seq, acked, everGiven, givenThisConnection, inHand);
                    }
                } else if (action == 4 && nextToSend > 1) { // a retransmission of something already sent
                    long seq = 1 + random.nextInt((int) nextToSend - 1);
                    if (!own.contains(seq)) {
                        deliver(t, seq, acked, everGiven, givenThisConnection, inHand);
                    }
                } else if (action < 8 && !inHand.isEmpty()) {
                    long seq = inHand.remove(random.nextInt(inHand.size()));
                    acked.add(seq);
                    t.acknowledge(C, seq);
                } else if (action == 8) {
                    for (AckEntry e : acks(t)) {
                        for (long s = 1; s <= e.seq(); s++) {
                            assertTrue(acked.contains(s) || own.contains(s), "run " + run + ": ack " + e.seq()
                                    + " covers " + s + ", which the app has not acked");
                        }
                        ackedByServer = Math.max(ackedByServer, e.seq());
                    }
                } else if (random.nextInt(10) == 0) { // reconnect: the app's unacked messages come again
                    t.rewind();
                    inHand.clear();
                    givenThisConnection.clear();
                    nextToSend = t.handled(C) + 1;
                }
            }
            for (long seq : new ArrayList<>(inHand)) {
                acked.add(seq);
                t.acknowledge(C, seq);
            }
            while (nextToSend <= last) { // the rest of the stream, acked at once
                long seq = nextToSend++;
                if (!own.contains(seq)) {
                    deliver(t, seq, acked, everGiven, givenThisConnection, inHand);
                    acked.add(seq);
                    t.acknowledge(C, seq);
                }
            }
            long lastOthers = new TreeSet<>(everGiven).last();
            assertEquals(lastOthers, t.handled(C), "run " + run);
            for (long seq = 1; seq <= last; seq++) {
                assertEquals(!own.contains(seq), everGiven.contains(seq), "run " + run + " seq " + seq);
            }
        }
    }

    private static void deliver(DeliveryTracker t, long seq, Set<Long> acked, Set<Long> everGiven,
            Set<Long> givenThisConnection, List<Long> inHand) {
        if (t.admit(C, seq) == NEW) {
            assertFalse(acked.contains(seq), "an acked seq reached the app again: " + seq);
            assertTrue(givenThisConnection.add(seq), "given twice on one connection: " + seq);
            everGiven.add(seq);
            t.handOut(C, seq);
            inHand.add(seq);
        }
    }
}
