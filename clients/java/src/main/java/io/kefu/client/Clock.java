package io.kefu.client;

/**
 * Wall-clock seconds for the protocol core (tickets carry wall-clock ages), read from the monotonic clock with one
 * offset taken at class load, so that deadlines never jump with the system clock. Thread-safe.
 */
final class Clock {
    private static final double OFFSET = System.currentTimeMillis() / 1000.0 - System.nanoTime() / 1e9;

    private Clock() {}

    /** Wall-clock seconds. */
    static double now() {
        return System.nanoTime() / 1e9 + OFFSET;
    }
}
