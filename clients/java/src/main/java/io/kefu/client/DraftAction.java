package io.kefu.client;

/** What an agent does with an AI draft (DRAFT_DECISION, spec section 13.8). */
public enum DraftAction {
    /** Send the draft as it is. */
    APPROVE(1),
    /** Send the agent's edited text instead. */
    EDIT(2),
    /** Drop the draft. */
    REJECT(3);

    private final int code;

    DraftAction(int code) {
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
