package io.kefu.client;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

class CursorsTest {
    @Test
    void duplicatesAreDroppedAndLostAcksRepeated() {
        Cursors c = new Cursors();
        assertEquals(Cursors.Verdict.NEW, c.admit(7, 1));
        assertEquals(Cursors.Verdict.NEW, c.admit(7, 2));
        assertEquals(Cursors.Verdict.QUEUED, c.admit(7, 2));
        c.markHandled(7, 1);
        assertEquals(Cursors.Verdict.HANDLED, c.admit(7, 1));
        assertEquals(1, c.handled(7));
    }

    @Test
    void explicitAcksOutOfOrderAdvanceToTheLowestGap() {
        Cursors c = new Cursors();
        for (long seq = 1; seq <= 3; seq++) {
            c.admit(5, seq);
            c.handOut(5, seq);
        }
        assertEquals(0, c.acknowledge(5, 2));
        assertEquals(0, c.acknowledge(5, 2)); // idempotent
        assertEquals(2, c.acknowledge(5, 1));
        c.rewind(); // a reconnect: 3 comes again, 1 and 2 do not
        assertEquals(Cursors.Verdict.HANDLED, c.admit(5, 2)); // acked: dropped, and acknowledged again
        assertEquals(Cursors.Verdict.NEW, c.admit(5, 3));
        assertEquals(3, c.acknowledge(5, 3));
    }

    @Test
    void resumePointsMostRecentFirstAndBounded() {
        Cursors c = new Cursors(2);
        c.admit(1, 1);
        c.markHandled(1, 1);
        c.admit(2, 4);
        c.markHandled(2, 4);
        c.admit(3, 9);
        List<long[]> points = c.resumePoints();
        assertEquals(2, points.size());
        assertArrayEquals(new long[] {3, 0}, points.get(0));
        assertArrayEquals(new long[] {2, 4}, points.get(1));
    }

    @Test
    void ackCoalescerKeepsTheHighestPerConversation() {
        AckCoalescer a = new AckCoalescer();
        a.add(1, 5);
        a.add(1, 3);
        a.add(2, 1);
        List<long[]> taken = a.take();
        assertArrayEquals(new long[] {1, 5}, taken.get(0));
        assertArrayEquals(new long[] {2, 1}, taken.get(1));
        assertEquals(true, a.isEmpty());
    }
}
