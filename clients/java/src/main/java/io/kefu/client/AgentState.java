package io.kefu.client;

/** An agent's status at the service desk (AGENT_STATUS, spec section 13.3); ONLINE agents get conversations. */
public enum AgentState {
    /** Takes conversations. */
    ONLINE(1),
    /** Away: takes none. */
    AWAY(2),
    /** Busy: takes none. */
    BUSY(3),
    /** Offline. */
    OFFLINE(4);

    private final int code;

    AgentState(int code) {
        this.code = code;
    }

    /**
     * The wire value.
     *
     * @return the code
     */
    public int code() {
        return code;
    }
}
