package io.kefu.client;

/**
 * What {@link KefuClient#startListener} calls with each incoming message, on the client's listener thread. Returning
 * normally acknowledges the message (implicit acknowledgement); throwing leaves it unacknowledged.
 */
@FunctionalInterface
public interface MessageListener {
    /**
     * One incoming message, in order per conversation, each once.
     *
     * @param message the message
     */
    void onMessage(Message message);
}
