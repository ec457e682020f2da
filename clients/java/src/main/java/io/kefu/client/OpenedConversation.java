package io.kefu.client;

/**
 * The answer to {@link ServiceApi#open}: the conversation, where it went, and its queue position. Immutable and
 * thread-safe.
 *
 * @param conversationId the service conversation
 * @param state 1 WAITING (queued), 2 ASSIGNED, 3 TRANSFERRED, 4 CLOSED (see {@link #WAITING} ...)
 * @param group the skill group it was routed to
 * @param agent the agent it was assigned to ("" while waiting)
 * @param position place in the group's queue, 1 = next (0 when assigned)
 */
public record OpenedConversation(long conversationId, int state, String group, String agent, long position) {
    /** State: queued. */
    public static final int WAITING = 1;
    /** State: an agent has it. */
    public static final int ASSIGNED = 2;
    /** State: handed to another agent or group. */
    public static final int TRANSFERRED = 3;
    /** State: ended. */
    public static final int CLOSED = 4;
}
