package io.kefu.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kefu.protocol.SendWindow.Outcome.Kind;
import java.util.List;
import java.util.OptionalDouble;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The sending side's bookkeeping: window, retransmission after rto, reconnects, refusals, idempotency. */
class SendWindowTest {
    private static final double RTO = 2.0;

    private static byte[] id(int n) {
        byte[] id = new byte[16];
        id[15] = (byte) n;
        return id;
    }

    private static Frame.Send send(int n) {
        return new Frame.Send(id(n), 7, 1, new byte[] {(byte) n}, List.of());
    }

    private static Frame.SendAck ack(int n, int status, int flags) {
        return new Frame.SendAck(0, flags, id(n), status, status == 0 ? 100 + n : 0, 7, status == 0 ? n : 0, 0);
    }

    private static SendWindow window(int window) {
        return new SendWindow(100, 1 << 20, window, RTO, 8.0, new Random(1));
    }

    private static List<Integer> ids(List<SendWindow.PendingSend> sends) {
        return sends.stream().map(p -> (int) p.clientMsgId()[15]).toList();
    }

    @Test
    void theWindowBoundsWhatIsInFlight() {
        SendWindow w = window(2);
        for (int n = 1; n <= 5; n++) {
            w.submit(send(n));
        }
        assertTrue(w.hasSendable());
        assertEquals(List.of(1, 2), ids(w.takeSendable(0)));
        assertEquals(2, w.inFlight());
        assertFalse(w.hasSendable());
        assertEquals(List.of(), ids(w.takeSendable(0.5)));
        assertEquals(Kind.ACCEPTED, w.onSendAck(ack(1, 0, 0), 0.6).kind());
        assertEquals(List.of(3), ids(w.takeSendable(0.6)), "an acknowledgement frees one slot");
        assertEquals(4, w.size());
    }

    @Test
    void anUnansweredSendGoesAgainAfterRtoWhichDoubles() {
        SendWindow w = window(4);
        w.submit(send(1));
        w.takeSendable(10.0);
        assertEquals(OptionalDouble.of(10.0 + RTO), w.timer());
        assertEquals(List.of(), ids(w.takeSendable(11.9)));
        List<SendWindow.PendingSend> again = w.takeSendable(12.0);
        assertEquals(List.of(1), ids(again));
        assertEquals(2, again.get(0).transmissions());
        assertArrayEquals(id(1), again.get(0).frame(9).clientMsgId(), "the same client_msg_id every time");
        assertEquals(9, again.get(0).frame(9).requestId());
        assertEquals(OptionalDouble.of(12.0 + 2 * RTO), w.timer(), "doubled");
        w.takeSendable(16.0);
        assertEquals(OptionalDouble.of(16.0 + 8.0), w.timer(), "capped at rtoMax");
        assertEquals(1, w.inFlight(), "a retransmission takes no second slot");
        assertEquals(Kind.ACCEPTED, w.onSendAck(ack(1, 0, 0), 17).kind());
        assertEquals(OptionalDouble.empty(), w.timer());
    }

    @Test
    void submitIsIdempotentOnClientMsgId() {
        SendWindow w = window(4);
        SendWindow.PendingSend first = w.submit(send(1));
        assertSame(first, w.submit(new Frame.Send(id(1), 99, 1, new byte[] {9}, List.of())));
        assertEquals(1, w.size());
        assertEquals(List.of(1), ids(w.takeSendable(0)));
    }

    @Test
    void duplicateAndLateAcksSettleOnce() {
        SendWindow w = window(4);
        w.submit(send(1));
        w.takeSendable(0);
        w.takeSendable(RTO); // sent twice: the server may answer both
        SendWindow.Outcome first = w.onSendAck(ack(1, 0, FrameCodec.FLAG_DUPLICATE), 3);
        assertEquals(Kind.ACCEPTED, first.kind(), "DUPLICATE is an OK like any other");
        assertEquals(Kind.UNKNOWN, w.onSendAck(ack(1, 0, 0), 3).kind(), "the second answer changes nothing");
        assertEquals(Kind.UNKNOWN, w.onSendAck(ack(9, 0, 0), 3).kind());
        assertEquals(0, w.size());
        assertEquals(0, w.inFlight());
    }

