package spin.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@link Gemm} for products with only a few rows of C, as in token-by-token generation. There the
 * packed path would mostly multiply padding (its tiles are 12 rows) and spend longer packing op(B)
 * than using it, since each element of op(B) meets only a few rows. This path reads op(B) where it
 * lies; op(A), being small, is first copied into a row-major array. Threads split the columns.
 *
 * <p>Summation order, fixed by the shape alone: with B stored [K,N] each element is an FMA chain
 * over increasing k per k-block, added to C block by block, exactly as the packed path does. With
 * B stored [N,K] each element is a dot product of two contiguous rows: lane l of a vector
 * accumulator takes the FMA chain over k = l (mod vector length) in increasing k, and the lanes
 * are then added by a fixed pairwise tree.
 */
final class GemmFewRows {
    private static final VectorSpecies<Float> F = GemmKernel.F;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Columns of C per row update: four vector accumulators keep both FMA pipes busy. */
    private static final int UPDATE_COLS = 4 * F.length();
    /** Columns of C per dot-product step, sharing each load of an op(A) row. */
    private static final int DOT_COLS = 4;
    /** Shuffles that fold the upper half of the still-live lanes onto the lower half. */
    private static final VectorShuffle<Float>[] FOLDS = folds();

    private GemmFewRows() {}

    static void multiply(CpuParallel pool, boolean transA, boolean transB, int m, int n, int k,
            MemorySegment a, long aOffset, int lda, MemorySegment b, long bOffset, int ldb,
            MemorySegment c, long cOffset, int ldc, boolean accumulate, int tasks) {
        float[] rows = new float[m * k];
        for (int i = 0; i < m; i++) {
            if (transA) {
                for (int p = 0; p < k; p++) {
                    rows[i * k + p] = a.getAtIndex(FLOAT, aOffset + (long) p * lda + i);
                }
            } else {
                MemorySegment.copy(a, FLOAT, (aOffset + (long) i * lda) * Float.BYTES, rows, i * k, k);
            }
        }
        int step = transB ? DOT_COLS : UPDATE_COLS;
        int groups = (n + step - 1) / step;
        int groupsPerTask = (groups + tasks - 1) / tasks;
        pool.forRange(groups, groupsPerTask, (start, end) -> {
            for (int g = start; g < end; g++) {
                int col = g * step;
                int cols = Math.min(step, n - col);
                for (int i = 0; i < m; i++) {
                    long cRow = cOffset + (long) i * ldc;
                    if (transB) {
                        dots(rows, i * k, k, b, bOffset + (long) col * ldb, ldb, cols, c, cRow + col, accumulate);
                    } else {
                        update(rows, i * k, k, b, bOffset + col, ldb, cols, c, cRow + col, accumulate);
                    }
                }
            }
        });
    }

    /**
     * C[row, col .. col+cols] (= or +=) A row · B[:, col .. col+cols], with B rows {@code ldb} apart:
     * the same FMA chains and block sums as the packed path.
     */
    private static void update(float[] rows, int aRow, int k, MemorySegment b, long bStart, int ldb, int cols,
            MemorySegment c, long cStart, boolean accumulate) {
        int lanes = F.length();
        VectorMask<Float> m0 = F.indexInRange(0, cols);
        VectorMask<Float> m1 = F.indexInRange(lanes, cols);
        VectorMask<Float> m2 = F.indexInRange(2 * lanes, cols);
        VectorMask<Float> m3 = F.indexInRange(3 * lanes, cols);
        long cByte = cStart * Float.BYTES;
        long vectorBytes = F.vectorByteSize();
        for (int firstK = 0; firstK < k; firstK += Gemm.K_BLOCK) {
            int endK = Math.min(k, firstK + Gemm.K_BLOCK);
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            for (int p = firstK; p < endK; p++) {
                FloatVector x = FloatVector.broadcast(F, rows[aRow + p]);
                long bRow = (bStart + (long) p * ldb) * Float.BYTES;
                s0 = x.fma(FloatVector.fromMemorySegment(F, b, bRow, ORDER, m0), s0);
                s1 = x.fma(FloatVector.fromMemorySegment(F, b, bRow + vectorBytes, ORDER, m1), s1);
                s2 = x.fma(FloatVector.fromMemorySegment(F, b, bRow + 2 * vectorBytes, ORDER, m2), s2);
                s3 = x.fma(FloatVector.fromMemorySegment(F, b, bRow + 3 * vectorBytes, ORDER, m3), s3);
            }
            boolean add = accumulate || firstK > 0;
            store(s0, c, cByte, add, m0);
            store(s1, c, cByte + vectorBytes, add, m1);
            store(s2, c, cByte + 2 * vectorBytes, add, m2);
            store(s3, c, cByte + 3 * vectorBytes, add, m3);
        }
    }

