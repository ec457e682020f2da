package io.kefu.client;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The highest handled seq per conversation, waiting for the next flush, which sends them all in one DELIVER_ACK
 * (several only past {@link #MAX_ACK_ENTRIES}). Not thread-safe: used by the client's I/O thread only.
 */
final class AckCoalescer {
    /** Entries per DELIVER_ACK frame: 64 KiB of entries, far below the frame limit and the u16 count. */
    static final int MAX_ACK_ENTRIES = 4096;

    private final LinkedHashMap<Long, Long> pending = new LinkedHashMap<>();

    boolean isEmpty() {
        return pending.isEmpty();
    }

    /** Acknowledge everything of the conversation up to {@code seq} at the next flush. */
    void add(long conversationId, long seq) {
        pending.merge(conversationId, seq, Math::max);
    }

    /** Up to {@link #MAX_ACK_ENTRIES} (conversation, seq) pairs, removed, oldest conversations first. */
    List<long[]> take() {
        List<long[]> taken = new ArrayList<>(Math.min(pending.size(), MAX_ACK_ENTRIES));
        Iterator<Map.Entry<Long, Long>> it = pending.entrySet().iterator();
        while (it.hasNext() && taken.size() < MAX_ACK_ENTRIES) {
            Map.Entry<Long, Long> e = it.next();
            taken.add(new long[] {e.getKey(), e.getValue()});
            it.remove();
        }
        return taken;
    }
}