    @Test
    void aReconnectSendsEverythingUnsettledAgainInOrder() {
        SendWindow w = window(2);
        for (int n = 1; n <= 4; n++) {
            w.submit(send(n));
        }
        w.takeSendable(0);
        w.onSendAck(ack(2, 0, 0), 0.1);
        w.takeSendable(0.1); // 3 goes out
        w.requeueAll();
        assertEquals(0, w.inFlight());
        assertEquals(List.of(1, 3), ids(w.takeSendable(5)), "window 2, submission order, same ids");
        assertEquals(OptionalDouble.of(5 + RTO), w.timer(), "the rto starts afresh");
        w.onSendAck(ack(1, 0, 0), 5.1);
        assertEquals(List.of(4), ids(w.takeSendable(5.1)));
    }

    @Test
    void rateLimitedWaitsOutAJitteredBackoff() {
        SendWindow w = window(4);
        w.submit(send(1));
        w.submit(send(2));
        w.takeSendable(0);
        SendWindow.Outcome o = w.onSendAck(ack(1, 429, 0), 1.0);
        assertEquals(Kind.RETRY_LATER, o.kind());
        assertTrue(o.retryAt() >= 1.0 + 0.2 * 0.8 && o.retryAt() <= 1.0 + 0.2 * 1.2, "jitter within 20 %");
        assertEquals(1, w.inFlight(), "a refused SEND leaves the window");
        assertEquals(List.of(), ids(w.takeSendable(1.1)));
        assertEquals(List.of(1), ids(w.takeSendable(o.retryAt())));
        SendWindow.Outcome second = w.onSendAck(ack(1, 429, 0), 2.0);
        assertTrue(second.retryAt() >= 2.0 + 0.4 * 0.8 && second.retryAt() <= 2.0 + 0.4 * 1.2, "doubled");
        w.requeueAll(); // a reconnect does not cut a backoff short
        assertEquals(List.of(2), ids(w.takeSendable(2.1)));
        assertEquals(List.of(1), ids(w.takeSendable(second.retryAt())));
    }

    @Test
    void shuttingDownWaitsForTheNextConnection() {
        SendWindow w = window(4);
        w.submit(send(1));
        w.takeSendable(0);
        assertEquals(Kind.RETRY_ON_RECONNECT, w.onSendAck(ack(1, 503, 0), 1).kind());
        assertEquals(List.of(), ids(w.takeSendable(100)));
        assertEquals(OptionalDouble.empty(), w.timer());
        w.requeueAll();
        assertEquals(List.of(1), ids(w.takeSendable(101)));
    }

    @Test
    void otherRefusalsAreFinal() {
        SendWindow w = window(4);
        w.submit(send(1));
        w.submit(send(2));
        w.takeSendable(0);
        SendWindow.Outcome o = w.onSendAck(ack(1, 413, 0), 1);
        assertEquals(Kind.REFUSED, o.kind());
        assertEquals(413, o.status());
        assertEquals(Kind.REFUSED, w.onRefused(id(2), 403, 1).kind(), "a non-fatal ERROR refusing the SEND");
        assertEquals(0, w.size());
        assertEquals(0, w.pendingBytes());
    }

    @Test
    void admissionIsBoundedByCountAndBytes() {
        SendWindow w = new SendWindow(2, 10, 4, RTO, RTO, new Random(1));
        assertTrue(w.hasRoom(1_000), "an empty window takes any single SEND");
        w.submit(new Frame.Send(id(1), 7, 1, new byte[8], List.of()));
        assertEquals(8, w.pendingBytes());
        assertFalse(w.hasRoom(3));
        assertTrue(w.hasRoom(2));
        w.submit(new Frame.Send(id(2), 7, 1, new byte[2], List.of()));
        assertFalse(w.hasRoom(0), "count bound");
        assertThrows(IllegalStateException.class, () -> w.submit(send(3)));
        assertThrows(IllegalArgumentException.class, () -> w.submit(new Frame.Send(new byte[8], 7, 1, new byte[1],
                List.of())));
    }

