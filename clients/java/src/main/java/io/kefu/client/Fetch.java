package io.kefu.client;

import io.kefu.protocol.Frame;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * A history fetch in progress (SYNC with until_seq &gt; 0): the DELIVERs labelled with its request id, until
 * SYNC_DONE. Re-issued on a new connection. Not thread-safe: the I/O thread's.
 */
final class Fetch {
    final long conversationId;
    final long after;
    final long until;
    final long limit;
    final CompletableFuture<List<Message>> future = new CompletableFuture<>();
    final List<Message> messages = new ArrayList<>();

    Fetch(long conversationId, long after, long until, long limit) {
        this.conversationId = conversationId;
        this.after = after;
        this.until = until;
        this.limit = limit;
    }

    void add(Frame.Deliver frame) {
        if (messages.isEmpty() || frame.seq() > messages.get(messages.size() - 1).seq()) {
            messages.add(KefuClient.toMessage(frame, null, false));
        }
    }
}
