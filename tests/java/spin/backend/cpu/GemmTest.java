package spin.backend.cpu;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.fail;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Gemm against a naive fp64 reference, for every transpose combination, with and without
 * accumulation, at sizes that are and are not multiples of the kernel tile (12 x 32), the k-block
 * (256) and the column panel, with padded leading dimensions and non-zero offsets.
 *
 * <p>Error bound, per element: Gemm sums each k-block of length L <= 256 by an FMA chain (error at
 * most gamma_L * sum|a*b|, gamma_L = L*u/(1 - L*u), u = 2^-24), then adds the block sums and the old
 * C one after another (at most one rounding of the running total per addition). With nb blocks the
 * computed value therefore differs from the exact one by at most
 * {@code (L + nb + 1) * u * (sum_p |a_ip * b_pj| + |C0_ij|)} to first order; the test allows 1% over
 * that. The few-rows dot products (FMA chains of ceil(k/16) terms, then 4 levels of pairwise lane
 * sums and one addition to C) stay within the same bound. The fp64 reference is exact to far below this bound for these sizes. This is a worst-case
 * bound, so it cannot fail by bad luck, and a single missing or doubled product (relative size about
 * 1/k of the sum) exceeds it.
 */
class GemmTest {
    private static final double UNIT_ROUNDOFF = Math.scalb(1.0, -24);
    /** Written around every matrix's used region; must survive untouched. */
    private static final float GUARD = 12345.5f;

    private static CpuParallel onePool;
    private static CpuParallel twoPool;
    private static CpuParallel threePool;

    @BeforeAll
    static void startPools() {
        onePool = new CpuParallel(1);
        twoPool = new CpuParallel(2);
        threePool = new CpuParallel(3);
    }

    @AfterAll
    static void stopPools() {
        onePool.close();
        twoPool.close();
        threePool.close();
    }

    /** (m, n, k) triples: every size in 1, 3, 17, 33, 65, 129, 257 appears in every position. */
    static Stream<Arguments> shapes() {
        int[][] mnk = {
            {1, 1, 1}, {3, 17, 33}, {17, 33, 65}, {33, 65, 129}, {65, 129, 257}, {129, 257, 3},
            {257, 1, 17}, {1, 257, 129}, {257, 3, 1}, {3, 1, 257}, {17, 129, 1}, {129, 33, 17},
            // exact tile, k-block and tile multiples; one row or column past them
            {12, 32, 256}, {24, 64, 512}, {13, 33, 257}, {36, 96, 513},
            // several tasks per thread, several k-blocks, tile edges in both directions
            {100, 300, 600},
            // op(B) larger than one packed panel, so gemm runs several column panels
            {5, 1100, 2048},
            // op(A) larger than the packed op(A) that a product's tasks share: each task packs its own
            {400, 40, 2700},
            // either side of the row counts where gemm switches to GemmFewRows
            {4, 70, 300}, {5, 70, 300}, {11, 70, 300}, {12, 70, 300},
        };
        List<Arguments> cases = new ArrayList<>();
        for (int[] s : mnk) {
            for (boolean transA : new boolean[] {false, true}) {
                for (boolean transB : new boolean[] {false, true}) {
                    for (boolean accumulate : new boolean[] {false, true}) {
                        cases.add(Arguments.of(s[0], s[1], s[2], transA, transB, accumulate));
                    }
                }
            }
        }
        return cases.stream();
    }

