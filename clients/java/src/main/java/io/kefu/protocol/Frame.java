package io.kefu.protocol;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

// GENERATED from kefu.protocol.frames by spec/gen_java_frames.py: do not edit.

/**
 * A frame of protocol version 1 (spec/PROTOCOL.md sections 3 to 6 and 13): one record per frame type, its
 * components the header's {@code request_id} and {@code flags} followed by the body's fields in wire order, named
 * as the spec names them in lowerCamelCase. {@link FrameCodec} encodes and decodes them.
 *
 * <p>Field types: {@code u8} and {@code u16} are {@code int}; {@code u32} and {@code u64} are {@code long}
 * ({@code u64} values are unsigned: one with the top bit set, such as a staff channel id, is a negative
 * {@code long}); {@code opaque} fields are {@code byte[]}; {@code utf8} fields are {@link String}; lists are
 * unmodifiable {@link List}s (copied by the constructor). No component may be null (NullPointerException); value
 * ranges are checked when the frame is encoded (IllegalArgumentException). Every record also has a constructor
 * without {@code requestId} and {@code flags} (both 0). Records holding byte arrays compare them by content in
 * {@code equals}.
 *
 * <p>Thread-safety: the records are immutable, except that byte arrays are neither copied in by the constructors
 * nor out by the accessors, for speed (the decoder gives each frame arrays of its own); treat them as read-only,
 * and a frame may then be shared between threads freely.
 */
public sealed interface Frame {
    /**
     * The frame's type.
     *
     * @return its type, or {@code null} for an {@link Unknown} frame
     */
    FrameType type();

    /**
     * The header's {@code request_id} ({@code u32}, section 3.1).
     *
     * @return 0 to 2^32 - 1
     */
    long requestId();

    /**
     * The header's {@code flags} ({@code u16}, section 3.2).
     *
     * @return 0 to 65535
     */
    int flags();

    /**
     * The header's type byte.
     *
     * @return the wire code of {@link #type()}, or the unknown code of an {@link Unknown} frame
     */
    default int typeCode() {
        return type().code();
    }

    /**
     * RECORD (section 6.3): an AEAD record, whose body is the ciphertext of one or more whole inner frames and the
     * 16-byte tag. Its header has {@code flags} 0 and {@code request_id} 0 and is the AEAD's additional data.
     *
     * @param requestId the header's {@code request_id}, 0 (not checked by a receiver)
     * @param flags the header's {@code flags}, 0 (not checked by a receiver)
     * @param body the ciphertext and tag
     */
    record Record(long requestId, int flags, byte[] body) implements Frame {
        /**
         * Checks that the body is not null.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param body the ciphertext and tag
         */
        public Record {
            Objects.requireNonNull(body, "body");
        }

        /**
         * A RECORD with a zero header.
         *
         * @param body the ciphertext and tag
         */
        public Record(byte[] body) {
            this(0, 0, body);
        }

        @Override
        public FrameType type() {
            return FrameType.RECORD;
        }

        /** Equal when the header fields and the body's bytes are. */
        @Override
        public boolean equals(Object other) {
            return other instanceof Record o && requestId == o.requestId && flags == o.flags
                    && Arrays.equals(body, o.body);
        }

        /** A hash of the header fields and the body's bytes. */
        @Override
        public int hashCode() {
            return Objects.hash(requestId, flags, Arrays.hashCode(body));
        }

        /** The header fields and the body in hex. */
        @Override
        public String toString() {
            return "Record[requestId=" + requestId + ", flags=" + flags + ", body=" + Hex.encode(body) + "]";
        }
    }

    /**
     * A frame of an ignorable type ({@code 0x80}-{@code 0xFF}) that this version does not know (section 3.4):
     * a receiver skips it. Its {@link #type()} is {@code null}; {@link #typeCode()} gives the code.
     *
     * @param requestId the header's {@code request_id}
     * @param flags the header's {@code flags}
     * @param code the type byte, {@code 0x80} to {@code 0xFF}
     * @param body the body, unparsed
     */
    record Unknown(long requestId, int flags, int code, byte[] body) implements Frame {
        /**
         * Checks that the code is ignorable and the body not null.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param code the type byte, {@code 0x80} to {@code 0xFF}
         * @param body the body, unparsed
         */
        public Unknown {
            if (!FrameType.isIgnorable(code)) {
                throw new IllegalArgumentException("not an ignorable type: " + code);
            }
            Objects.requireNonNull(body, "body");
        }

        /**
         * There is no {@link FrameType} for an unknown code.
         *
         * @return {@code null}
         */
        @Override
        public FrameType type() {
            return null;
        }

        @Override
        public int typeCode() {
            return code;
        }

        /** Equal when the header fields, the code and the body's bytes are. */
        @Override
        public boolean equals(Object other) {
            return other instanceof Unknown o && requestId == o.requestId && flags == o.flags && code == o.code
                    && Arrays.equals(body, o.body);
        }

        /** A hash of the header fields, the code and the body's bytes. */
        @Override
        public int hashCode() {
            return Objects.hash(requestId, flags, code, Arrays.hashCode(body));
        }

        /** The header fields, the code and the body in hex. */
        @Override
        public String toString() {
            return "Unknown[requestId=" + requestId + ", flags=" + flags + ", code=" + code + ", body="
                    + Hex.encode(body) + "]";
        }
    }

    /**
     * CLIENT_HELLO (section 5.2). {@code binder} is the last field: it is computed over the frame up to its length
     * byte.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param random {@code random}, {@code opaque[32]}: Fresh random bytes.
     * @param suites {@code suites}, {@code u16 list<u8>}: The offered suites (section 6.1), in the client's order of
     *     preference.
     * @param keyShares {@code key_shares}, {@code KeyShareEntry list<u8>}: For each offered suite: {@code suite u16}
     *     and {@code key opaque&lt;u16&gt;}, the ephemeral public key of that suite's group (65 bytes for 0x00C6, 32
     *     bytes for 0x1301).
     * @param keepaliveMs {@code keepalive_ms}, {@code u32}: Requested keepalive interval (section 4.6).
     * @param pskMode {@code psk_mode}, {@code u8}: 0 NONE (no ticket), 1 PSK_ONLY, 2 PSK_WITH_ECDHE (section 5.6).
     * @param ticket {@code ticket}, {@code opaque<u16>}: The ticket to resume with, as received; empty if none.
     * @param obfuscatedAge {@code obfuscated_age}, {@code u32}: The ticket's obfuscated age (section 5.6); 0 if no
     *     ticket.
     * @param binder {@code binder}, {@code opaque<u8>}: 32 bytes when a ticket is present (section 5.6); empty
     *     otherwise.
     */
    record ClientHello(long requestId, int flags, byte[] random, List<Integer> suites, List<KeyShareEntry> keyShares,
            long keepaliveMs, int pskMode, byte[] ticket, long obfuscatedAge, byte[] binder) implements Frame {

        /**
         * Checks that no component is null and copies the lists; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param random {@code random}
         * @param suites {@code suites}
         * @param keyShares {@code key_shares}
         * @param keepaliveMs {@code keepalive_ms}
         * @param pskMode {@code psk_mode}
         * @param ticket {@code ticket}
         * @param obfuscatedAge {@code obfuscated_age}
         * @param binder {@code binder}
         */
        public ClientHello {
            Objects.requireNonNull(random, "random");
            suites = List.copyOf(suites);
            keyShares = List.copyOf(keyShares);
            Objects.requireNonNull(ticket, "ticket");
            Objects.requireNonNull(binder, "binder");
        }

        /**
         * A CLIENT_HELLO with {@code request_id} 0 and no flags.
         *
         * @param random {@code random}, {@code opaque[32]}: Fresh random bytes.
         * @param suites {@code suites}, {@code u16 list<u8>}: The offered suites (section 6.1), in the client's order
         *     of preference.
         * @param keyShares {@code key_shares}, {@code KeyShareEntry list<u8>}: For each offered suite: {@code suite
         *     u16} and {@code key opaque&lt;u16&gt;}, the ephemeral public key of that suite's group (65 bytes for
         *     0x00C6, 32 bytes for 0x1301).
         * @param keepaliveMs {@code keepalive_ms}, {@code u32}: Requested keepalive interval (section 4.6).
         * @param pskMode {@code psk_mode}, {@code u8}: 0 NONE (no ticket), 1 PSK_ONLY, 2 PSK_WITH_ECDHE (section
         *     5.6).
         * @param ticket {@code ticket}, {@code opaque<u16>}: The ticket to resume with, as received; empty if none.
         * @param obfuscatedAge {@code obfuscated_age}, {@code u32}: The ticket's obfuscated age (section 5.6); 0 if
         *     no ticket.
         * @param binder {@code binder}, {@code opaque<u8>}: 32 bytes when a ticket is present (section 5.6); empty
         *     otherwise.
         */
        public ClientHello(byte[] random, List<Integer> suites, List<KeyShareEntry> keyShares, long keepaliveMs,
                int pskMode, byte[] ticket, long obfuscatedAge, byte[] binder) {
            this(0, 0, random, suites, keyShares, keepaliveMs, pskMode, ticket, obfuscatedAge, binder);
        }

        @Override
        public FrameType type() {
            return FrameType.CLIENT_HELLO;
        }

        /** Equal when every field is, byte arrays compared by content. */
        @Override
        public boolean equals(Object other) {
            return other instanceof ClientHello o
                    && requestId == o.requestId
                    && flags == o.flags
                    && Arrays.equals(random, o.random)
                    && suites.equals(o.suites)
                    && keyShares.equals(o.keyShares)
                    && keepaliveMs == o.keepaliveMs
                    && pskMode == o.pskMode
                    && Arrays.equals(ticket, o.ticket)
                    && obfuscatedAge == o.obfuscatedAge
                    && Arrays.equals(binder, o.binder);
        }

        /** A hash of every field, byte arrays by content. */
        @Override
        public int hashCode() {
            int h = 0;
            h = 31 * h + Objects.hashCode(requestId);
            h = 31 * h + Objects.hashCode(flags);
            h = 31 * h + Arrays.hashCode(random);
            h = 31 * h + Objects.hashCode(suites);
            h = 31 * h + Objects.hashCode(keyShares);
            h = 31 * h + Objects.hashCode(keepaliveMs);
            h = 31 * h + Objects.hashCode(pskMode);
            h = 31 * h + Arrays.hashCode(ticket);
            h = 31 * h + Objects.hashCode(obfuscatedAge);
            h = 31 * h + Arrays.hashCode(binder);
            return h;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "ClientHello["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "random=" + Hex.encode(random) + ", "
                    + "suites=" + suites + ", "
                    + "keyShares=" + keyShares + ", "
                    + "keepaliveMs=" + keepaliveMs + ", "
                    + "pskMode=" + pskMode + ", "
                    + "ticket=" + Hex.encode(ticket) + ", "
                    + "obfuscatedAge=" + obfuscatedAge + ", "
                    + "binder=" + Hex.encode(binder) + "]";
        }
    }

