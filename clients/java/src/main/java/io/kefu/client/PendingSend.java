package io.kefu.client;

import io.kefu.protocol.Frame;
import io.kefu.protocol.MetaEntry;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.PrimitiveIterator;
import java.util.concurrent.CompletableFuture;

/**
 * One message waiting for its SEND_ACK: its frame (without a request id, which is per connection), the caller's
 * future and its timers. Not thread-safe: the I/O thread's, except the immutable fields.
 */
final class PendingSend {
    /** Retry policy for a SEND refused with RATE_LIMITED. */
    static final Backoff RATE_LIMITED_BACKOFF = new Backoff(0.2, 10.0, 0.2, -1);

    /** A client message id as a map key. */
    record Key(long high, long low) {
        static Key of(byte[] clientMsgId) {
            ByteBuffer b = ByteBuffer.wrap(clientMsgId);
            return new Key(b.getLong(), b.getLong());
        }
    }

    final Key key;
    final byte[] clientMsgId;
    final long conversationId;
    final int contentType;
    final byte[] body;
    final List<MetaEntry> metadata;
    final long size;
    final CompletableFuture<SendReceipt> future = new CompletableFuture<>();
    IoLoop.Timer retry;
    IoLoop.Timer deadline;
    private PrimitiveIterator.OfDouble delays;

    PendingSend(byte[] clientMsgId, long conversationId, int contentType, byte[] body, List<MetaEntry> metadata,
            long size) {
        this.key = Key.of(clientMsgId);
        this.clientMsgId = clientMsgId;
        this.conversationId = conversationId;
        this.contentType = contentType;
        this.body = body;
        this.metadata = metadata;
        this.size = size;
    }

    /** The SEND frame for a connection, labelled with its request id. */
    Frame.Send frame(long requestId) {
        return new Frame.Send(requestId, 0, clientMsgId, conversationId, contentType, body, metadata);
    }

    /** The next backoff delay after a RATE_LIMITED refusal, in seconds. */
    double nextRetryDelay() {
        if (delays == null) {
            delays = RATE_LIMITED_BACKOFF.delays(Math::random);
        }
        return delays.nextDouble();
    }

    void cancelTimers() {
        if (retry != null) {
            retry.cancel();
            retry = null;
        }
        if (deadline != null) {
            deadline.cancel();
            deadline = null;
        }
    }
}
