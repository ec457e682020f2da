package io.kefu.protocol;

import java.util.Base64;
import java.util.List;
import java.util.Objects;

/**
 * How a client connects (spec/PROTOCOL.md section 5): the app it authenticates as and how (an app secret or a client
 * signing key), the pinned server keys, the suites it offers in its order of preference, the keepalive it asks for,
 * and optionally a ticket to resume with.
 *
 * <p>A client needs an app secret or a client key even when it holds a ticket: the server may refuse the ticket and
 * fall back to a full handshake. With both, it authenticates with the app secret (as the reference client does).
 * {@link #toString()} never shows the app secret, the client key or the ticket's PSK.
 *
 * <p>Immutable (arrays are copied in and out); safe to share between threads. Build one with {@link #builder}.
 */
public final class ClientConfig {
    /** The keepalive interval a client asks for by default (section 4.6). */
    public static final int DEFAULT_KEEPALIVE_MS = 30_000;
    /** The smallest keepalive interval a server may negotiate. */
    public static final int MIN_KEEPALIVE_MS = 5_000;
    /** The largest keepalive interval a server may negotiate. */
    public static final int MAX_KEEPALIVE_MS = 300_000;

    private final String appId;
    private final Pins pins;
    private final List<Suite> suites;
    private final byte[] appSecret;
    private final SigningKey clientKey;
    private final int keepaliveMs;
    private final SessionTicket ticket;
    private final PskMode pskMode;

    private ClientConfig(Builder b) {
        this.appId = Objects.requireNonNull(b.appId, "appId");
        this.pins = Objects.requireNonNull(b.pins, "pins");
        this.suites = List.copyOf(b.suites);
        this.appSecret = b.appSecret == null ? null : b.appSecret.clone();
        this.clientKey = b.clientKey;
        this.keepaliveMs = b.keepaliveMs;
        this.ticket = b.ticket;
        this.pskMode = b.pskMode;
        if (suites.isEmpty() || suites.size() != suites.stream().distinct().count()) {
            throw new IllegalArgumentException("offer at least one suite, each once");
        }
        if (appSecret == null && clientKey == null) {
            throw new IllegalArgumentException("a client needs an app secret or a client key (tickets can be refused)");
        }
        byte[] id = appId.getBytes(java.nio.charset.StandardCharsets.UTF_8);
        if (id.length == 0 || id.length > 255) {
            throw new IllegalArgumentException("an app id is 1 to 255 bytes of UTF-8");
        }
        if (keepaliveMs < 0 || keepaliveMs > 0xFFFFFFFFL) {
            throw new IllegalArgumentException("keepaliveMs out of range");
        }
        if (pskMode == PskMode.NONE) {
            throw new IllegalArgumentException("pskMode is PSK_ONLY or PSK_WITH_ECDHE (used when a ticket is held)");
        }
    }

    /**
     * A builder.
     *
     * @param appId the app to authenticate as (1 to 255 bytes of UTF-8)
     * @param pins the pinned server keys
     * @return a builder with the defaults: the national suite alone, keepalive 30 s, PSK_ONLY, no ticket
     */
    public static Builder builder(String appId, Pins pins) {
        return new Builder(appId, pins);
    }

    /**
     * A builder holding this configuration's values (to change a few, for example the ticket).
     *
     * @return a new builder
     */
    public Builder toBuilder() {
        Builder b = new Builder(appId, pins).suites(suites).keepaliveMs(keepaliveMs).ticket(ticket).pskMode(pskMode);
        b.appSecret = appSecret == null ? null : appSecret.clone();
        b.clientKey = clientKey;
        return b;
    }

    /**
     * Decodes an app secret as {@code kefu app add} prints it: base64url (RFC 4648 section 5), padding optional,
     * surrounding whitespace ignored.
     *
     * @param text the printed secret
     * @return the secret's bytes
     * @throws IllegalArgumentException if the text is not base64url (the message does not contain the text)
     */
    public static byte[] decodeAppSecret(String text) {
        String s = text.strip();
        while (s.endsWith("=")) {
            s = s.substring(0, s.length() - 1);
        }
        try {
            return Base64.getUrlDecoder().decode(s);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("the app secret is not base64url text");
        }
    }

    /**
     * The app id.
     *
     * @return the app id
     */
    public String appId() {
        return appId;
    }

