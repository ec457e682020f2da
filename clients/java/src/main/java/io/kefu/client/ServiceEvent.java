package io.kefu.client;

/**
 * What the server pushes to an agent or visitor outside any conversation's messages (spec/PROTOCOL.md section 13):
 * a {@link QueueUpdate} or a {@link SentimentScore}. Immutable and thread-safe.
 */
public sealed interface ServiceEvent permits ServiceEvent.QueueUpdate, ServiceEvent.SentimentScore {
    /**
     * A waiting conversation's place in its group's queue (1 = next; 0 once it left the queue).
     *
     * @param conversationId the conversation
     * @param group the skill group
     * @param position the place in the queue
     * @param waiting conversations waiting in the group
     */
    record QueueUpdate(long conversationId, String group, long position, long waiting) implements ServiceEvent {}

    /**
     * The sentiment of one visitor message, for the agents: 0 (negative) to 1000 (positive) per mille.
     *
     * @param conversationId the conversation
     * @param seq the message
     * @param scorePermille the score
     */
    record SentimentScore(long conversationId, long seq, int scorePermille) implements ServiceEvent {
        /**
         * The score as a fraction.
         *
         * @return 0.0 to 1.0
         */
        public double score() {
            return scorePermille / 1000.0;
        }
    }
}
