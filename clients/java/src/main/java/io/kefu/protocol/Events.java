package io.kefu.protocol;

/**
 * The events {@link ClientConnection#eventsReceived()} returns besides application frames (spec/PROTOCOL.md section
 * 7). Application frames (SEND_ACK, DELIVER, SYNC_DONE, PONG, GOAWAY, a non-fatal ERROR, the service frames) are
 * returned as the {@link Frame} objects themselves.
 *
 * <p>All events are immutable records; safe to share between threads.
 */
public final class Events {
    private Events() {}

    /**
     * Both sides are authenticated; application frames may flow.
     *
     * @param suite the negotiated suite
     * @param resumed true when a ticket was accepted
     * @param appId the app the client authenticated as
     * @param keepaliveMs the negotiated keepalive interval
     * @param serverKey the pin of the server key that signed (empty after resumption)
     * @param clientKey the pin of the client key that signed (empty unless CLIENT_KEY was used)
     */
    public record HandshakeComplete(
            Suite suite, boolean resumed, String appId, int keepaliveMs, String serverKey, String clientKey) {}

    /**
     * The server issued a resumption ticket; keep it to resume the next connection.
     *
     * @param ticket the ticket, stamped with the clock of the call that received it
     */
    public record TicketReceived(SessionTicket ticket) {}

    /**
     * The connection is over; nothing more will arrive.
     *
     * @param code OK or the peer's code for a clean close; otherwise the error (TRUNCATED when the stream broke)
     * @param reason a human-readable detail
     * @param byPeer true when the peer closed or reported the error (CLOSE, ERROR, end of stream); false when this
     *     side detected the error (an ERROR frame for the peer is then queued in {@code dataToSend()}) or gave up
     * @param clean true for a clean close: CLOSE exchanged, or the stream ended after our own CLOSE
     */
    public record ConnectionClosed(ErrorCode code, String reason, boolean byPeer, boolean clean) {
        /**
         * A failure (not a clean close).
         *
         * @param code the error
         * @param reason a human-readable detail
         * @param byPeer true when the peer reported it
         */
        public ConnectionClosed(ErrorCode code, String reason, boolean byPeer) {
            this(code, reason, byPeer, false);
        }
    }
}
