package io.kefu.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.PrimitiveIterator;
import org.junit.jupiter.api.Test;

class BackoffTest {
    @Test
    void doublesUpToTheCapWithoutJitterAtTheMidpoint() {
        PrimitiveIterator.OfDouble d = Backoff.DEFAULT.delays(() -> 0.5);
        double[] expected = {0.5, 1, 2, 4, 8, 16, 30, 30};
        for (double e : expected) {
            assertEquals(e, d.nextDouble(), 1e-9);
        }
    }

    @Test
    void jitterStaysWithinItsBand() {
        PrimitiveIterator.OfDouble low = Backoff.DEFAULT.delays(() -> 0.0);
        PrimitiveIterator.OfDouble high = Backoff.DEFAULT.delays(() -> 0.999_999);
        assertEquals(0.4, low.nextDouble(), 1e-9);
        assertTrue(high.nextDouble() <= 0.6 + 1e-9);
    }

    @Test
    void goawayDelayComesFirstOnce() {
        Backoff b = Backoff.fromGoaway(3000, 100, 1000, 0);
        PrimitiveIterator.OfDouble d = b.delays(() -> 0.5);
        assertEquals(3.0, d.nextDouble(), 1e-9);
        assertEquals(0.1, d.nextDouble(), 1e-9);
        assertEquals(0.2, d.nextDouble(), 1e-9);
        assertEquals(0.1, b.withoutFirst().delays(() -> 0.5).nextDouble(), 1e-9);
    }

    @Test
    void rejectsNonsense() {
        assertThrows(IllegalArgumentException.class, () -> new Backoff(0, 1, 0.2, -1));
        assertThrows(IllegalArgumentException.class, () -> new Backoff(2, 1, 0.2, -1));
        assertThrows(IllegalArgumentException.class, () -> new Backoff(1, 2, 1.5, -1));
    }
}
