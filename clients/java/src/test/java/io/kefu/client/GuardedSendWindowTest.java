package io.kefu.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kefu.protocol.Frame;
import io.kefu.protocol.SendWindow;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/** The lock and the waiting around the client's SendWindow: send()'s back-pressure, from other threads. */
class GuardedSendWindowTest {
    private static Frame.Send send(int n) {
        byte[] id = new byte[16];
        id[15] = (byte) n;
        return new Frame.Send(id, 1, Message.TEXT, new byte[100], List.of());
    }

    private static Frame.SendAck ack(int n, int status) {
        return new Frame.SendAck(0, 0, send(n).clientMsgId(), status, 1, 1, n, 0);
    }

    @Test
    void aFullWindowTimesOutAndAnAcknowledgementMakesRoom() throws InterruptedException {
        GuardedSendWindow sends = new GuardedSendWindow(2, 1 << 20);
        SendWindow.PendingSend first = sends.submit(send(1), 0);
        assertNotNull(sends.submit(send(2), 0));
        assertNull(sends.submit(send(3), 1_000_000), "the count bound: no room within 1 ms");
        assertSame(first, sends.submit(send(1), 0), "a pending id needs no room");
        assertEquals(2, sends.takeSendable(0).size());
        assertEquals(SendWindow.Outcome.Kind.ACCEPTED, sends.onSendAck(ack(1, 0), 0).kind());
        assertNotNull(sends.submit(send(3), 0));
    }

    /** Submits {@code frame} from a thread of its own, and returns once that thread waits for room. */
    private static CompletableFuture<SendWindow.PendingSend> submitWaiting(GuardedSendWindow sends, Frame.Send frame,
            long timeoutNanos) throws InterruptedException {
        CompletableFuture<SendWindow.PendingSend> result = new CompletableFuture<>();
        Thread t = new Thread(() -> {
            try {
                result.complete(sends.submit(frame, timeoutNanos));
            } catch (InterruptedException e) {
                result.completeExceptionally(e);
            }
        });
        t.setDaemon(true);
        t.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (t.getState() != Thread.State.WAITING && t.getState() != Thread.State.TIMED_WAITING) {
            assertTrue(System.nanoTime() < deadline && !result.isDone(), "the sender should wait for room");
            Thread.onSpinWait();
        }
        return result;
    }

    @Test
    void aWaitingSenderIsWokenBySettlingOrDraining() throws Exception {
        GuardedSendWindow sends = new GuardedSendWindow(1, 1 << 20);
        SendWindow.PendingSend first = sends.submit(send(1), 0);
        CompletableFuture<SendWindow.PendingSend> waiting = submitWaiting(sends, send(2), -1);
        assertTrue(sends.remove(first));
        assertFalse(sends.remove(first), "removed once");
        assertEquals(2, (int) waiting.get(5, TimeUnit.SECONDS).clientMsgId()[15]);
        CompletableFuture<SendWindow.PendingSend> third = submitWaiting(sends, send(3), TimeUnit.SECONDS.toNanos(5));
        assertEquals(1, sends.drain().size());
        assertEquals(3, (int) third.get(5, TimeUnit.SECONDS).clientMsgId()[15]);
        assertEquals(1, sends.size());
    }

    @Test
    void eachEntryCarriesItsCallerAndRateLimitedDoesNotFreeRoom() throws InterruptedException {
        GuardedSendWindow sends = new GuardedSendWindow(1, 1 << 20);
        SendWindow.PendingSend entry = sends.submit(send(1), 0);
        assertNotNull(GuardedSendWindow.caller(entry));
        sends.takeSendable(0);
        SendWindow.Outcome o = sends.onRefused(entry, 429, 1.0);
        assertEquals(SendWindow.Outcome.Kind.RETRY_LATER, o.kind());
        assertNull(sends.submit(send(2), 0), "still pending");
        assertEquals(SendWindow.Outcome.Kind.REFUSED, sends.onRefused(entry, 403, 1.0).kind());
        assertEquals(SendWindow.Outcome.Kind.UNKNOWN, sends.onRefused(entry, 403, 1.0).kind());
        assertNotNull(sends.submit(send(2), 0));
    }
}
