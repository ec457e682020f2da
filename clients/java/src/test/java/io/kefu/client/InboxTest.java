package io.kefu.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class InboxTest {
    static Message message(long seq) {
        return new Message(1, seq, "a", new byte[10], Message.TEXT, new byte[16], seq, 0, Map.of(), false, null);
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
}
