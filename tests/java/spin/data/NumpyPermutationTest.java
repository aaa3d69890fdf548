package spin.data;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Expected values printed by numpy 2.4: {@code numpy.random.default_rng(seed).permutation(n)}. */
class NumpyPermutationTest {
    @Test
    void smallPermutationsMatchNumpy() {
        assertArrayEquals(new int[] {5, 6, 0, 7, 3, 2, 4, 9, 1, 8}, NumpyPermutation.permutation(10, 42));
        assertArrayEquals(new int[] {2, 4, 3, 6, 5, 0, 1}, NumpyPermutation.permutation(7, 0));
        // A seed above 2^32 feeds two entropy words into the SeedSequence.
        assertArrayEquals(new int[] {9, 5, 1, 2, 8, 3, 0, 10, 7, 4, 6, 11}, NumpyPermutation.permutation(12, (1L << 40) + 5));
        assertArrayEquals(new int[] {0}, NumpyPermutation.permutation(1, 42));
        assertArrayEquals(new int[] {}, NumpyPermutation.permutation(0, 42));
    }

    @Test
    void largePermutationsMatchNumpy() {
        int[] p = NumpyPermutation.permutation(1000, 42);
        assertArrayEquals(new int[] {978, 933, 859, 916, 127, 608, 856, 260}, Arrays.copyOf(p, 8));
        assertArrayEquals(new int[] {609, 961, 973, 648}, Arrays.copyOfRange(p, 996, 1000));
        assertEquals(248321539L, weightedSum(p), "sum of i * p[i]");
        int[] big = NumpyPermutation.permutation(100_000, 42);
        assertArrayEquals(new int[] {45262, 49850, 30394, 90177, 95569}, Arrays.copyOf(big, 5));
        assertEquals(249152033752609L, weightedSum(big));
    }

    @Test
    void shuffledAndFractionSliceLikeTheReference() {
        List<String> rows = List.of("r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9");
        List<String> shuffled = DataSelection.shuffled(rows, DataSelection.REFERENCE_SEED);
        assertEquals(List.of("r5", "r6", "r0", "r7", "r3", "r2", "r4", "r9", "r1", "r8"), shuffled);
        assertEquals(List.of("r5", "r6", "r0", "r7"), DataSelection.fraction(shuffled, 4, 0));
        assertEquals(List.of("r3", "r2", "r4", "r9"), DataSelection.fraction(shuffled, 4, 1));
        assertEquals(List.of("r1", "r8"), DataSelection.fraction(shuffled, 4, 2), "the last fraction is cut at the end");
        assertEquals(shuffled, DataSelection.fraction(shuffled, 0, 0), "frac_len 0 means all rows");
        IllegalArgumentException past = assertThrows(IllegalArgumentException.class, () -> DataSelection.fraction(shuffled, 4, 3));
        assertEquals("fraction 3 of 4 rows starts at row 12 but the data has 10 rows; the last fraction is 2", past.getMessage());
    }

    private static long weightedSum(int[] p) {
        long sum = 0;
        for (int i = 0; i < p.length; i++) {
            sum += (long) i * p[i];
        }
        return sum;
    }
}