    private static void store(FloatVector sum, MemorySegment c, long cByte, boolean add, VectorMask<Float> mask) {
        if (add) {
            sum = sum.add(FloatVector.fromMemorySegment(F, c, cByte, ORDER, mask));
        }
        sum.intoMemorySegment(c, cByte, ORDER, mask);
    }

    /**
     * C[row, col .. col+cols] (= or +=) dot(A row, B row j) for the {@code cols <= DOT_COLS} B rows
     * from {@code bStart}, {@code ldb} apart.
     */
    private static void dots(float[] rows, int aRow, int k, MemorySegment b, long bStart, int ldb, int cols,
            MemorySegment c, long cStart, boolean accumulate) {
        long b0 = bStart * Float.BYTES;
        long b1 = b0 + (long) Math.min(1, cols - 1) * ldb * Float.BYTES;
        long b2 = b0 + (long) Math.min(2, cols - 1) * ldb * Float.BYTES;
        long b3 = b0 + (long) Math.min(3, cols - 1) * ldb * Float.BYTES;
        FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
        int p = 0;
        for (int bound = F.loopBound(k); p < bound; p += F.length()) {
            FloatVector x = FloatVector.fromArray(F, rows, aRow + p);
            long offset = (long) p * Float.BYTES;
            s0 = x.fma(FloatVector.fromMemorySegment(F, b, b0 + offset, ORDER), s0);
            s1 = x.fma(FloatVector.fromMemorySegment(F, b, b1 + offset, ORDER), s1);
            s2 = x.fma(FloatVector.fromMemorySegment(F, b, b2 + offset, ORDER), s2);
            s3 = x.fma(FloatVector.fromMemorySegment(F, b, b3 + offset, ORDER), s3);
        }
        if (p < k) {
            VectorMask<Float> tail = F.indexInRange(p, k);
            FloatVector x = FloatVector.fromArray(F, rows, aRow + p, tail);
            long offset = (long) p * Float.BYTES;
            s0 = x.fma(FloatVector.fromMemorySegment(F, b, b0 + offset, ORDER, tail), s0);
            s1 = x.fma(FloatVector.fromMemorySegment(F, b, b1 + offset, ORDER, tail), s1);
            s2 = x.fma(FloatVector.fromMemorySegment(F, b, b2 + offset, ORDER, tail), s2);
            s3 = x.fma(FloatVector.fromMemorySegment(F, b, b3 + offset, ORDER, tail), s3);
        }
        // Rows past cols repeat the last valid B row (keeping reads in bounds) and are not stored.
        put(c, cStart, sumLanes(s0), accumulate);
        if (cols > 1) put(c, cStart + 1, sumLanes(s1), accumulate);
        if (cols > 2) put(c, cStart + 2, sumLanes(s2), accumulate);
        if (cols > 3) put(c, cStart + 3, sumLanes(s3), accumulate);
    }

    private static void put(MemorySegment c, long at, float value, boolean add) {
        c.setAtIndex(FLOAT, at, add ? c.getAtIndex(FLOAT, at) + value : value);
    }

    /**
     * Sum of the lanes by a fixed pairwise tree; FloatVector.reduceLanes leaves the order to the
     * implementation, which would let results depend on the JIT.
     */
    private static float sumLanes(FloatVector v) {
        for (VectorShuffle<Float> fold : FOLDS) {
            v = v.add(v.rearrange(fold));
        }
        return v.lane(0);
    }

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] folds() {
        int count = Integer.numberOfTrailingZeros(F.length());
        VectorShuffle<Float>[] folds = new VectorShuffle[count];
        for (int f = 0; f < count; f++) {
            int half = F.length() >> (f + 1);
            folds[f] = VectorShuffle.fromOp(F, lane -> (lane + half) % F.length());
        }
        return folds;
    }
}