    @Test
    void removeAndDrainFreeEverything() {
        SendWindow w = window(1);
        w.submit(send(1));
        w.submit(send(2));
        w.takeSendable(0);
        assertEquals(1, (int) w.remove(id(1)).clientMsgId()[15]);
        assertNull(w.remove(id(1)));
        assertEquals(Kind.UNKNOWN, w.onSendAck(ack(1, 0, 0), 1).kind(), "abandoned");
        assertEquals(List.of(2), ids(w.takeSendable(1)), "its slot is free");
        assertEquals(List.of(2), ids(w.drain()));
        assertEquals(0, w.size());
        assertEquals(0, w.inFlight());
        assertEquals(OptionalDouble.empty(), w.timer());
    }

    @Test
    void oneCallTakesAtMostTheByteBudgetButAtLeastOneSend() {
        SendWindow w = new SendWindow(100, 1 << 20, 100, RTO, 8.0, new Random(1));
        for (int n = 1; n <= 5; n++) {
            w.submit(new Frame.Send(id(n), 7, 1, new byte[40], List.of(new MetaEntry("k", new byte[10]))));
        }
        assertEquals(50, SendWindow.sizeOf(w.get(id(1)).frame()), "body and metadata values");
        assertEquals(List.of(1, 2), ids(w.takeSendable(0, 100)), "50 + 50 bytes use the budget up");
        assertEquals(List.of(3), ids(w.takeSendable(0, 1)), "a budget below one SEND still takes one");
        assertTrue(w.hasSendable());
        assertEquals(List.of(4, 5), ids(w.takeSendable(0)));
        assertFalse(w.hasSendable());
    }

    @Test
    void anInfiniteRtoSendsAgainOnlyOnTheNextConnection() {
        SendWindow w = new SendWindow(100, 1 << 20, 100, Double.POSITIVE_INFINITY, Double.POSITIVE_INFINITY,
                new Random(1));
        w.submit(send(1));
        w.submit(send(2));
        assertEquals(List.of(1, 2), ids(w.takeSendable(0)));
        assertEquals(OptionalDouble.empty(), w.timer(), "no timer armed");
        assertEquals(List.of(), ids(w.takeSendable(1e9)));
        w.requeueAll();
        w.remove(id(1)); // abandoned while waiting to go again
        assertEquals(List.of(2), ids(w.takeSendable(1e9)));
        assertEquals(1, w.inFlight());
    }

    @Test
    void aSendBackFromItsBackoffGoesToTheEndOfTheLine() {
        SendWindow w = window(1);
        w.submit(send(1));
        w.submit(send(2));
        w.submit(send(3));
        assertEquals(List.of(1), ids(w.takeSendable(0)));
        SendWindow.Outcome o = w.onSendAck(ack(1, 429, 0), 0);
        assertEquals(List.of(2), ids(w.takeSendable(0)));
        w.onSendAck(ack(2, 0, 0), o.retryAt());
        assertEquals(List.of(3), ids(w.takeSendable(o.retryAt())), "as the Python client: 1 queues behind 3");
        w.onSendAck(ack(3, 0, 0), o.retryAt());
        assertEquals(List.of(1), ids(w.takeSendable(o.retryAt())));
    }

    @Test
    void anEntryCarriesTheCallersAttachment() {
        SendWindow w = window(1);
        SendWindow.PendingSend e = w.submit(send(1));
        assertNull(e.attachment());
        e.attach("caller");
        assertSame(e, w.submit(send(1)));
        assertEquals("caller", w.get(id(1)).attachment());
    }

    @Test
    void clientMsgIdsAreRandom() {
        Random random = new Random(5);
        byte[] a = SendWindow.newClientMsgId(random);
        byte[] b = SendWindow.newClientMsgId(random);
        assertEquals(16, a.length);
        assertFalse(java.util.Arrays.equals(a, b));
    }
}
