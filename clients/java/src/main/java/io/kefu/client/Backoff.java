package io.kefu.client;

import java.time.Duration;
import java.util.PrimitiveIterator;
import java.util.function.DoubleSupplier;

/**
 * A reconnect and retry policy: exponential backoff with symmetric jitter (spec/PROTOCOL.md section 4.8).
 *
 * <p>The schedule is {@code initial}, 2 &times; initial, 4 &times; initial ... capped at {@code maximum}, preceded
 * by {@code first} (a GOAWAY's reconnect delay) when it is set. Every delay is multiplied by a uniform factor in
 * [1 - jitter, 1 + jitter], so that clients dropped together do not come back together. The schedule is endless.
 * Immutable and thread-safe (a schedule from {@link #delays} is not).
 *
 * @param initialSeconds the first exponential delay, above 0
 * @param maximumSeconds the cap, at least {@code initialSeconds}
 * @param jitter the jitter fraction, 0 to 1 (0.2 = &plusmn;20 %)
 * @param firstSeconds the delay before the first attempt, or a negative number for none
 */
public record Backoff(double initialSeconds, double maximumSeconds, double jitter, double firstSeconds) {
    /** The default policy: 0.5 s doubling to 30 s, &plusmn;20 %, as the Python client. */
    public static final Backoff DEFAULT = new Backoff(0.5, 30.0, 0.2, -1);

    /**
     * Checks the policy.
     *
     * @param initialSeconds the first exponential delay
     * @param maximumSeconds the cap
     * @param jitter the jitter fraction
     * @param firstSeconds the first delay, negative for none
     * @throws IllegalArgumentException when a value is out of range
     */
    public Backoff {
        if (!(initialSeconds > 0) || maximumSeconds < initialSeconds) {
            throw new IllegalArgumentException("need 0 < initial <= maximum");
        }
        if (!(jitter >= 0 && jitter <= 1)) {
            throw new IllegalArgumentException("jitter must be within [0, 1]");
        }
    }

    /**
     * The policy a GOAWAY asks for (its reconnect delay becomes {@code first}).
     *
     * @param reconnectDelayMs the GOAWAY's reconnect delay
     * @param backoffInitialMs its initial backoff
     * @param backoffMaxMs its maximal backoff
     * @param jitterPermille its jitter in per mille
     * @return the policy
     */
    public static Backoff fromGoaway(long reconnectDelayMs, long backoffInitialMs, long backoffMaxMs,
            long jitterPermille) {
        double initial = Math.max(backoffInitialMs, 1) / 1000.0;
        return new Backoff(initial, Math.max(backoffMaxMs / 1000.0, initial), Math.min(jitterPermille, 1000) / 1000.0,
                reconnectDelayMs / 1000.0);
    }

    /**
     * The same policy without its first delay (a GOAWAY's delay applies to the reconnect right after it).
     *
     * @return the policy
     */
    public Backoff withoutFirst() {
        return new Backoff(initialSeconds, maximumSeconds, jitter, -1);
    }

    /**
     * The same policy with a first delay.
     *
     * @param seconds the first delay, negative for none
     * @return the policy
     */
    public Backoff withFirst(double seconds) {
        return new Backoff(initialSeconds, maximumSeconds, jitter, seconds);
    }

    /**
     * {@code delay} scaled by 1 + jitter &times; (2 &times; uniform - 1).
     *
     * @param delay seconds
     * @param uniform a number in [0, 1)
     * @return the jittered delay, never negative
     */
    public double jittered(double delay, double uniform) {
        return Math.max(0.0, delay * (1 + jitter * (2 * uniform - 1)));
    }

    /**
     * An endless schedule of jittered delays, in seconds.
     *
     * @param random uniform numbers in [0, 1)
     * @return the schedule
     */
    public PrimitiveIterator.OfDouble delays(DoubleSupplier random) {
        return new PrimitiveIterator.OfDouble() {
            private boolean firstDone = firstSeconds < 0;
            private double next = initialSeconds;

            @Override
            public boolean hasNext() {
                return true;
            }

            @Override
            public double nextDouble() {
                if (!firstDone) {
                    firstDone = true;
                    return jittered(firstSeconds, random.getAsDouble());
                }
                double delay = next;
                next = Math.min(next * 2, maximumSeconds);
                return jittered(delay, random.getAsDouble());
            }
        };
    }

    /**
     * A duration of seconds.
     *
     * @param seconds seconds
     * @return the duration (nanosecond precision)
     */
    static Duration seconds(double seconds) {
        return Duration.ofNanos((long) (seconds * 1e9));
    }
}