    /**
     * SERVER_HELLO (section 5.3). {@code key_share} is empty when a ticket is accepted in PSK_ONLY mode.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param random {@code random}, {@code opaque[32]}: Fresh random bytes.
     * @param suite {@code suite}, {@code u16}: The chosen suite; one the client offered.
     * @param keyShare {@code key_share}, {@code opaque<u16>}: The server's ephemeral public key for {@code suite};
     *     empty when a ticket is accepted in PSK_ONLY mode.
     * @param pskAccepted {@code psk_accepted}, {@code u8}: 1 when the offered ticket is accepted (a resumed
     *     handshake), 0 otherwise.
     * @param keepaliveMs {@code keepalive_ms}, {@code u32}: The negotiated keepalive interval (section 4.6).
     */
    record ServerHello(long requestId, int flags, byte[] random, int suite, byte[] keyShare, int pskAccepted,
            long keepaliveMs) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param random {@code random}
         * @param suite {@code suite}
         * @param keyShare {@code key_share}
         * @param pskAccepted {@code psk_accepted}
         * @param keepaliveMs {@code keepalive_ms}
         */
        public ServerHello {
            Objects.requireNonNull(random, "random");
            Objects.requireNonNull(keyShare, "keyShare");
        }

        /**
         * A SERVER_HELLO with {@code request_id} 0 and no flags.
         *
         * @param random {@code random}, {@code opaque[32]}: Fresh random bytes.
         * @param suite {@code suite}, {@code u16}: The chosen suite; one the client offered.
         * @param keyShare {@code key_share}, {@code opaque<u16>}: The server's ephemeral public key for {@code
         *     suite}; empty when a ticket is accepted in PSK_ONLY mode.
         * @param pskAccepted {@code psk_accepted}, {@code u8}: 1 when the offered ticket is accepted (a resumed
         *     handshake), 0 otherwise.
         * @param keepaliveMs {@code keepalive_ms}, {@code u32}: The negotiated keepalive interval (section 4.6).
         */
        public ServerHello(byte[] random, int suite, byte[] keyShare, int pskAccepted, long keepaliveMs) {
            this(0, 0, random, suite, keyShare, pskAccepted, keepaliveMs);
        }

        @Override
        public FrameType type() {
            return FrameType.SERVER_HELLO;
        }

        /** Equal when every field is, byte arrays compared by content. */
        @Override
        public boolean equals(Object other) {
            return other instanceof ServerHello o
                    && requestId == o.requestId
                    && flags == o.flags
                    && Arrays.equals(random, o.random)
                    && suite == o.suite
                    && Arrays.equals(keyShare, o.keyShare)
                    && pskAccepted == o.pskAccepted
                    && keepaliveMs == o.keepaliveMs;
        }