    @ParameterizedTest(name = "m={0} n={1} k={2} transA={3} transB={4} accumulate={5}")
    @MethodSource("shapes")
    void matchesFp64Reference(int m, int n, int k, boolean transA, boolean transB, boolean accumulate) {
        Problem p = new Problem(m, n, k, transA, transB, 7, 3, 5, 11, 2, 13, 41L * m + 7L * n + k);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment c = p.newC(arena, accumulate);
            p.run(twoPool, c, accumulate);
            p.check(c, accumulate);
        }
    }

    @Test
    void bitIdenticalForAnyThreadCount() {
        int[][] mnk = {{100, 300, 600}, {257, 129, 513}, {5, 1100, 2048}, {40, 70, 33}, {400, 40, 2700}};
        for (int[] s : mnk) {
            for (int variant = 0; variant < 8; variant++) {
                boolean transA = (variant & 1) != 0;
                boolean transB = (variant & 2) != 0;
                boolean accumulate = (variant & 4) != 0;
                Problem p = new Problem(s[0], s[1], s[2], transA, transB, 1, 2, 3, 4, 5, 6, variant);
                try (Arena arena = Arena.ofShared()) {
                    float[] single = p.result(arena, onePool, accumulate);
                    String what = "m=" + s[0] + " n=" + s[1] + " k=" + s[2] + " transA=" + transA
                            + " transB=" + transB + " accumulate=" + accumulate;
                    assertBitEqual(single, p.result(arena, twoPool, accumulate), what + ", 1 vs 2 threads");
                    assertBitEqual(single, p.result(arena, twoPool, accumulate), what + ", 2 threads again");
                    assertBitEqual(single, p.result(arena, threePool, accumulate), what + ", 1 vs 3 threads");
                }
            }
        }
    }

    /**
     * op(B) packed once ({@link Gemm#pack}) gives exactly the bits of gemm packing it itself, for any
     * thread count, and so the same fp64 error bound: shapes from the fewest rows that pack, ragged
     * edges in every dimension, several k-blocks, and an op(B) larger than gemm's own panels. With
     * fewer rows the packed product still meets the bound.
     */
    @Test
    void packedBGivesTheBitsOfUnpackedB() {
        int[][] mnk = {{12, 70, 300}, {13, 33, 257}, {36, 96, 513}, {100, 300, 600}, {12, 1100, 2048}, {5, 40, 17},
            {40, 1, 1}, {24, 64, 0}, {1, 70, 300}, {3, 1100, 2048}, {11, 33, 257}};
        for (int[] s : mnk) {
            for (int variant = 0; variant < 8; variant++) {
                boolean transA = (variant & 1) != 0;
                boolean transB = (variant & 2) != 0;
                boolean accumulate = (variant & 4) != 0;
                Problem p = new Problem(s[0], s[1], s[2], transA, transB, 3, 1, 2, 5, 7, 9, 31L * variant + s[2]);
                String what = "m=" + s[0] + " n=" + s[1] + " k=" + s[2] + " transA=" + transA + " transB=" + transB
                        + " accumulate=" + accumulate;
                try (Arena arena = Arena.ofShared()) {
                    float[] unpacked = Gemm.packsB(s[0], transB) ? p.result(arena, twoPool, accumulate) : null;
                    for (CpuParallel pool : new CpuParallel[] {onePool, twoPool, threePool}) {
                        MemorySegment c = p.newC(arena, accumulate);
                        p.runPacked(pool, c, accumulate);
                        if (unpacked != null) {
                            assertBitEqual(unpacked, p.readC(c), what + ", " + pool.threads() + " threads");
                        }
                        p.check(c, accumulate);
                    }
                }
            }
        }
    }

    /**
     * With a packed op(B), a row of C has the same bits whatever the number of rows in the product:
     * the first r rows of a 40-row product alone give the first r rows of the whole, for r on both
     * sides of the 12-row kernel tile and of the row count below which unpacked gemm reads op(B) in
     * place.
     */
    @Test
    void packedProductRowsDoNotDependOnTheRowCount() {
        int n = 70, k = 300;
        for (boolean transB : new boolean[] {false, true}) {
            Problem whole = new Problem(40, n, k, false, transB, 0, 0, 0, 0, 0, 0, transB ? 5 : 6);
            try (Arena arena = Arena.ofShared()) {
                MemorySegment b = Problem.matrix(arena, whole.bValues, whole.bRows, whole.bCols, whole.ldb, 0);
                Gemm.PackedB packed = Gemm.pack(twoPool, transB, n, k, b, 0, whole.ldb);
                MemorySegment a = Problem.matrix(arena, whole.aValues, 40, k, k, 0);
                MemorySegment all = arena.allocate((long) 40 * n * Float.BYTES);
                Gemm.gemm(twoPool, false, 40, a, 0, k, packed, all, 0, n, false);
                for (int rows : new int[] {1, 2, 4, 5, 11, 12, 13, 39}) {
                    MemorySegment some = arena.allocate((long) rows * n * Float.BYTES);
                    Gemm.gemm(twoPool, false, rows, a, 0, k, packed, some, 0, n, false);
                    float[] expected = new float[rows * n], actual = new float[rows * n];
                    MemorySegment.copy(all, ValueLayout.JAVA_FLOAT, 0, expected, 0, rows * n);
                    MemorySegment.copy(some, ValueLayout.JAVA_FLOAT, 0, actual, 0, rows * n);
                    assertBitEqual(expected, actual, rows + " of 40 rows, transB=" + transB);
                }
            }
        }
    }

    @Test
    void zeroDepthClearsOrKeepsC() {
        Problem p = new Problem(5, 7, 0, false, true, 0, 0, 0, 1, 2, 3, 1);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment c = p.newC(arena, true);
            float[] before = p.readC(c);
            p.run(twoPool, c, true);
            assertBitEqual(before, p.readC(c), "accumulate with k=0 leaves C alone");
            p.run(twoPool, c, false);
            for (float v : p.readC(c)) {
                assertEquals(0f, v, "k=0 without accumulate writes zeros");
            }
            p.checkGuards(c);
        }
    }

    @Test
    void emptyOutputTouchesNothing() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment c = arena.allocate(Float.BYTES);
            c.set(ValueLayout.JAVA_FLOAT, 0, GUARD);
            MemorySegment none = arena.allocate(0);
            Gemm.gemm(twoPool, false, false, 0, 5, 3, none, 0, 3, none, 0, 5, c, 0, 5, false);
            Gemm.gemm(twoPool, true, true, 4, 0, 3, none, 0, 4, none, 0, 3, c, 0, 1, false);
            assertEquals(GUARD, c.get(ValueLayout.JAVA_FLOAT, 0));
        }
    }

    @Test
    void rejectsNegativeDimensions() {
        MemorySegment none = MemorySegment.NULL;
        assertThrows(IllegalArgumentException.class,
                () -> Gemm.gemm(twoPool, false, false, -1, 1, 1, none, 0, 1, none, 0, 1, none, 0, 1, false));
        assertThrows(IllegalArgumentException.class,
                () -> Gemm.gemm(twoPool, false, false, 1, 1, -1, none, 0, 1, none, 0, 1, none, 0, 1, false));
    }

    private static void assertBitEqual(float[] expected, float[] actual, String what) {
        assertEquals(expected.length, actual.length, what);
        for (int i = 0; i < expected.length; i++) {
            if (Float.floatToRawIntBits(expected[i]) != Float.floatToRawIntBits(actual[i])) {
                fail(what + ": element " + i + " is " + actual[i] + ", expected bit-identical " + expected[i]);
            }
        }
    }

    /**
     * One product with its inputs in exactly-sized segments: each operand starts at a non-zero
     * offset and has padded rows; everything outside the used region holds {@link #GUARD}.
     */
    private static final class Problem {
        final int m, n, k;
        final boolean transA, transB;
        final int lda, ldb, ldc;
        final long aOffset, bOffset, cOffset;
        final float[] aValues, bValues, cStart;
        final int aRows, aCols, bRows, bCols;

        Problem(int m, int n, int k, boolean transA, boolean transB, int padA, int padB, int padC,
                long aOffset, long bOffset, long cOffset, long seed) {
            this.m = m;
            this.n = n;
            this.k = k;
            this.transA = transA;
            this.transB = transB;
            this.aRows = transA ? k : m;
            this.aCols = transA ? m : k;
            this.bRows = transB ? n : k;
            this.bCols = transB ? k : n;
            this.lda = aCols + padA;
            this.ldb = bCols + padB;
            this.ldc = n + padC;
            this.aOffset = aOffset;
            this.bOffset = bOffset;
            this.cOffset = cOffset;
            SplittableRandom random = new SplittableRandom(seed);
            this.aValues = randoms(random, aRows * aCols);
            this.bValues = randoms(random, bRows * bCols);
            this.cStart = randoms(random, m * n);
        }

        private static float[] randoms(SplittableRandom random, int count) {
            float[] values = new float[count];
            for (int i = 0; i < count; i++) {
                values[i] = (float) (random.nextDouble() * 2 - 1);
            }
            return values;
        }

        double a(int i, int p) {
            return transA ? aValues[p * aCols + i] : aValues[i * aCols + p];
        }

        double b(int p, int j) {
            return transB ? bValues[j * bCols + p] : bValues[p * bCols + j];
        }

        void run(CpuParallel pool, MemorySegment c, boolean accumulate) {
            try (Arena arena = Arena.ofShared()) {
                MemorySegment a = matrix(arena, aValues, aRows, aCols, lda, aOffset);
                MemorySegment b = matrix(arena, bValues, bRows, bCols, ldb, bOffset);
                Gemm.gemm(pool, transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, accumulate);
                checkGuards(a, aRows, aCols, lda, aOffset);
                checkGuards(b, bRows, bCols, ldb, bOffset);
            }
        }

        /** As {@link #run}, with op(B) packed by {@link Gemm#pack} first. */
        void runPacked(CpuParallel pool, MemorySegment c, boolean accumulate) {
            Gemm.PackedB packed;
            try (Arena arena = Arena.ofShared()) {
                MemorySegment b = matrix(arena, bValues, bRows, bCols, ldb, bOffset);
                packed = Gemm.pack(pool, transB, n, k, b, bOffset, ldb);
                checkGuards(b, bRows, bCols, ldb, bOffset);
            }
            assertEquals(n, packed.n());
            assertEquals(k, packed.k());
            assertEquals(Gemm.packedFloats(n, k) * Float.BYTES, packed.bytes());
            try (Arena arena = Arena.ofShared()) {
                MemorySegment a = matrix(arena, aValues, aRows, aCols, lda, aOffset);
                Gemm.gemm(pool, transA, m, a, aOffset, lda, packed, c, cOffset, ldc, accumulate);
                checkGuards(a, aRows, aCols, lda, aOffset);
            }
        }

        /** C holding cStart when it will be accumulated into, NaN (which must be overwritten) otherwise. */
        MemorySegment newC(Arena arena, boolean accumulate) {
            MemorySegment c = matrix(arena, cStart, m, n, ldc, cOffset);
            if (!accumulate) {
                for (int i = 0; i < m; i++) {
                    for (int j = 0; j < n; j++) {
                        c.setAtIndex(ValueLayout.JAVA_FLOAT, cOffset + (long) i * ldc + j, Float.NaN);
                    }
                }
            }
            return c;
        }

        float[] result(Arena arena, CpuParallel pool, boolean accumulate) {
            MemorySegment c = newC(arena, accumulate);
            run(pool, c, accumulate);
            checkGuards(c);
            return readC(c);
        }

        float[] readC(MemorySegment c) {
            float[] values = new float[m * n];
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    values[i * n + j] = c.getAtIndex(ValueLayout.JAVA_FLOAT, cOffset + (long) i * ldc + j);
                }
            }
            return values;
        }

        void check(MemorySegment c, boolean accumulate) {
            int blocks = (k + Gemm.K_BLOCK - 1) / Gemm.K_BLOCK;
            double factor = 1.01 * (Math.min(k, Gemm.K_BLOCK) + blocks + 1) * UNIT_ROUNDOFF;
            for (int i = 0; i < m; i++) {
                for (int j = 0; j < n; j++) {
                    double exact = accumulate ? cStart[i * n + j] : 0;
                    double magnitude = Math.abs(exact);
                    for (int p = 0; p < k; p++) {
                        double product = a(i, p) * b(p, j);
                        exact += product;
                        magnitude += Math.abs(product);
                    }
                    float actual = c.getAtIndex(ValueLayout.JAVA_FLOAT, cOffset + (long) i * ldc + j);
                    double bound = factor * magnitude;
                    if (!(Math.abs(actual - exact) <= bound)) {
                        fail("C(" + i + "," + j + ") = " + actual + ", fp64 reference " + exact
                                + ", error " + Math.abs(actual - exact) + " > bound " + bound);
                    }
                }
            }
            checkGuards(c);
        }

        void checkGuards(MemorySegment c) {
            checkGuards(c, m, n, ldc, cOffset);
        }

        /** A rows x cols matrix with leading dimension ld at element offset, in a segment of exact size. */
        static MemorySegment matrix(Arena arena, float[] values, int rows, int cols, int ld, long offset) {
            long elements = rows == 0 ? offset : offset + (long) (rows - 1) * ld + cols;
            MemorySegment s = arena.allocate(Math.max(1, elements) * Float.BYTES);
            for (long e = 0; e < elements; e++) {
                s.setAtIndex(ValueLayout.JAVA_FLOAT, e, GUARD);
            }
            for (int r = 0; r < rows; r++) {
                for (int col = 0; col < cols; col++) {
                    s.setAtIndex(ValueLayout.JAVA_FLOAT, offset + (long) r * ld + col, values[r * cols + col]);
                }
            }
            return s;
        }

        private static void checkGuards(MemorySegment s, int rows, int cols, int ld, long offset) {
            long elements = s.byteSize() / Float.BYTES;
            for (long e = 0; e < elements; e++) {
                long rel = e - offset;
                boolean inside = rel >= 0 && rel / ld < rows && rel % ld < cols;
                if (!inside && s.getAtIndex(ValueLayout.JAVA_FLOAT, e) != GUARD) {
                    fail("element " + e + " outside the matrix was overwritten");
                }
            }
        }
    }
}
