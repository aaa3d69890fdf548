package spin.backend;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/**
 * The counter-based reading of SplitMix64 against the sequential generator it reads: the JDK's
 * SplittableRandom, which runs the same algorithm (Stafford's mix13 over a Weyl sequence with the
 * golden gamma), so draw n of a stream must be its (n+1)-th nextDouble.
 */
class SplitMix64Test {
    @Test
    void drawNIsTheNPlusFirstNumberOfTheSequentialGenerator() {
        SplittableRandom starts = new SplittableRandom(3);
        for (int s = 0; s < 5; s++) {
            long stream = starts.nextLong();
            SplittableRandom sequential = new SplittableRandom(stream);
            for (int n = 0; n < 1000; n++) {
                assertEquals(sequential.nextDouble(), SplitMix64.uniform(stream, n), "stream " + stream + " draw " + n);
            }
        }
    }

    @Test
    void seedsAndKeysNameDifferentStreams() {
        long stream = SplitMix64.stream(42, 7);
        assertEquals(stream, SplitMix64.stream(42, 7));
        assertNotEquals(stream, SplitMix64.stream(42, 8));
        assertNotEquals(stream, SplitMix64.stream(43, 7));
        assertNotEquals(SplitMix64.uniform(SplitMix64.stream(42, 7), 0), SplitMix64.uniform(SplitMix64.stream(42, 8), 0));
    }
}
