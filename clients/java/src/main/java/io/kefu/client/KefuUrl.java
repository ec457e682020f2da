package io.kefu.client;

import io.kefu.protocol.Suite;
import java.net.URI;
import java.net.URISyntaxException;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.regex.Pattern;

/**
 * The {@code kefu://} URL form of a client's configuration, as clients/python/options.py:
 *
 * <pre>kefu://APP_ID[:SECRET]@HOST[:PORT][/]?pin=PIN[&amp;pin=PIN...][&amp;suite=SUITE...]</pre>
 *
 * <p>APP_ID and SECRET are percent-decoded; SECRET is the app secret as {@code kefu app add} prints it (base64url,
 * padding optional). PORT defaults to 7420. {@code pin} is repeatable ({@code sm2:<64 hex>} or
 * {@code ed25519:<64 hex>}); {@code suite} is repeatable ({@code national} or {@code international}, offered in
 * the order given). Anything else is an IllegalArgumentException whose message names the wrong part, never the URL
 * (it holds the secret). Immutable and thread-safe.
 *
 * @param host the host
 * @param port the port
 * @param appId the app id
 * @param secret the secret text, or null when the URL has none
 * @param pins the pins
 * @param suites the suites, empty when the URL names none
 */
record KefuUrl(String host, int port, String appId, String secret, List<String> pins, List<Suite> suites) {
    /** The port {@code kefu serve} listens on unless told otherwise. */
    static final int DEFAULT_PORT = 7420;

    static final Pattern PIN = Pattern.compile("(?:sm2|ed25519):[0-9a-f]{64}");

    static KefuUrl parse(String text) {
        URI uri;
        try {
            uri = new URI(text.strip());
        } catch (URISyntaxException e) {
            throw new IllegalArgumentException("malformed kefu URL: bad host or port");
        }
        if (uri.getScheme() == null || !uri.getScheme().equalsIgnoreCase("kefu")) {
            throw new IllegalArgumentException("a kefu URL starts with kefu://");
        }
        String path = uri.getRawPath();
        if ((path != null && !path.isEmpty() && !path.equals("/")) || uri.getRawFragment() != null) {
            throw new IllegalArgumentException("a kefu URL has no path or fragment");
        }
        if (uri.getHost() == null) {
            throw new IllegalArgumentException("a kefu URL names a host: kefu://app:secret@host:port?pin=...");
        }
        String userInfo = uri.getRawUserInfo();
        if (userInfo == null || userInfo.isEmpty() || userInfo.startsWith(":")) {
            throw new IllegalArgumentException("a kefu URL names the app id: kefu://app:secret@host:port?pin=...");
        }
        int colon = userInfo.indexOf(':');
        String appId = decode(colon < 0 ? userInfo : userInfo.substring(0, colon));
        String secret = colon < 0 || colon == userInfo.length() - 1 ? null : decode(userInfo.substring(colon + 1));
        String host = uri.getHost();
        if (host.startsWith("[") && host.endsWith("]")) {
            host = host.substring(1, host.length() - 1);
        }
        List<String> pins = new ArrayList<>();
        List<Suite> suites = new ArrayList<>();
        String query = uri.getRawQuery();
        if (query != null && !query.isEmpty()) {
            for (String pair : query.split("&", -1)) {
                int eq = pair.indexOf('=');
                if (eq <= 0) {
                    throw new IllegalArgumentException("malformed kefu URL query");
                }
                String name = decode(pair.substring(0, eq));
                String value = decode(pair.substring(eq + 1));
                switch (name) {
                    case "pin" -> pins.add(checkPin(value));
                    case "suite" -> suites.add(suite(value));
                    default -> throw new IllegalArgumentException("unknown kefu URL parameter '"
                            + name.substring(0, Math.min(32, name.length())) + "' (known: pin, suite)");
                }
            }
        }
        int port = uri.getPort() < 0 ? DEFAULT_PORT : uri.getPort();
        return new KefuUrl(host, port, appId, secret, List.copyOf(pins), List.copyOf(suites));
    }

    static String checkPin(String pin) {
        if (!PIN.matcher(pin).matches()) {
            throw new IllegalArgumentException("pin '" + pin.substring(0, Math.min(80, pin.length()))
                    + "' is not sm2:<64 hex> or ed25519:<64 hex>");
        }
        return pin;
    }

    static Suite suite(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "national" -> Suite.NATIONAL;
            case "international" -> Suite.INTERNATIONAL;
            default -> throw new IllegalArgumentException("unknown suite '" + name.substring(0, Math.min(32,
                    name.length())) + "' (known: national, international)");
        };
    }

    private static String decode(String raw) {
        try {
            return URLDecoder.decode(raw.replace("+", "%2B"), StandardCharsets.UTF_8);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("a part of the kefu URL is not percent-encoded UTF-8");
        }
    }
}
