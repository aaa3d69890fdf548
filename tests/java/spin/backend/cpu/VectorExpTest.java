package spin.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The vector exp against Math.exp in double, in ulps, over the whole useful range. */
class VectorExpTest {
    @Test
    void withinTwoUlpsOfTheCorrectlyRoundedValue() {
        long seed = Check.freshSeed();
        Random rng = new Random(seed);
        double worst = 0;
        for (int i = 0; i < 200_000; i++) {
            float x = (float) (rng.nextDouble() * 175 - 87.3);
            double exact = Math.exp(x);
            float got = Mem.exp(x);
            double ulps = Math.abs(got - exact) / Math.ulp((float) exact);
            worst = Math.max(worst, ulps);
        }
        assertTrue(worst <= 2, "worst error " + worst + " ulp (seed " + seed + ")");
    }

    @Test
    void edgesAreFinite() {
        assertEquals(0f, Mem.exp(Float.NEGATIVE_INFINITY));
        assertEquals(0f, Mem.exp(-1000f));
        assertEquals(1f, Mem.exp(0f));
        assertEquals((float) Math.exp(88), Mem.exp(100f), Math.ulp((float) Math.exp(88)) * 2);
    }
}