        /** A hash of every field, byte arrays by content. */
        @Override
        public int hashCode() {
            int h = 0;
            h = 31 * h + Objects.hashCode(requestId);
            h = 31 * h + Objects.hashCode(flags);
            h = 31 * h + Arrays.hashCode(random);
            h = 31 * h + Objects.hashCode(suite);
            h = 31 * h + Arrays.hashCode(keyShare);
            h = 31 * h + Objects.hashCode(pskAccepted);
            h = 31 * h + Objects.hashCode(keepaliveMs);
            return h;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "ServerHello["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "random=" + Hex.encode(random) + ", "
                    + "suite=" + suite + ", "
                    + "keyShare=" + Hex.encode(keyShare) + ", "
                    + "pskAccepted=" + pskAccepted + ", "
                    + "keepaliveMs=" + keepaliveMs + "]";
        }
    }

    /**
     * SERVER_FINISHED (section 5.4). Encrypted under the server handshake key. Key fields are empty after resumption.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param keyType {@code key_type}, {@code u16}: 1 SM2 or 2 Ed25519 (section 6.4); 0 in a resumed handshake.
     * @param publicKey {@code public_key}, {@code opaque<u16>}: The server's long-term public key: 65 bytes (SM2) or
     *     32 bytes (Ed25519); empty when resumed.
     * @param signature {@code signature}, {@code opaque<u16>}: See section 5.4; empty when resumed.
     * @param verifyData {@code verify_data}, {@code opaque<u8>}: See section 5.4.
     */
    record ServerFinished(long requestId, int flags, int keyType, byte[] publicKey, byte[] signature,
            byte[] verifyData) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param keyType {@code key_type}
         * @param publicKey {@code public_key}
         * @param signature {@code signature}
         * @param verifyData {@code verify_data}
         */
        public ServerFinished {
            Objects.requireNonNull(publicKey, "publicKey");
            Objects.requireNonNull(signature, "signature");
            Objects.requireNonNull(verifyData, "verifyData");
        }

        /**
         * A SERVER_FINISHED with {@code request_id} 0 and no flags.
         *
         * @param keyType {@code key_type}, {@code u16}: 1 SM2 or 2 Ed25519 (section 6.4); 0 in a resumed handshake.
         * @param publicKey {@code public_key}, {@code opaque<u16>}: The server's long-term public key: 65 bytes (SM2)
         *     or 32 bytes (Ed25519); empty when resumed.
         * @param signature {@code signature}, {@code opaque<u16>}: See section 5.4; empty when resumed.
         * @param verifyData {@code verify_data}, {@code opaque<u8>}: See section 5.4.
         */
        public ServerFinished(int keyType, byte[] publicKey, byte[] signature, byte[] verifyData) {
            this(0, 0, keyType, publicKey, signature, verifyData);
        }

        @Override
        public FrameType type() {
            return FrameType.SERVER_FINISHED;
        }

        /** Equal when every field is, byte arrays compared by content. */
        @Override
        public boolean equals(Object other) {
            return other instanceof ServerFinished o
                    && requestId == o.requestId
                    && flags == o.flags
                    && keyType == o.keyType
                    && Arrays.equals(publicKey, o.publicKey)
                    && Arrays.equals(signature, o.signature)
                    && Arrays.equals(verifyData, o.verifyData);
        }

        /** A hash of every field, byte arrays by content. */
        @Override
        public int hashCode() {
            int h = 0;
            h = 31 * h + Objects.hashCode(requestId);
            h = 31 * h + Objects.hashCode(flags);
            h = 31 * h + Objects.hashCode(keyType);
            h = 31 * h + Arrays.hashCode(publicKey);
            h = 31 * h + Arrays.hashCode(signature);
            h = 31 * h + Arrays.hashCode(verifyData);
            return h;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "ServerFinished["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "keyType=" + keyType + ", "
                    + "publicKey=" + Hex.encode(publicKey) + ", "
                    + "signature=" + Hex.encode(signature) + ", "
                    + "verifyData=" + Hex.encode(verifyData) + "]";
        }
    }

    /**
     * CLIENT_FINISHED (section 5.5). Encrypted under the client handshake key.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param appId {@code app_id}, {@code utf8<u8>}: The app the client authenticates as; empty in a resumed
     *     handshake.
     * @param authMode {@code auth_mode}, {@code u8}: 0 RESUMED, 1 APP_SECRET, 2 CLIENT_KEY.
     * @param keyType {@code key_type}, {@code u16}: CLIENT_KEY: 1 SM2 or 2 Ed25519; otherwise 0.
     * @param publicKey {@code public_key}, {@code opaque<u16>}: CLIENT_KEY: the client's public key; otherwise empty.
     * @param proof {@code proof}, {@code opaque<u16>}: APP_SECRET: 32 bytes; CLIENT_KEY: a signature; RESUMED: empty.
     * @param verifyData {@code verify_data}, {@code opaque<u8>}: See section 5.5.
     */
    record ClientFinished(long requestId, int flags, String appId, int authMode, int keyType, byte[] publicKey,
            byte[] proof, byte[] verifyData) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param appId {@code app_id}
         * @param authMode {@code auth_mode}
         * @param keyType {@code key_type}
         * @param publicKey {@code public_key}
         * @param proof {@code proof}
         * @param verifyData {@code verify_data}
         */
        public ClientFinished {
            Objects.requireNonNull(appId, "appId");
            Objects.requireNonNull(publicKey, "publicKey");
            Objects.requireNonNull(proof, "proof");
            Objects.requireNonNull(verifyData, "verifyData");
        }

        /**
         * A CLIENT_FINISHED with {@code request_id} 0 and no flags.
         *
         * @param appId {@code app_id}, {@code utf8<u8>}: The app the client authenticates as; empty in a resumed
         *     handshake.
         * @param authMode {@code auth_mode}, {@code u8}: 0 RESUMED, 1 APP_SECRET, 2 CLIENT_KEY.
         * @param keyType {@code key_type}, {@code u16}: CLIENT_KEY: 1 SM2 or 2 Ed25519; otherwise 0.
         * @param publicKey {@code public_key}, {@code opaque<u16>}: CLIENT_KEY: the client's public key; otherwise
         *     empty.
         * @param proof {@code proof}, {@code opaque<u16>}: APP_SECRET: 32 bytes; CLIENT_KEY: a signature; RESUMED:
         *     empty.
         * @param verifyData {@code verify_data}, {@code opaque<u8>}: See section 5.5.
         */
        public ClientFinished(String appId, int authMode, int keyType, byte[] publicKey, byte[] proof,
                byte[] verifyData) {
            this(0, 0, appId, authMode, keyType, publicKey, proof, verifyData);
        }

        @Override
        public FrameType type() {
            return FrameType.CLIENT_FINISHED;
        }

        /** Equal when every field is, byte arrays compared by content. */
        @Override
        public boolean equals(Object other) {
            return other instanceof ClientFinished o
                    && requestId == o.requestId
                    && flags == o.flags
                    && appId.equals(o.appId)
                    && authMode == o.authMode
                    && keyType == o.keyType
                    && Arrays.equals(publicKey, o.publicKey)
                    && Arrays.equals(proof, o.proof)
                    && Arrays.equals(verifyData, o.verifyData);
        }

        /** A hash of every field, byte arrays by content. */
        @Override
        public int hashCode() {
            int h = 0;
            h = 31 * h + Objects.hashCode(requestId);
            h = 31 * h + Objects.hashCode(flags);
            h = 31 * h + Objects.hashCode(appId);
            h = 31 * h + Objects.hashCode(authMode);
            h = 31 * h + Objects.hashCode(keyType);
            h = 31 * h + Arrays.hashCode(publicKey);
            h = 31 * h + Arrays.hashCode(proof);
            h = 31 * h + Arrays.hashCode(verifyData);
            return h;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "ClientFinished["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "appId=" + appId + ", "
                    + "authMode=" + authMode + ", "
                    + "keyType=" + keyType + ", "
                    + "publicKey=" + Hex.encode(publicKey) + ", "
                    + "proof=" + Hex.encode(proof) + ", "
                    + "verifyData=" + Hex.encode(verifyData) + "]";
        }
    }

    /**
     * NEW_TICKET (section 5.6). A single-use resumption ticket, opaque to the client.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param lifetimeS {@code lifetime_s}, {@code u32}: Seconds the ticket may be used for, counted from its receipt:
     *     1 to {@code MAX_TICKET_LIFETIME_S} (86 400).
     * @param ageAdd {@code age_add}, {@code u32}: A random value that hides the ticket's age on the wire.
     * @param nonce {@code nonce}, {@code opaque<u8>}: Input to the PSK derivation; 12 bytes from the reference
     *     server.
     * @param ticket {@code ticket}, {@code opaque<u16>}: Opaque to the client: sent back as is.
     */
    record NewTicket(long requestId, int flags, long lifetimeS, long ageAdd, byte[] nonce,
            byte[] ticket) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param lifetimeS {@code lifetime_s}
         * @param ageAdd {@code age_add}
         * @param nonce {@code nonce}
         * @param ticket {@code ticket}
         */
        public NewTicket {
            Objects.requireNonNull(nonce, "nonce");
            Objects.requireNonNull(ticket, "ticket");
        }

        /**
         * A NEW_TICKET with {@code request_id} 0 and no flags.
         *
         * @param lifetimeS {@code lifetime_s}, {@code u32}: Seconds the ticket may be used for, counted from its
         *     receipt: 1 to {@code MAX_TICKET_LIFETIME_S} (86 400).
         * @param ageAdd {@code age_add}, {@code u32}: A random value that hides the ticket's age on the wire.
         * @param nonce {@code nonce}, {@code opaque<u8>}: Input to the PSK derivation; 12 bytes from the reference
         *     server.
         * @param ticket {@code ticket}, {@code opaque<u16>}: Opaque to the client: sent back as is.
         */
        public NewTicket(long lifetimeS, long ageAdd, byte[] nonce, byte[] ticket) {
            this(0, 0, lifetimeS, ageAdd, nonce, ticket);
        }

        @Override
        public FrameType type() {
            return FrameType.NEW_TICKET;
        }

        /** Equal when every field is, byte arrays compared by content. */
        @Override
        public boolean equals(Object other) {
            return other instanceof NewTicket o
                    && requestId == o.requestId
                    && flags == o.flags
                    && lifetimeS == o.lifetimeS
                    && ageAdd == o.ageAdd
                    && Arrays.equals(nonce, o.nonce)
                    && Arrays.equals(ticket, o.ticket);
        }

        /** A hash of every field, byte arrays by content. */
        @Override
        public int hashCode() {
            int h = 0;
            h = 31 * h + Objects.hashCode(requestId);
            h = 31 * h + Objects.hashCode(flags);
            h = 31 * h + Objects.hashCode(lifetimeS);
            h = 31 * h + Objects.hashCode(ageAdd);
            h = 31 * h + Arrays.hashCode(nonce);
            h = 31 * h + Arrays.hashCode(ticket);
            return h;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "NewTicket["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "lifetimeS=" + lifetimeS + ", "
                    + "ageAdd=" + ageAdd + ", "
                    + "nonce=" + Hex.encode(nonce) + ", "
                    + "ticket=" + Hex.encode(ticket) + "]";
        }
    }

    /**
     * KEY_UPDATE (section 6.4). The sender's next record uses its next traffic key.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param updateRequested {@code update_requested}, {@code u8}: 1: the sender asks the peer to update its own
     *     sending key too. 0: no request.
     */
    record KeyUpdate(long requestId, int flags, int updateRequested) implements Frame {

        /**
         * A KEY_UPDATE with {@code request_id} 0 and no flags.
         *
         * @param updateRequested {@code update_requested}, {@code u8}: 1: the sender asks the peer to update its own
         *     sending key too. 0: no request.
         */
        public KeyUpdate(int updateRequested) {
            this(0, 0, updateRequested);
        }

        @Override
        public FrameType type() {
            return FrameType.KEY_UPDATE;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "KeyUpdate["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "updateRequested=" + updateRequested + "]";
        }
    }

    /**
     * SEND (section 4.1). A client submits a message; idempotent on (sender, client_msg_id).
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param clientMsgId {@code client_msg_id}, {@code opaque[16]}: Chosen by the client, unique among all messages
     *     of this sender (a random 128-bit value, e.g. a UUID). Makes SEND idempotent (section 4.10).
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The conversation to post to.
     * @param contentType {@code content_type}, {@code u16}: 1 TEXT, 2 JSON, 3 BINARY, 4 EVENT (section 4.1); other
     *     values are passed through.
     * @param body {@code body}, {@code opaque<u32>}: The message, {@code n} bytes; the frame limit bounds it to a
     *     little under 1 MiB.
     * @param metadata {@code metadata}, {@code MetaEntry list<u8>}: Up to 255 pairs of {@code key utf8&lt;u8&gt;} and
     *     {@code value opaque&lt;u16&gt;}; empty list if none.
     */
    record Send(long requestId, int flags, byte[] clientMsgId, long conversationId, int contentType, byte[] body,
            List<MetaEntry> metadata) implements Frame {

        /**
         * Checks that no component is null and copies the lists; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param clientMsgId {@code client_msg_id}
         * @param conversationId {@code conversation_id}
         * @param contentType {@code content_type}
         * @param body {@code body}
         * @param metadata {@code metadata}
         */
        public Send {
            Objects.requireNonNull(clientMsgId, "clientMsgId");
            Objects.requireNonNull(body, "body");
            metadata = List.copyOf(metadata);
        }

        /**
         * A SEND with {@code request_id} 0 and no flags.
         *
         * @param clientMsgId {@code client_msg_id}, {@code opaque[16]}: Chosen by the client, unique among all
         *     messages of this sender (a random 128-bit value, e.g. a UUID). Makes SEND idempotent (section 4.10).
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The conversation to post to.
         * @param contentType {@code content_type}, {@code u16}: 1 TEXT, 2 JSON, 3 BINARY, 4 EVENT (section 4.1);
         *     other values are passed through.
         * @param body {@code body}, {@code opaque<u32>}: The message, {@code n} bytes; the frame limit bounds it to a
         *     little under 1 MiB.
         * @param metadata {@code metadata}, {@code MetaEntry list<u8>}: Up to 255 pairs of {@code key utf8&lt;u8&gt;}
         *     and {@code value opaque&lt;u16&gt;}; empty list if none.
         */
        public Send(byte[] clientMsgId, long conversationId, int contentType, byte[] body, List<MetaEntry> metadata) {
            this(0, 0, clientMsgId, conversationId, contentType, body, metadata);
        }

        @Override
        public FrameType type() {
            return FrameType.SEND;
        }

        /** Equal when every field is, byte arrays compared by content. */
        @Override
        public boolean equals(Object other) {
            return other instanceof Send o
                    && requestId == o.requestId
                    && flags == o.flags
                    && Arrays.equals(clientMsgId, o.clientMsgId)
                    && conversationId == o.conversationId
                    && contentType == o.contentType
                    && Arrays.equals(body, o.body)
                    && metadata.equals(o.metadata);
        }

        /** A hash of every field, byte arrays by content. */
        @Override
        public int hashCode() {
            int h = 0;
            h = 31 * h + Objects.hashCode(requestId);
            h = 31 * h + Objects.hashCode(flags);
            h = 31 * h + Arrays.hashCode(clientMsgId);
            h = 31 * h + Objects.hashCode(conversationId);
            h = 31 * h + Objects.hashCode(contentType);
            h = 31 * h + Arrays.hashCode(body);
            h = 31 * h + Objects.hashCode(metadata);
            return h;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Send["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "clientMsgId=" + Hex.encode(clientMsgId) + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "contentType=" + contentType + ", "
                    + "body=" + Hex.encode(body) + ", "
                    + "metadata=" + metadata + "]";
        }
    }

    /**
     * SEND_ACK (section 4.2). The message is durable (status OK) or refused (an error code).
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param clientMsgId {@code client_msg_id}, {@code opaque[16]}: The SEND being answered.
     * @param status {@code status}, {@code u16}: 0 (OK): the message is durably stored. Otherwise an error code of
     *     section 9: not stored.
     * @param serverMsgId {@code server_msg_id}, {@code u64} (unsigned): The server's identifier of the stored
     *     message.
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned): Its conversation.
     * @param seq {@code seq}, {@code u64} (unsigned): Its sequence number in the conversation (section 4.10).
     * @param timestampMs {@code timestamp_ms}, {@code u64} (unsigned): When the server stored it, in milliseconds
     *     since 1970-01-01T00:00:00Z.
     */
    record SendAck(long requestId, int flags, byte[] clientMsgId, int status, long serverMsgId, long conversationId,
            long seq, long timestampMs) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param clientMsgId {@code client_msg_id}
         * @param status {@code status}
         * @param serverMsgId {@code server_msg_id}
         * @param conversationId {@code conversation_id}
         * @param seq {@code seq}
         * @param timestampMs {@code timestamp_ms}
         */
        public SendAck {
            Objects.requireNonNull(clientMsgId, "clientMsgId");
        }

        /**
         * A SEND_ACK with {@code request_id} 0 and no flags.
         *
         * @param clientMsgId {@code client_msg_id}, {@code opaque[16]}: The SEND being answered.
         * @param status {@code status}, {@code u16}: 0 (OK): the message is durably stored. Otherwise an error code
         *     of section 9: not stored.
         * @param serverMsgId {@code server_msg_id}, {@code u64} (unsigned): The server's identifier of the stored
         *     message.
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned): Its conversation.
         * @param seq {@code seq}, {@code u64} (unsigned): Its sequence number in the conversation (section 4.10).
         * @param timestampMs {@code timestamp_ms}, {@code u64} (unsigned): When the server stored it, in milliseconds
         *     since 1970-01-01T00:00:00Z.
         */
        public SendAck(byte[] clientMsgId, int status, long serverMsgId, long conversationId, long seq,
                long timestampMs) {
            this(0, 0, clientMsgId, status, serverMsgId, conversationId, seq, timestampMs);
        }

        @Override
        public FrameType type() {
            return FrameType.SEND_ACK;
        }

        /** Equal when every field is, byte arrays compared by content. */
        @Override
        public boolean equals(Object other) {
            return other instanceof SendAck o
                    && requestId == o.requestId
                    && flags == o.flags
                    && Arrays.equals(clientMsgId, o.clientMsgId)
                    && status == o.status
                    && serverMsgId == o.serverMsgId
                    && conversationId == o.conversationId
                    && seq == o.seq
                    && timestampMs == o.timestampMs;
        }

        /** A hash of every field, byte arrays by content. */
        @Override
        public int hashCode() {
            int h = 0;
            h = 31 * h + Objects.hashCode(requestId);
            h = 31 * h + Objects.hashCode(flags);
            h = 31 * h + Arrays.hashCode(clientMsgId);
            h = 31 * h + Objects.hashCode(status);
            h = 31 * h + Objects.hashCode(serverMsgId);
            h = 31 * h + Objects.hashCode(conversationId);
            h = 31 * h + Objects.hashCode(seq);
            h = 31 * h + Objects.hashCode(timestampMs);
            return h;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "SendAck["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "clientMsgId=" + Hex.encode(clientMsgId) + ", "
                    + "status=" + status + ", "
                    + "serverMsgId=" + Long.toUnsignedString(serverMsgId) + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "seq=" + Long.toUnsignedString(seq) + ", "
                    + "timestampMs=" + Long.toUnsignedString(timestampMs) + "]";
        }
    }

    /**
     * DELIVER (section 4.3). One message of a conversation, in sequence order.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The conversation.
     * @param seq {@code seq}, {@code u64} (unsigned): The message's sequence number in the conversation.
     * @param serverMsgId {@code server_msg_id}, {@code u64} (unsigned): As in SEND_ACK.
     * @param timestampMs {@code timestamp_ms}, {@code u64} (unsigned): As in SEND_ACK.
     * @param clientMsgId {@code client_msg_id}, {@code opaque[16]}: The sender's {@code client_msg_id}, so that a
     *     sender can recognise its own messages.
     * @param contentType {@code content_type}, {@code u16}: As sent: 1 TEXT, 2 JSON, 3 BINARY, 4 EVENT (section 4.1),
     *     or another value.
     * @param sender {@code sender}, {@code utf8<u8>}: The sender's identity as the server names it.
     * @param body {@code body}, {@code opaque<u32>}: As sent.
     * @param metadata {@code metadata}, {@code MetaEntry list<u8>}: As sent.
     */
    record Deliver(long requestId, int flags, long conversationId, long seq, long serverMsgId, long timestampMs,
            byte[] clientMsgId, int contentType, String sender, byte[] body,
            List<MetaEntry> metadata) implements Frame {

        /**
         * Checks that no component is null and copies the lists; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param conversationId {@code conversation_id}
         * @param seq {@code seq}
         * @param serverMsgId {@code server_msg_id}
         * @param timestampMs {@code timestamp_ms}
         * @param clientMsgId {@code client_msg_id}
         * @param contentType {@code content_type}
         * @param sender {@code sender}
         * @param body {@code body}
         * @param metadata {@code metadata}
         */
        public Deliver {
            Objects.requireNonNull(clientMsgId, "clientMsgId");
            Objects.requireNonNull(sender, "sender");
            Objects.requireNonNull(body, "body");
            metadata = List.copyOf(metadata);
        }

        /**
         * A DELIVER with {@code request_id} 0 and no flags.
         *
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The conversation.
         * @param seq {@code seq}, {@code u64} (unsigned): The message's sequence number in the conversation.
         * @param serverMsgId {@code server_msg_id}, {@code u64} (unsigned): As in SEND_ACK.
         * @param timestampMs {@code timestamp_ms}, {@code u64} (unsigned): As in SEND_ACK.
         * @param clientMsgId {@code client_msg_id}, {@code opaque[16]}: The sender's {@code client_msg_id}, so that a
         *     sender can recognise its own messages.
         * @param contentType {@code content_type}, {@code u16}: As sent: 1 TEXT, 2 JSON, 3 BINARY, 4 EVENT (section
         *     4.1), or another value.
         * @param sender {@code sender}, {@code utf8<u8>}: The sender's identity as the server names it.
         * @param body {@code body}, {@code opaque<u32>}: As sent.
         * @param metadata {@code metadata}, {@code MetaEntry list<u8>}: As sent.
         */
        public Deliver(long conversationId, long seq, long serverMsgId, long timestampMs, byte[] clientMsgId,
                int contentType, String sender, byte[] body, List<MetaEntry> metadata) {
            this(0, 0, conversationId, seq, serverMsgId, timestampMs, clientMsgId, contentType, sender, body, metadata);
        }

        @Override
        public FrameType type() {
            return FrameType.DELIVER;
        }

        /** Equal when every field is, byte arrays compared by content. */
        @Override
        public boolean equals(Object other) {
            return other instanceof Deliver o
                    && requestId == o.requestId
                    && flags == o.flags
                    && conversationId == o.conversationId
                    && seq == o.seq
                    && serverMsgId == o.serverMsgId
                    && timestampMs == o.timestampMs
                    && Arrays.equals(clientMsgId, o.clientMsgId)
                    && contentType == o.contentType
                    && sender.equals(o.sender)
                    && Arrays.equals(body, o.body)
                    && metadata.equals(o.metadata);
        }

        /** A hash of every field, byte arrays by content. */
        @Override
        public int hashCode() {
            int h = 0;
            h = 31 * h + Objects.hashCode(requestId);
            h = 31 * h + Objects.hashCode(flags);
            h = 31 * h + Objects.hashCode(conversationId);
            h = 31 * h + Objects.hashCode(seq);
            h = 31 * h + Objects.hashCode(serverMsgId);
            h = 31 * h + Objects.hashCode(timestampMs);
            h = 31 * h + Arrays.hashCode(clientMsgId);
            h = 31 * h + Objects.hashCode(contentType);
            h = 31 * h + Objects.hashCode(sender);
            h = 31 * h + Arrays.hashCode(body);
            h = 31 * h + Objects.hashCode(metadata);
            return h;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Deliver["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "seq=" + Long.toUnsignedString(seq) + ", "
                    + "serverMsgId=" + Long.toUnsignedString(serverMsgId) + ", "
                    + "timestampMs=" + Long.toUnsignedString(timestampMs) + ", "
                    + "clientMsgId=" + Hex.encode(clientMsgId) + ", "
                    + "contentType=" + contentType + ", "
                    + "sender=" + sender + ", "
                    + "body=" + Hex.encode(body) + ", "
                    + "metadata=" + metadata + "]";
        }
    }

    /**
     * DELIVER_ACK (section 4.4). Cumulative acknowledgements, one per conversation.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param acks {@code acks}, {@code AckEntry list<u16>}: {@code k} pairs ({@code conversation_id u64}, {@code seq
     *     u64}).
     */
    record DeliverAck(long requestId, int flags, List<AckEntry> acks) implements Frame {

        /**
         * Checks that no component is null and copies the lists; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param acks {@code acks}
         */
        public DeliverAck {
            acks = List.copyOf(acks);
        }

        /**
         * A DELIVER_ACK with {@code request_id} 0 and no flags.
         *
         * @param acks {@code acks}, {@code AckEntry list<u16>}: {@code k} pairs ({@code conversation_id u64}, {@code
         *     seq u64}).
         */
        public DeliverAck(List<AckEntry> acks) {
            this(0, 0, acks);
        }

        @Override
        public FrameType type() {
            return FrameType.DELIVER_ACK;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "DeliverAck["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "acks=" + acks + "]";
        }
    }

    /**
     * SYNC (section 4.5). Send again every message with after_seq &lt; seq &lt;= until_seq (0 = latest).
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The conversation; 0: every conversation
     *     of the client's identity.
     * @param afterSeq {@code after_seq}, {@code u64} (unsigned): Send messages with {@code seq} &gt; {@code
     *     after_seq} (0: from the first message).
     * @param untilSeq {@code until_seq}, {@code u64} (unsigned): 0: resume the conversation's live stream; otherwise
     *     fetch messages with {@code seq} &lt;= {@code until_seq} once.
     * @param limit {@code limit}, {@code u32}: Fetch only: the most messages wanted in answer, 0 for the server's
     *     cap; the server applies its own cap.
     */
    record Sync(long requestId, int flags, long conversationId, long afterSeq, long untilSeq,
            long limit) implements Frame {

        /**
         * A SYNC with {@code request_id} 0 and no flags.
         *
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The conversation; 0: every
         *     conversation of the client's identity.
         * @param afterSeq {@code after_seq}, {@code u64} (unsigned): Send messages with {@code seq} &gt; {@code
         *     after_seq} (0: from the first message).
         * @param untilSeq {@code until_seq}, {@code u64} (unsigned): 0: resume the conversation's live stream;
         *     otherwise fetch messages with {@code seq} &lt;= {@code until_seq} once.
         * @param limit {@code limit}, {@code u32}: Fetch only: the most messages wanted in answer, 0 for the server's
         *     cap; the server applies its own cap.
         */
        public Sync(long conversationId, long afterSeq, long untilSeq, long limit) {
            this(0, 0, conversationId, afterSeq, untilSeq, limit);
        }

        @Override
        public FrameType type() {
            return FrameType.SYNC;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Sync["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "afterSeq=" + Long.toUnsignedString(afterSeq) + ", "
                    + "untilSeq=" + Long.toUnsignedString(untilSeq) + ", "
                    + "limit=" + limit + "]";
        }
    }

    /**
     * SYNC_DONE (section 4.5). The end of one SYNC's DELIVERs; {@code more} = 1 when {@code limit} cut it short.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The {@code conversation_id} of the SYNC.
     * @param lastSeq {@code last_seq}, {@code u64} (unsigned): Depends on the form (section 4.5).
     * @param more {@code more}, {@code u8}: 1 when not everything asked for has been sent yet (section 4.5). Else 0.
     */
    record SyncDone(long requestId, int flags, long conversationId, long lastSeq, int more) implements Frame {

        /**
         * A SYNC_DONE with {@code request_id} 0 and no flags.
         *
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The {@code conversation_id} of the
         *     SYNC.
         * @param lastSeq {@code last_seq}, {@code u64} (unsigned): Depends on the form (section 4.5).
         * @param more {@code more}, {@code u8}: 1 when not everything asked for has been sent yet (section 4.5). Else
         *     0.
         */
        public SyncDone(long conversationId, long lastSeq, int more) {
            this(0, 0, conversationId, lastSeq, more);
        }

        @Override
        public FrameType type() {
            return FrameType.SYNC_DONE;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "SyncDone["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "lastSeq=" + Long.toUnsignedString(lastSeq) + ", "
                    + "more=" + more + "]";
        }
    }

    /**
     * PING (section 4.6). Keepalive probe; the peer answers PONG with the same opaque value.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param opaque {@code opaque}, {@code u64} (unsigned): Any value (the reference client uses a random one); PONG
     *     returns the PING's value.
     */
    record Ping(long requestId, int flags, long opaque) implements Frame {

        /**
         * A PING with {@code request_id} 0 and no flags.
         *
         * @param opaque {@code opaque}, {@code u64} (unsigned): Any value (the reference client uses a random one);
         *     PONG returns the PING's value.
         */
        public Ping(long opaque) {
            this(0, 0, opaque);
        }

        @Override
        public FrameType type() {
            return FrameType.PING;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Ping["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "opaque=" + Long.toUnsignedString(opaque) + "]";
        }
    }

    /**
     * PONG (section 4.6).
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param opaque {@code opaque}, {@code u64} (unsigned): Any value (the reference client uses a random one); PONG
     *     returns the PING's value.
     */
    record Pong(long requestId, int flags, long opaque) implements Frame {

        /**
         * A PONG with {@code request_id} 0 and no flags.
         *
         * @param opaque {@code opaque}, {@code u64} (unsigned): Any value (the reference client uses a random one);
         *     PONG returns the PING's value.
         */
        public Pong(long opaque) {
            this(0, 0, opaque);
        }

        @Override
        public FrameType type() {
            return FrameType.PONG;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Pong["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "opaque=" + Long.toUnsignedString(opaque) + "]";
        }
    }

    /**
     * ERROR (section 4.7). An error code (spec/errors.toml) and a human-readable reason.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param code {@code code}, {@code u16}: An error code of section 9.
     * @param reason {@code reason}, {@code utf8<u16>}: Human-readable detail for logs; MUST NOT be parsed. The
     *     reference implementation sends at most 200 characters.
     */
    record Error(long requestId, int flags, int code, String reason) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param code {@code code}
         * @param reason {@code reason}
         */
        public Error {
            Objects.requireNonNull(reason, "reason");
        }

        /**
         * A ERROR with {@code request_id} 0 and no flags.
         *
         * @param code {@code code}, {@code u16}: An error code of section 9.
         * @param reason {@code reason}, {@code utf8<u16>}: Human-readable detail for logs; MUST NOT be parsed. The
         *     reference implementation sends at most 200 characters.
         */
        public Error(int code, String reason) {
            this(0, 0, code, reason);
        }

        @Override
        public FrameType type() {
            return FrameType.ERROR;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Error["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "code=" + code + ", "
                    + "reason=" + reason + "]";
        }
    }

    /**
     * GOAWAY (section 4.8). The server is draining; reconnect after the delay with the given backoff.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param code {@code code}, {@code u16}: Why: SHUTTING_DOWN or OVERLOADED, as a rule.
     * @param reconnectDelayMs {@code reconnect_delay_ms}, {@code u32}: How long to wait before the first reconnection
     *     attempt.
     * @param backoffInitialMs {@code backoff_initial_ms}, {@code u32}: First backoff step if reconnecting fails.
     * @param backoffMaxMs {@code backoff_max_ms}, {@code u32}: Upper bound of the backoff.
     * @param jitterPermille {@code jitter_permille}, {@code u16}: Random spread of every wait, in thousandths (200 =
     *     ±20 %).
     * @param reason {@code reason}, {@code utf8<u16>}: Human-readable detail.
     */
    record Goaway(long requestId, int flags, int code, long reconnectDelayMs, long backoffInitialMs,
            long backoffMaxMs, int jitterPermille, String reason) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param code {@code code}
         * @param reconnectDelayMs {@code reconnect_delay_ms}
         * @param backoffInitialMs {@code backoff_initial_ms}
         * @param backoffMaxMs {@code backoff_max_ms}
         * @param jitterPermille {@code jitter_permille}
         * @param reason {@code reason}
         */
        public Goaway {
            Objects.requireNonNull(reason, "reason");
        }

        /**
         * A GOAWAY with {@code request_id} 0 and no flags.
         *
         * @param code {@code code}, {@code u16}: Why: SHUTTING_DOWN or OVERLOADED, as a rule.
         * @param reconnectDelayMs {@code reconnect_delay_ms}, {@code u32}: How long to wait before the first
         *     reconnection attempt.
         * @param backoffInitialMs {@code backoff_initial_ms}, {@code u32}: First backoff step if reconnecting fails.
         * @param backoffMaxMs {@code backoff_max_ms}, {@code u32}: Upper bound of the backoff.
         * @param jitterPermille {@code jitter_permille}, {@code u16}: Random spread of every wait, in thousandths
         *     (200 = ±20 %).
         * @param reason {@code reason}, {@code utf8<u16>}: Human-readable detail.
         */
        public Goaway(int code, long reconnectDelayMs, long backoffInitialMs, long backoffMaxMs, int jitterPermille,
                String reason) {
            this(0, 0, code, reconnectDelayMs, backoffInitialMs, backoffMaxMs, jitterPermille, reason);
        }

        @Override
        public FrameType type() {
            return FrameType.GOAWAY;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Goaway["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "code=" + code + ", "
                    + "reconnectDelayMs=" + reconnectDelayMs + ", "
                    + "backoffInitialMs=" + backoffInitialMs + ", "
                    + "backoffMaxMs=" + backoffMaxMs + ", "
                    + "jitterPermille=" + jitterPermille + ", "
                    + "reason=" + reason + "]";
        }
    }

    /**
     * CLOSE (section 4.9). The sender will send nothing more (a clean close, like TLS close_notify).
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param code {@code code}, {@code u16}: OK (0) for a normal close; otherwise why (for example SHUTTING_DOWN).
     * @param reason {@code reason}, {@code utf8<u16>}: Human-readable detail.
     */
    record Close(long requestId, int flags, int code, String reason) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param code {@code code}
         * @param reason {@code reason}
         */
        public Close {
            Objects.requireNonNull(reason, "reason");
        }

        /**
         * A CLOSE with {@code request_id} 0 and no flags.
         *
         * @param code {@code code}, {@code u16}: OK (0) for a normal close; otherwise why (for example
         *     SHUTTING_DOWN).
         * @param reason {@code reason}, {@code utf8<u16>}: Human-readable detail.
         */
        public Close(int code, String reason) {
            this(0, 0, code, reason);
        }

        @Override
        public FrameType type() {
            return FrameType.CLOSE;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Close["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "code=" + code + ", "
                    + "reason=" + reason + "]";
        }
    }

    /**
     * AGENT_STATUS (section 13.3). An agent sets its own status (AgentState); answered by RESULT.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param status {@code status}, {@code u8}: 1 online, 2 away, 3 busy, 4 offline.
     */
    record AgentStatus(long requestId, int flags, int status) implements Frame {

        /**
         * A AGENT_STATUS with {@code request_id} 0 and no flags.
         *
         * @param status {@code status}, {@code u8}: 1 online, 2 away, 3 busy, 4 offline.
         */
        public AgentStatus(int status) {
            this(0, 0, status);
        }

        @Override
        public FrameType type() {
            return FrameType.AGENT_STATUS;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "AgentStatus["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "status=" + status + "]";
        }
    }

    /**
     * OPEN_CONVERSATION (section 13.4). A visitor (or an integration, for {@code customer}) asks for service;
     * answered by OPENED. Idempotent on (opener, customer, client_ref): a repeat gets the same conversation.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param clientRef {@code client_ref}, {@code opaque[16]}: Chosen by the client; (opener, customer, client_ref)
     *     makes OPEN idempotent: a repeat gets OPENED for the same conversation.
     * @param customer {@code customer}, {@code utf8<u8>}: An integration's customer, printable text (required for an
     *     integration, empty for anyone else).
     * @param group {@code group}, {@code utf8<u8>}: A group of the opener's tenant to ask for; empty for the tenant's
     *     default group.
     * @param attributes {@code attributes}, {@code MetaEntry list<u8>}: At most 32 pairs; values UTF-8, at most 256
     *     bytes each. {@code channel}, {@code vip} (an integer) and {@code language} have a meaning for routing
     *     rules; others are passed to them as strings.
     * @param firstMessage {@code first_message}, {@code opaque<u32>}: Optional UTF-8 text stored as the visitor's
     *     first message (seq 2, after {@code opened}); routing waits up to {@code [service] sentiment_wait_ms} for
     *     its sentiment.
     */
    record OpenConversation(long requestId, int flags, byte[] clientRef, String customer, String group,
            List<MetaEntry> attributes, byte[] firstMessage) implements Frame {

        /**
         * Checks that no component is null and copies the lists; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param clientRef {@code client_ref}
         * @param customer {@code customer}
         * @param group {@code group}
         * @param attributes {@code attributes}
         * @param firstMessage {@code first_message}
         */
        public OpenConversation {
            Objects.requireNonNull(clientRef, "clientRef");
            Objects.requireNonNull(customer, "customer");
            Objects.requireNonNull(group, "group");
            attributes = List.copyOf(attributes);
            Objects.requireNonNull(firstMessage, "firstMessage");
        }

        /**
         * A OPEN_CONVERSATION with {@code request_id} 0 and no flags.
         *
         * @param clientRef {@code client_ref}, {@code opaque[16]}: Chosen by the client; (opener, customer,
         *     client_ref) makes OPEN idempotent: a repeat gets OPENED for the same conversation.
         * @param customer {@code customer}, {@code utf8<u8>}: An integration's customer, printable text (required for
         *     an integration, empty for anyone else).
         * @param group {@code group}, {@code utf8<u8>}: A group of the opener's tenant to ask for; empty for the
         *     tenant's default group.
         * @param attributes {@code attributes}, {@code MetaEntry list<u8>}: At most 32 pairs; values UTF-8, at most
         *     256 bytes each. {@code channel}, {@code vip} (an integer) and {@code language} have a meaning for
         *     routing rules; others are passed to them as strings.
         * @param firstMessage {@code first_message}, {@code opaque<u32>}: Optional UTF-8 text stored as the visitor's
         *     first message (seq 2, after {@code opened}); routing waits up to {@code [service] sentiment_wait_ms}
         *     for its sentiment.
         */
        public OpenConversation(byte[] clientRef, String customer, String group, List<MetaEntry> attributes,
                byte[] firstMessage) {
            this(0, 0, clientRef, customer, group, attributes, firstMessage);
        }

        @Override
        public FrameType type() {
            return FrameType.OPEN_CONVERSATION;
        }

        /** Equal when every field is, byte arrays compared by content. */
        @Override
        public boolean equals(Object other) {
            return other instanceof OpenConversation o
                    && requestId == o.requestId
                    && flags == o.flags
                    && Arrays.equals(clientRef, o.clientRef)
                    && customer.equals(o.customer)
                    && group.equals(o.group)
                    && attributes.equals(o.attributes)
                    && Arrays.equals(firstMessage, o.firstMessage);
        }

        /** A hash of every field, byte arrays by content. */
        @Override
        public int hashCode() {
            int h = 0;
            h = 31 * h + Objects.hashCode(requestId);
            h = 31 * h + Objects.hashCode(flags);
            h = 31 * h + Arrays.hashCode(clientRef);
            h = 31 * h + Objects.hashCode(customer);
            h = 31 * h + Objects.hashCode(group);
            h = 31 * h + Objects.hashCode(attributes);
            h = 31 * h + Arrays.hashCode(firstMessage);
            return h;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "OpenConversation["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "clientRef=" + Hex.encode(clientRef) + ", "
                    + "customer=" + customer + ", "
                    + "group=" + group + ", "
                    + "attributes=" + attributes + ", "
                    + "firstMessage=" + Hex.encode(firstMessage) + "]";
        }
    }

    /**
     * OPENED (section 13.4). The conversation, its state, and its queue position (0 when assigned).
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The service conversation.
     * @param state {@code state}, {@code u8}: Section 13.2.
     * @param group {@code group}, {@code utf8<u8>}: Its group now.
     * @param agent {@code agent}, {@code utf8<u8>}: Its owner, or empty while waiting.
     * @param position {@code position}, {@code u32}: Its place in the group's queue (1 = next), 0 when assigned.
     */
    record Opened(long requestId, int flags, long conversationId, int state, String group, String agent,
            long position) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param conversationId {@code conversation_id}
         * @param state {@code state}
         * @param group {@code group}
         * @param agent {@code agent}
         * @param position {@code position}
         */
        public Opened {
            Objects.requireNonNull(group, "group");
            Objects.requireNonNull(agent, "agent");
        }

        /**
         * A OPENED with {@code request_id} 0 and no flags.
         *
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The service conversation.
         * @param state {@code state}, {@code u8}: Section 13.2.
         * @param group {@code group}, {@code utf8<u8>}: Its group now.
         * @param agent {@code agent}, {@code utf8<u8>}: Its owner, or empty while waiting.
         * @param position {@code position}, {@code u32}: Its place in the group's queue (1 = next), 0 when assigned.
         */
        public Opened(long conversationId, int state, String group, String agent, long position) {
            this(0, 0, conversationId, state, group, agent, position);
        }

        @Override
        public FrameType type() {
            return FrameType.OPENED;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Opened["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "state=" + state + ", "
                    + "group=" + group + ", "
                    + "agent=" + agent + ", "
                    + "position=" + position + "]";
        }
    }

    /**
     * TRANSFER (section 13.6). Hand a conversation to an agent ({@code to_agent}) or a group ({@code to_group});
     * answered by RESULT. {@code expect_owner}, when not empty, makes it a compare-and-set: refused with CONFLICT
     * unless that agent owns the conversation when the server handles the request (of two racing transfers, exactly
     * one wins).
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
     * @param expectOwner {@code expect_owner}, {@code utf8<u8>}: If not empty, the transfer happens only if this
     *     agent owns the conversation when the server handles it (CONFLICT otherwise).
     * @param toAgent {@code to_agent}, {@code utf8<u8>}: The new owner (exactly one of {@code to_agent} and {@code
     *     to_group} is set).
     * @param toGroup {@code to_group}, {@code utf8<u8>}: A group of the tenant: routed within it (13.5 step 2), or
     *     queued there.
     * @param note {@code note}, {@code utf8<u16>}: Kept in the trace (first 200 characters).
     */
    record Transfer(long requestId, int flags, long conversationId, String expectOwner, String toAgent,
            String toGroup, String note) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param conversationId {@code conversation_id}
         * @param expectOwner {@code expect_owner}
         * @param toAgent {@code to_agent}
         * @param toGroup {@code to_group}
         * @param note {@code note}
         */
        public Transfer {
            Objects.requireNonNull(expectOwner, "expectOwner");
            Objects.requireNonNull(toAgent, "toAgent");
            Objects.requireNonNull(toGroup, "toGroup");
            Objects.requireNonNull(note, "note");
        }

        /**
         * A TRANSFER with {@code request_id} 0 and no flags.
         *
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
         * @param expectOwner {@code expect_owner}, {@code utf8<u8>}: If not empty, the transfer happens only if this
         *     agent owns the conversation when the server handles it (CONFLICT otherwise).
         * @param toAgent {@code to_agent}, {@code utf8<u8>}: The new owner (exactly one of {@code to_agent} and
         *     {@code to_group} is set).
         * @param toGroup {@code to_group}, {@code utf8<u8>}: A group of the tenant: routed within it (13.5 step 2),
         *     or queued there.
         * @param note {@code note}, {@code utf8<u16>}: Kept in the trace (first 200 characters).
         */
        public Transfer(long conversationId, String expectOwner, String toAgent, String toGroup, String note) {
            this(0, 0, conversationId, expectOwner, toAgent, toGroup, note);
        }

        @Override
        public FrameType type() {
            return FrameType.TRANSFER;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Transfer["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "expectOwner=" + expectOwner + ", "
                    + "toAgent=" + toAgent + ", "
                    + "toGroup=" + toGroup + ", "
                    + "note=" + note + "]";
        }
    }

    /**
     * END_CONVERSATION (section 13.2). Close a service conversation; answered by RESULT.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
     * @param reason {@code reason}, {@code utf8<u16>}: Free text, kept in the routing trace (first 200 characters).
     */
    record EndConversation(long requestId, int flags, long conversationId, String reason) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param conversationId {@code conversation_id}
         * @param reason {@code reason}
         */
        public EndConversation {
            Objects.requireNonNull(reason, "reason");
        }

        /**
         * A END_CONVERSATION with {@code request_id} 0 and no flags.
         *
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
         * @param reason {@code reason}, {@code utf8<u16>}: Free text, kept in the routing trace (first 200
         *     characters).
         */
        public EndConversation(long conversationId, String reason) {
            this(0, 0, conversationId, reason);
        }

        @Override
        public FrameType type() {
            return FrameType.END_CONVERSATION;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "EndConversation["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "reason=" + reason + "]";
        }
    }

    /**
     * WATCH (section 13.7). A supervisor starts (on=1) or stops (on=0) watching a conversation; answered by RESULT.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
     * @param on {@code on}, {@code u8}: 1 starts watching, 0 stops.
     */
    record Watch(long requestId, int flags, long conversationId, int on) implements Frame {

        /**
         * A WATCH with {@code request_id} 0 and no flags.
         *
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
         * @param on {@code on}, {@code u8}: 1 starts watching, 0 stops.
         */
        public Watch(long conversationId, int on) {
            this(0, 0, conversationId, on);
        }

        @Override
        public FrameType type() {
            return FrameType.WATCH;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Watch["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "on=" + on + "]";
        }
    }

    /**
     * DRAFT_DECISION (section 13.8). The owning agent approves, edits (with {@code text}) or rejects an AI draft;
     * answered by RESULT whose seq is the visitor-visible message's (0 for a rejection).
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The visitor conversation.
     * @param draftSeq {@code draft_seq}, {@code u64} (unsigned): The seq of the draft in the staff channel.
     * @param action {@code action}, {@code u8}: 1 approve, 2 edit, 3 reject.
     * @param text {@code text}, {@code opaque<u32>}: The edited text (EDIT only), UTF-8.
     */
    record DraftDecision(long requestId, int flags, long conversationId, long draftSeq, int action,
            byte[] text) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param conversationId {@code conversation_id}
         * @param draftSeq {@code draft_seq}
         * @param action {@code action}
         * @param text {@code text}
         */
        public DraftDecision {
            Objects.requireNonNull(text, "text");
        }

        /**
         * A DRAFT_DECISION with {@code request_id} 0 and no flags.
         *
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The visitor conversation.
         * @param draftSeq {@code draft_seq}, {@code u64} (unsigned): The seq of the draft in the staff channel.
         * @param action {@code action}, {@code u8}: 1 approve, 2 edit, 3 reject.
         * @param text {@code text}, {@code opaque<u32>}: The edited text (EDIT only), UTF-8.
         */
        public DraftDecision(long conversationId, long draftSeq, int action, byte[] text) {
            this(0, 0, conversationId, draftSeq, action, text);
        }

        @Override
        public FrameType type() {
            return FrameType.DRAFT_DECISION;
        }

        /** Equal when every field is, byte arrays compared by content. */
        @Override
        public boolean equals(Object other) {
            return other instanceof DraftDecision o
                    && requestId == o.requestId
                    && flags == o.flags
                    && conversationId == o.conversationId
                    && draftSeq == o.draftSeq
                    && action == o.action
                    && Arrays.equals(text, o.text);
        }

        /** A hash of every field, byte arrays by content. */
        @Override
        public int hashCode() {
            int h = 0;
            h = 31 * h + Objects.hashCode(requestId);
            h = 31 * h + Objects.hashCode(flags);
            h = 31 * h + Objects.hashCode(conversationId);
            h = 31 * h + Objects.hashCode(draftSeq);
            h = 31 * h + Objects.hashCode(action);
            h = 31 * h + Arrays.hashCode(text);
            return h;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "DraftDecision["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "draftSeq=" + Long.toUnsignedString(draftSeq) + ", "
                    + "action=" + action + ", "
                    + "text=" + Hex.encode(text) + "]";
        }
    }

    /**
     * SEARCH (section 13.9). An agent searches the text of its past and present conversations; answered by
     * SEARCH_RESULT.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param query {@code query}, {@code utf8<u16>}: Text to find (case-insensitive substring).
     * @param limit {@code limit}, {@code u16}: Most hits wanted (0 = 50; at most 50).
     */
    record Search(long requestId, int flags, String query, int limit) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param query {@code query}
         * @param limit {@code limit}
         */
        public Search {
            Objects.requireNonNull(query, "query");
        }

        /**
         * A SEARCH with {@code request_id} 0 and no flags.
         *
         * @param query {@code query}, {@code utf8<u16>}: Text to find (case-insensitive substring).
         * @param limit {@code limit}, {@code u16}: Most hits wanted (0 = 50; at most 50).
         */
        public Search(String query, int limit) {
            this(0, 0, query, limit);
        }

        @Override
        public FrameType type() {
            return FrameType.SEARCH;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Search["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "query=" + query + ", "
                    + "limit=" + limit + "]";
        }
    }

    /**
     * SEARCH_RESULT (section 13.9). The hits, newest first; {@code more} = 1 when the limit or the scan bound cut it
     * short.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param hits {@code hits}, {@code SearchHit list<u16>}: Each: {@code conversation_id u64}, {@code seq u64},
     *     {@code timestamp_ms u64}, {@code snippet utf8&lt;u16&gt;} (up to 80 characters around the match). Newest
     *     first.
     * @param more {@code more}, {@code u8}: 1 if the limit or a bound cut the search short.
     */
    record SearchResult(long requestId, int flags, List<SearchHit> hits, int more) implements Frame {

        /**
         * Checks that no component is null and copies the lists; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param hits {@code hits}
         * @param more {@code more}
         */
        public SearchResult {
            hits = List.copyOf(hits);
        }

        /**
         * A SEARCH_RESULT with {@code request_id} 0 and no flags.
         *
         * @param hits {@code hits}, {@code SearchHit list<u16>}: Each: {@code conversation_id u64}, {@code seq u64},
         *     {@code timestamp_ms u64}, {@code snippet utf8&lt;u16&gt;} (up to 80 characters around the match).
         *     Newest first.
         * @param more {@code more}, {@code u8}: 1 if the limit or a bound cut the search short.
         */
        public SearchResult(List<SearchHit> hits, int more) {
            this(0, 0, hits, more);
        }

        @Override
        public FrameType type() {
            return FrameType.SEARCH_RESULT;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "SearchResult["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "hits=" + hits + ", "
                    + "more=" + more + "]";
        }
    }

    /**
     * QUEUE_POSITION (section 13.5). A waiting conversation's place in its group's queue (1 = next); 0 when it left
     * the queue.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
     * @param group {@code group}, {@code utf8<u8>}: The group whose queue it is in.
     * @param position {@code position}, {@code u32}: 1 = next.
     * @param waiting {@code waiting}, {@code u32}: Conversations waiting in that queue.
     */
    record QueuePosition(long requestId, int flags, long conversationId, String group, long position,
            long waiting) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param conversationId {@code conversation_id}
         * @param group {@code group}
         * @param position {@code position}
         * @param waiting {@code waiting}
         */
        public QueuePosition {
            Objects.requireNonNull(group, "group");
        }

        /**
         * A QUEUE_POSITION with {@code request_id} 0 and no flags.
         *
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
         * @param group {@code group}, {@code utf8<u8>}: The group whose queue it is in.
         * @param position {@code position}, {@code u32}: 1 = next.
         * @param waiting {@code waiting}, {@code u32}: Conversations waiting in that queue.
         */
        public QueuePosition(long conversationId, String group, long position, long waiting) {
            this(0, 0, conversationId, group, position, waiting);
        }

        @Override
        public FrameType type() {
            return FrameType.QUEUE_POSITION;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "QueuePosition["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "group=" + group + ", "
                    + "position=" + position + ", "
                    + "waiting=" + waiting + "]";
        }
    }

    /**
     * SENTIMENT (section 13.10). The score of a visitor message, 0 (negative) to 1000 (positive), for the agents.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
     * @param seq {@code seq}, {@code u64} (unsigned): The scored message.
     * @param scorePermille {@code score_permille}, {@code u16}: 0 (very negative) to 1000 (very positive).
     */
    record Sentiment(long requestId, int flags, long conversationId, long seq, int scorePermille) implements Frame {

        /**
         * A SENTIMENT with {@code request_id} 0 and no flags.
         *
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
         * @param seq {@code seq}, {@code u64} (unsigned): The scored message.
         * @param scorePermille {@code score_permille}, {@code u16}: 0 (very negative) to 1000 (very positive).
         */
        public Sentiment(long conversationId, long seq, int scorePermille) {
            this(0, 0, conversationId, seq, scorePermille);
        }

        @Override
        public FrameType type() {
            return FrameType.SENTIMENT;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Sentiment["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "seq=" + Long.toUnsignedString(seq) + ", "
                    + "scorePermille=" + scorePermille + "]";
        }
    }

    /**
     * CONVERSATION_INFO (section 13.11). Ask for a conversation's record (state, owner, participants, tags, routing
     * trace).
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
     */
    record ConversationInfo(long requestId, int flags, long conversationId) implements Frame {

        /**
         * A CONVERSATION_INFO with {@code request_id} 0 and no flags.
         *
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned)
         */
        public ConversationInfo(long conversationId) {
            this(0, 0, conversationId);
        }

        @Override
        public FrameType type() {
            return FrameType.CONVERSATION_INFO;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "ConversationInfo["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + "]";
        }
    }

    /**
     * RESULT (section 13.1). The answer to a service request: status (an error code, 0 = OK), the conversation and a
     * seq where the request made a message, and {@code detail}, UTF-8 JSON described per request.
     *
     * @param requestId the header's {@code request_id} ({@code u32}): chosen by the sender of a request, echoed
     *     in the answer, 0 when unused (section 3.1)
     * @param flags the header's {@code flags} ({@code u16}, section 3.2)
     * @param status {@code status}, {@code u16}: 0 (OK) or an error code of section 9 (for example FORBIDDEN,
     *     NOT_FOUND, CONFLICT, BAD_REQUEST, STORAGE_UNAVAILABLE).
     * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The conversation the request concerned,
     *     or 0.
     * @param seq {@code seq}, {@code u64} (unsigned): The seq of the message the request put into the conversation,
     *     where it made one (DRAFT_DECISION), else 0.
     * @param detail {@code detail}, {@code opaque<u32>}: UTF-8 JSON: on a refusal {@code {"reason": ...}}; on
     *     success, per request (section 13.1).
     */
    record Result(long requestId, int flags, int status, long conversationId, long seq,
            byte[] detail) implements Frame {

        /**
         * Checks that no component is null; value ranges are checked by the encoder.
         *
         * @param requestId the header's {@code request_id}
         * @param flags the header's {@code flags}
         * @param status {@code status}
         * @param conversationId {@code conversation_id}
         * @param seq {@code seq}
         * @param detail {@code detail}
         */
        public Result {
            Objects.requireNonNull(detail, "detail");
        }

        /**
         * A RESULT with {@code request_id} 0 and no flags.
         *
         * @param status {@code status}, {@code u16}: 0 (OK) or an error code of section 9 (for example FORBIDDEN,
         *     NOT_FOUND, CONFLICT, BAD_REQUEST, STORAGE_UNAVAILABLE).
         * @param conversationId {@code conversation_id}, {@code u64} (unsigned): The conversation the request
         *     concerned, or 0.
         * @param seq {@code seq}, {@code u64} (unsigned): The seq of the message the request put into the
         *     conversation, where it made one (DRAFT_DECISION), else 0.
         * @param detail {@code detail}, {@code opaque<u32>}: UTF-8 JSON: on a refusal {@code {"reason": ...}}; on
         *     success, per request (section 13.1).
         */
        public Result(int status, long conversationId, long seq, byte[] detail) {
            this(0, 0, status, conversationId, seq, detail);
        }

        @Override
        public FrameType type() {
            return FrameType.RESULT;
        }

        /** Equal when every field is, byte arrays compared by content. */
        @Override
        public boolean equals(Object other) {
            return other instanceof Result o
                    && requestId == o.requestId
                    && flags == o.flags
                    && status == o.status
                    && conversationId == o.conversationId
                    && seq == o.seq
                    && Arrays.equals(detail, o.detail);
        }

        /** A hash of every field, byte arrays by content. */
        @Override
        public int hashCode() {
            int h = 0;
            h = 31 * h + Objects.hashCode(requestId);
            h = 31 * h + Objects.hashCode(flags);
            h = 31 * h + Objects.hashCode(status);
            h = 31 * h + Objects.hashCode(conversationId);
            h = 31 * h + Objects.hashCode(seq);
            h = 31 * h + Arrays.hashCode(detail);
            return h;
        }

        /** The fields, byte arrays in hex and {@code u64} values unsigned. */
        @Override
        public String toString() {
            return "Result["
                    + "requestId=" + requestId + ", "
                    + "flags=" + flags + ", "
                    + "status=" + status + ", "
                    + "conversationId=" + Long.toUnsignedString(conversationId) + ", "
                    + "seq=" + Long.toUnsignedString(seq) + ", "
                    + "detail=" + Hex.encode(detail) + "]";
        }
    }
}
