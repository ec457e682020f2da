package io.kefu.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class QueuesTest {
    static Message message(long seq) {
        return new Message(1, seq, "a", new byte[10], Message.TEXT, new byte[16], seq, 0, Map.of(), false, null);
    }

    static PendingSend pending(int i) {
        byte[] id = new byte[16];
        id[15] = (byte) i;
        return new PendingSend(id, 1, Message.TEXT, new byte[100], List.of(), 164);
    }

    @Test
    void inboxPausesAtTheHighMarkAndResumesAtTheLow() throws InterruptedException {
        AtomicInteger resumed = new AtomicInteger();
        Inbox inbox = new Inbox(resumed::incrementAndGet);
        boolean paused = false;
        for (int i = 1; i <= Inbox.HIGH_MESSAGES; i++) {
            paused = inbox.put(message(i));
        }
        assertTrue(paused);
        for (int i = 1; i <= Inbox.HIGH_MESSAGES - Inbox.LOW_MESSAGES; i++) {
            assertEquals(i, inbox.take(0).seq());
        }
        assertEquals(1, resumed.get());
        assertNull(new Inbox(() -> { }).take(1_000_000)); // times out empty
    }

    @Test
    void inboxFailureComesAfterTheQueuedMessages() throws InterruptedException {
        Inbox inbox = new Inbox(() -> { });
        inbox.put(message(1));
        inbox.fail(new ConnectionLostException(-1, "gone"));
        assertEquals(1, inbox.take(0).seq());
        assertThrows(ConnectionLostException.class, () -> inbox.take(0));
        inbox.close();
        assertNull(inbox.take(-1));
    }

    @Test
    void outboxRequeuesEverythingInSubmissionOrder() {
        Outbox outbox = new Outbox();
        PendingSend a = pending(1);
        PendingSend b = pending(2);
        outbox.add(a);
        outbox.add(b);
        assertEquals(List.of(a, b), outbox.takeUnsent());
        assertFalse(outbox.hasUnsent());
        outbox.requeueAll();
        outbox.remove(a.key);
        assertEquals(List.of(b), outbox.takeUnsent());
        assertSame(b, outbox.get(PendingSend.Key.of(b.clientMsgId)));
        assertEquals(List.of(b), outbox.drain());
        assertEquals(0, outbox.size());
    }

    @Test
    void sendPermitsBoundCountAndTimeOut() throws InterruptedException {
        SendPermits permits = new SendPermits(2, 1 << 20);
        assertTrue(permits.acquire(10, 0));
        assertTrue(permits.acquire(10, 0));
        assertFalse(permits.acquire(10, 1_000_000));
        permits.release(10);
        assertTrue(permits.acquire(10, 0));
    }
}
