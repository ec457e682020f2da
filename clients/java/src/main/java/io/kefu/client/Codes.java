package io.kefu.client;

import io.kefu.protocol.ErrorCode;

/** The wire error codes the client acts on (spec/errors.toml), and names for all of them. Stateless. */
final class Codes {
    static final int OK = 0;
    static final int NO_COMMON_SUITE = 201;
    static final int BAD_SIGNATURE = 203;
    static final int SERVER_KEY_NOT_PINNED = 204;
    static final int BAD_FINISHED = 205;
    static final int AUTH_FAILED = 206;
    static final int DOWNGRADE_DETECTED = 209;
    static final int FORBIDDEN = 403;
    static final int NOT_FOUND = 404;
    static final int RATE_LIMITED = 429;
    static final int INTERNAL_ERROR = 500;
    static final int OVERLOADED = 505;

    private Codes() {}

    /** The spec's name of a code, "UNKNOWN" when this client does not know it. */
    static String name(int code) {
        return ErrorCode.of(code).map(ErrorCode::name).orElse("UNKNOWN");
    }

    /** Handshake refusals that reconnecting cannot cure (configuration, not weather): the client stops. */
    static boolean notRetried(int code) {
        return code == AUTH_FAILED || code == NO_COMMON_SUITE || code == SERVER_KEY_NOT_PINNED;
    }

    /** The typed exception for a handshake that ended with {@code code} (or {@link KefuException#NO_CODE}). */
    static ConnectException connectError(int code, String reason) {
        String message = (code == KefuException.NO_CODE ? "connect failed" : name(code) + " (" + code + ")")
                + ": " + reason;
        return switch (code) {
            case AUTH_FAILED -> new AuthFailedException(code, message);
            case SERVER_KEY_NOT_PINNED, BAD_SIGNATURE, BAD_FINISHED, DOWNGRADE_DETECTED ->
                    new ServerNotTrustedException(code, message);
            case NO_COMMON_SUITE -> new NoCommonSuiteException(code, message);
            case OVERLOADED -> new ServerBusyException(code, message);
            default -> new ConnectException(code, message);
        };
    }
}
