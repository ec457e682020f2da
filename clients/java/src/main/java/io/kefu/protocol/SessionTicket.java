package io.kefu.protocol;

import java.util.Arrays;
import java.util.HexFormat;

/**
 * A resumption ticket as the client keeps it (spec/PROTOCOL.md section 5.6): the suite of the connection that issued
 * it, the opaque ticket, the PSK derived from that connection's resumption secret and the NEW_TICKET nonce, the
 * lifetime, {@code age_add} and the client's clock when the ticket arrived.
 *
 * <p>The PSK is as sensitive as the session keys: {@link #toString()} never shows it (nor the ticket). Immutable
 * (the arrays are copied in and out); safe to share between threads.
 *
 * @param suite the suite of the issuing connection; the ticket is offered only with it
 * @param ticket the opaque ticket, sent back as is
 * @param psk the 32-byte pre-shared key
 * @param lifetimeS seconds the ticket may be used for, from its receipt (1 to 86,400)
 * @param ageAdd the u32 that obfuscates the ticket's age on the wire
 * @param receivedAt the client's clock (seconds, the clock passed to the connection) when NEW_TICKET arrived
 */
public record SessionTicket(Suite suite, byte[] ticket, byte[] psk, long lifetimeS, long ageAdd, double receivedAt) {
    /** Longest lifetime a client accepts: one day (section 5.6). */
    public static final long MAX_LIFETIME_S = 86_400;

    /**
     * A ticket; the arrays are copied.
     *
     * @param suite the suite of the issuing connection
     * @param ticket the opaque ticket
     * @param psk the pre-shared key
     * @param lifetimeS the lifetime in seconds
     * @param ageAdd the age obfuscation value (u32)
     * @param receivedAt the client's clock at receipt, in seconds
     */
    public SessionTicket {
        ticket = ticket.clone();
        psk = psk.clone();
    }

    /**
     * The opaque ticket.
     *
     * @return a copy
     */
    @Override
    public byte[] ticket() {
        return ticket.clone();
    }

    /**
     * The pre-shared key.
     *
     * @return a copy
     */
    @Override
    public byte[] psk() {
        return psk.clone();
    }

    /**
     * Whether the ticket's lifetime has passed.
     *
     * @param now the client's clock, in seconds
     * @return true once {@code now - receivedAt >= lifetimeS}
     */
    public boolean expired(double now) {
        return now - receivedAt >= lifetimeS;
    }

    /**
     * The ticket's obfuscated age at {@code now}: {@code (age_ms + age_add) mod 2^32}.
     *
     * @param now the client's clock, in seconds
     * @return the u32 sent in CLIENT_HELLO
     */
    public long obfuscatedAge(double now) {
        long ageMs = (long) ((now - receivedAt) * 1000);
        return (ageMs + ageAdd) & 0xFFFFFFFFL;
    }

    /**
     * Compares every component, the arrays by content.
     *
     * @param o another object
     * @return true when equal
     */
    @Override
    public boolean equals(Object o) {
        return o instanceof SessionTicket t
                && suite == t.suite
                && Arrays.equals(ticket, t.ticket)
                && Crypto.constantTimeEquals(psk, t.psk)
                && lifetimeS == t.lifetimeS
                && ageAdd == t.ageAdd
                && Double.compare(receivedAt, t.receivedAt) == 0;
    }

    /**
     * A hash of the public components (not the PSK).
     *
     * @return the hash code
     */
    @Override
    public int hashCode() {
        return 31 * (31 * suite.hashCode() + Arrays.hashCode(ticket)) + Long.hashCode(lifetimeS);
    }

    /**
     * The suite, lifetime and the ticket's first bytes; never the PSK.
     *
     * @return a description for logs
     */
    @Override
    public String toString() {
        String head = HexFormat.of().formatHex(ticket, 0, Math.min(4, ticket.length));
        return "SessionTicket[" + suite.label() + ", " + ticket.length + " bytes " + head + "…, lifetime "
                + lifetimeS + " s, received at " + receivedAt + "]";
    }
}
