package io.kefu.protocol;

import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * A set of server key pins (spec/PROTOCOL.md section 5.8): {@code "sm2:"} followed by the lowercase hex SM3 of the
 * 65-byte public key, or {@code "ed25519:"} followed by the lowercase hex SHA-256 of the 32-byte key, as the server
 * prints them and writes them to {@code keys/pins.txt}, one a line. Several pins may be valid at once (rotation).
 *
 * <p>Immutable; safe to share between threads.
 */
public final class Pins {
    private static final Pattern PIN = Pattern.compile("(sm2|ed25519):[0-9a-f]{64}");

    private final Set<String> pins;

    private Pins(Set<String> pins) {
        this.pins = Set.copyOf(pins);
    }

    /**
     * Pins from strings.
     *
     * @param pins the pins, each {@code sm2:<64 hex>} or {@code ed25519:<64 hex>}
     * @return the set
     * @throws IllegalArgumentException if a pin is malformed (the message shows at most its first 80 characters)
     */
    public static Pins of(Collection<String> pins) {
        Set<String> set = new LinkedHashSet<>();
        for (String pin : pins) {
            if (!PIN.matcher(pin).matches()) {
                String shown = pin.length() > 80 ? pin.substring(0, 80) + "…" : pin;
                throw new IllegalArgumentException("pin '" + shown + "' is not sm2:<64 hex> or ed25519:<64 hex>");
            }
            set.add(pin);
        }
        return new Pins(set);
    }

    /**
     * Pins from strings.
     *
     * @param pins the pins
     * @return the set
     * @throws IllegalArgumentException if a pin is malformed
     */
    public static Pins of(String... pins) {
        return of(Arrays.asList(pins));
    }

    /**
     * Pins from the text of a pins file: one pin a line; blank lines, surrounding whitespace and lines starting with
     * {@code #} are ignored.
     *
     * @param text the file's content
     * @return the set
     * @throws IllegalArgumentException if a line is not a pin
     */
    public static Pins parse(String text) {
        Set<String> set = new LinkedHashSet<>();
        for (String line : text.split("\\R")) {
            String pin = line.strip();
            if (!pin.isEmpty() && !pin.startsWith("#")) {
                set.add(pin);
            }
        }
        return of(set);
    }

    /**
     * Whether a fingerprint is pinned.
     *
     * @param fingerprint a key's pin
     * @return true when it is in the set
     */
    public boolean contains(String fingerprint) {
        return pins.contains(fingerprint);
    }

    /**
     * The pins.
     *
     * @return an unmodifiable set
     */
    public Set<String> asSet() {
        return pins;
    }

    /**
     * Whether the set is empty (a full handshake then always fails with SERVER_KEY_NOT_PINNED).
     *
     * @return true when no pin is set
     */
    public boolean isEmpty() {
        return pins.isEmpty();
    }

    /**
     * The pins (public values).
     *
     * @return for example {@code "Pins[sm2:…]"}
     */
    @Override
    public String toString() {
        return "Pins" + pins;
    }

    /**
     * Compares the sets.
     *
     * @param o another object
     * @return true when both hold the same pins
     */
    @Override
    public boolean equals(Object o) {
        return o instanceof Pins p && pins.equals(p.pins);
    }

    /**
     * The set's hash.
     *
     * @return the hash code
     */
    @Override
    public int hashCode() {
        return pins.hashCode();
    }
}
