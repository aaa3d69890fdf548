package spin.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import spin.backend.DType;
import spin.backend.FrozenWeights;
import spin.backend.Tensor;

/**
 * Frozen weights on the CPU backend: matmulForward gives the same bits with and without a freeze,
 * packed copies follow the freezes that cover them, a weight changed after its freeze closed is
 * seen by the next products, and one changed while frozen makes close throw.
 */
class PackedWeightsTest {
    private static CpuBackend cpu;

    @BeforeAll
    static void start() {
        cpu = new CpuBackend(2);
    }

    @AfterAll
    static void stop() {
        cpu.close();
    }

    private static float[] randoms(long seed, int count) {
        SplittableRandom random = new SplittableRandom(seed);
        float[] values = new float[count];
        for (int i = 0; i < count; i++) {
            values[i] = (float) (random.nextDouble() * 2 - 1);
        }
        return values;
    }

    private static float[] matmul(Tensor in, Tensor weight) {
        try (Tensor out = cpu.allocate(DType.F32, in.dim(0), weight.dim(0))) {
            cpu.matmulForward(out, in, weight);
            return cpu.read(out);
        }
    }

    /**
     * Frozen, a weight is packed on its first product, and products of any number of rows give
     * the bits of an unfrozen product of 12 or more rows (unfrozen products of fewer rows sum in
     * another order, so their rows are only close).
     */
    @Test
    void frozenProductsHaveTheBitsOfUnfrozenOnes() {
        // 300 input features: two k-blocks, the second partial; 70 outputs: a partial column sliver.
        float[] inputs = randoms(2, 40 * 300);
        try (Tensor w = cpu.fromHost(randoms(1, 70 * 300), 70, 300);
                Tensor many = cpu.fromHost(inputs, 40, 300);
                Tensor few = cpu.fromHost(java.util.Arrays.copyOf(inputs, 3 * 300), 3, 300)) {
            float[] expectedMany = matmul(many, w), unfrozenFew = matmul(few, w);
            float[] expectedFew = java.util.Arrays.copyOf(expectedMany, 3 * 70);
            assertFalse(java.util.Arrays.equals(expectedFew, unfrozenFew), "unfrozen, 3 rows take the few-rows order");
            try (FrozenWeights frozen = cpu.freezeWeights(List.of(w))) {
                assertEquals(0, cpu.packedWeightBytes(), "nothing is packed before a product needs it");
                assertArrayEquals(expectedFew, matmul(few, w), "frozen, 3 rows give the rows of the 40-row product");
                assertEquals(Gemm.packedFloats(70, 300) * Float.BYTES, cpu.packedWeightBytes());
                assertArrayEquals(expectedMany, matmul(many, w), "served from the packed copy");
                assertEquals(Gemm.packedFloats(70, 300) * Float.BYTES, frozen.prepare(), "prepare packs nothing twice");
            }
            assertEquals(0, cpu.packedWeightBytes(), "closing drops the copy");
            assertArrayEquals(unfrozenFew, matmul(few, w));
        }
    }

    @Test
    void aWeightChangedBetweenFreezesIsSeen() {
        try (Tensor w = cpu.fromHost(randoms(4, 64 * 256), 64, 256); Tensor in = cpu.fromHost(randoms(5, 24 * 256), 24, 256)) {
            float[] before;
            try (FrozenWeights frozen = cpu.freezeWeights(List.of(w))) {
                before = matmul(in, w);
            }
            cpu.scale(w, 2f);
            float[] unfrozen = matmul(in, w);
            try (FrozenWeights frozen = cpu.freezeWeights(List.of(w))) {
                float[] after = matmul(in, w);
                assertArrayEquals(unfrozen, after, "a new freeze packs the new values");
                assertEquals(2 * before[0], after[0], "scaling by 2 is exact");
            }
        }
    }

    @Test
    void nestedFreezesKeepTheCopyUntilTheLastCloses() {
        try (Tensor w = cpu.fromHost(randoms(6, 64 * 256), 64, 256); Tensor in = cpu.fromHost(randoms(7, 24 * 256), 24, 256)) {
            FrozenWeights outer = cpu.freezeWeights(List.of(w));
            long bytes = outer.prepare();
            assertTrue(bytes > 0);
            FrozenWeights inner = cpu.freezeWeights(List.of(w, w));
            assertEquals(bytes, inner.prepare(), "the inner freeze shares the outer one's copy");
            inner.close();
            inner.close(); // closing twice changes nothing
            assertEquals(bytes, cpu.packedWeightBytes(), "the outer freeze still holds the copy");
            outer.close();
            assertEquals(0, cpu.packedWeightBytes());
        }
    }

    @Test
    void aWeightChangedWhileFrozenMakesCloseThrow() {
        try (Tensor w = cpu.fromHost(randoms(8, 64 * 256), 64, 256); Tensor in = cpu.fromHost(randoms(9, 24 * 256), 24, 256)) {
            FrozenWeights frozen = cpu.freezeWeights(List.of(w));
            matmul(in, w);
            float[] values = cpu.read(w);
            values[1234] = Math.nextUp(values[1234]); // one element, one bit
            cpu.write(w, values);
            IllegalStateException e = assertThrows(IllegalStateException.class, frozen::close);
            assertTrue(e.getMessage().contains("changed while frozen"), e.getMessage());
            assertEquals(0, cpu.packedWeightBytes(), "the copy is dropped all the same");
            assertArrayEquals(matmul(in, w), matmul(in, w));
        }
        // A weight frozen but never packed can change freely: nothing stale was ever served.
        try (Tensor w = cpu.fromHost(randoms(10, 64 * 256), 64, 256)) {
            FrozenWeights frozen = cpu.freezeWeights(List.of(w));
            cpu.scale(w, 3f);
            frozen.close();
        }
    }

    @Test
    void onlyF32MatricesFreeze() {
        try (Tensor vector = cpu.allocate(DType.F32, 16); Tensor bf16 = cpu.allocate(DType.BF16, 4, 4)) {
            assertThrows(IllegalArgumentException.class, () -> cpu.freezeWeights(List.of(vector)));
            assertThrows(IllegalArgumentException.class, () -> cpu.freezeWeights(List.of(bf16)));
        }
    }

    @Test
    void fingerprintSeesEveryOneBitChange() {
        int n = 16 * 7 + 5; // vector lanes and a scalar tail
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate((long) n * Float.BYTES);
            float[] values = randoms(11, n);
            MemorySegment.copy(values, 0, s, ValueLayout.JAVA_FLOAT, 0, n);
            long base = PackedWeights.fingerprint(s);
            assertEquals(base, PackedWeights.fingerprint(s));
            for (int i = 0; i < n; i++) {
                for (int bit : new int[] {0, 17, 31}) {
                    int bits = Float.floatToRawIntBits(values[i]);
                    s.setAtIndex(ValueLayout.JAVA_INT, i, bits ^ (1 << bit));
                    assertNotEquals(base, PackedWeights.fingerprint(s), "element " + i + " bit " + bit);
                    s.setAtIndex(ValueLayout.JAVA_INT, i, bits);
                }
            }
            float first = values[0];
            values[0] = values[1];
            values[1] = first;
            MemorySegment.copy(values, 0, s, ValueLayout.JAVA_FLOAT, 0, n);
            assertFalse(base == PackedWeights.fingerprint(s) && values[0] != values[1], "swapping two elements is seen");
        }
    }
}