    /**
     * The pinned server keys.
     *
     * @return the pins
     */
    public Pins pins() {
        return pins;
    }

    /**
     * The offered suites, in order of preference.
     *
     * @return an unmodifiable list
     */
    public List<Suite> suites() {
        return suites;
    }

    /**
     * The app secret.
     *
     * @return a copy, or {@code null} when the client authenticates with a client key
     */
    public byte[] appSecret() {
        return appSecret == null ? null : appSecret.clone();
    }

    /**
     * The client signing key.
     *
     * @return the key, or {@code null}
     */
    public SigningKey clientKey() {
        return clientKey;
    }

    /**
     * The keepalive interval asked for.
     *
     * @return milliseconds
     */
    public int keepaliveMs() {
        return keepaliveMs;
    }

    /**
     * The ticket to resume with.
     *
     * @return the ticket, or {@code null}
     */
    public SessionTicket ticket() {
        return ticket;
    }

    /**
     * How to resume when a ticket is held.
     *
     * @return PSK_ONLY or PSK_WITH_ECDHE
     */
    public PskMode pskMode() {
        return pskMode;
    }

    /**
     * The public parts only.
     *
     * @return a description without secrets
     */
    @Override
    public String toString() {
        return "ClientConfig[app " + appId + ", suites " + suites + ", " + pins + ", auth "
                + (appSecret != null ? "app secret" : "client key " + clientKey) + ", keepalive " + keepaliveMs
                + " ms" + (ticket != null ? ", ticket " + ticket + " " + pskMode : "") + "]";
    }

    /**
     * Builds a {@link ClientConfig}. Not thread-safe.
     */
    public static final class Builder {
        private final String appId;
        private final Pins pins;
        private List<Suite> suites = List.of(Suite.NATIONAL);
        private byte[] appSecret;
        private SigningKey clientKey;
        private int keepaliveMs = DEFAULT_KEEPALIVE_MS;
        private SessionTicket ticket;
        private PskMode pskMode = PskMode.PSK_ONLY;

        private Builder(String appId, Pins pins) {
            this.appId = appId;
            this.pins = pins;
        }

        /**
         * The suites to offer, in order of preference (default: national alone).
         *
         * @param suites the suites
         * @return this builder
         */
        public Builder suites(List<Suite> suites) {
            this.suites = List.copyOf(suites);
            return this;
        }

        /**
         * The suites to offer, in order of preference.
         *
         * @param suites the suites
         * @return this builder
         */
        public Builder suites(Suite... suites) {
            return suites(List.of(suites));
        }

        /**
         * The app secret's bytes (APP_SECRET authentication).
         *
         * @param secret the secret; copied
         * @return this builder
         */
        public Builder appSecret(byte[] secret) {
            this.appSecret = secret == null ? null : secret.clone();
            return this;
        }

        /**
         * The app secret as printed (base64url, padding optional).
         *
         * @param text the printed secret
         * @return this builder
         * @throws IllegalArgumentException if it is not base64url
         */
        public Builder appSecretText(String text) {
            this.appSecret = decodeAppSecret(text);
            return this;
        }

        /**
         * The client signing key (CLIENT_KEY authentication, used when no app secret is set).
         *
         * @param key the key
         * @return this builder
         */
        public Builder clientKey(SigningKey key) {
            this.clientKey = key;
            return this;
        }

        /**
         * The keepalive interval to ask for (default 30,000 ms; the server clamps it).
         *
         * @param ms milliseconds
         * @return this builder
         */
        public Builder keepaliveMs(int ms) {
            this.keepaliveMs = ms;
            return this;
        }

        /**
         * A ticket to resume with (ignored at connect time when expired or for a suite not offered).
         *
         * @param ticket the ticket, or {@code null}
         * @return this builder
         */
        public Builder ticket(SessionTicket ticket) {
            this.ticket = ticket;
            return this;
        }

        /**
         * How to resume (default PSK_ONLY).
         *
         * @param mode PSK_ONLY or PSK_WITH_ECDHE
         * @return this builder
         */
        public Builder pskMode(PskMode mode) {
            this.pskMode = mode;
            return this;
        }

        /**
         * The configuration.
         *
         * @return a new immutable configuration
         * @throws IllegalArgumentException if it is incomplete or inconsistent
         */
        public ClientConfig build() {
            return new ClientConfig(this);
        }
    }
}
