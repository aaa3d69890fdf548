package spin.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
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
 * are then added by the fixed pairwise tree of {@link Mem#sumLanes}.
 */
final class GemmFewRows {
    private static final VectorSpecies<Float> F = GemmKernel.F;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    /** Columns of C per row update: four vector accumulators keep both FMA pipes busy. */
    private static final int UPDATE_COLS = 4 * F.length();
    /** Columns of C per dot-product step, sharing each load of an op(A) row. */
    private static final int DOT_COLS = 4;

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
            float[] acc = transB ? new float[DOT_COLS * F.length()] : null;
            for (int g = start; g < end; g++) {
                int col = g * step;
                int cols = Math.min(step, n - col);
                for (int i = 0; i < m; i++) {
                    long cRow = cOffset + (long) i * ldc;
                    if (transB) {
                        dots(rows, i * k, k, b, bOffset + (long) col * ldb, ldb, cols, c, cRow + col, accumulate, acc);
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
     * from {@code bStart}, {@code ldb} apart; {@code acc} is scratch for DOT_COLS vectors.
     *
     * <p>The work is split over three small methods that pass their accumulators through
     * {@code acc}: as one method, C1's register allocator sometimes gave up on it ("out of virtual
     * registers"), and the method then ran unintrinsified Vector API code (20x slower) for good.
     */
    private static void dots(float[] rows, int aRow, int k, MemorySegment b, long bStart, int ldb, int cols,
            MemorySegment c, long cStart, boolean accumulate, float[] acc) {
        // Rows past cols repeat the last valid B row (keeping reads in bounds) and are not stored.
        long b0 = bStart * Float.BYTES;
        long b1 = b0 + (long) Math.min(1, cols - 1) * ldb * Float.BYTES;
        long b2 = b0 + (long) Math.min(2, cols - 1) * ldb * Float.BYTES;
        long b3 = b0 + (long) Math.min(3, cols - 1) * ldb * Float.BYTES;
        int bound = F.loopBound(k);
        dotsBody(rows, aRow, bound, b, b0, b1, b2, b3, acc);
        if (bound < k) {
            dotsTail(rows, aRow, bound, k, b, b0, b1, b2, b3, acc);
        }
        storeDots(acc, cols, c, cStart, accumulate);
    }

    /** acc[j] = the lane-wise FMA chains of A row and B row j over k in [0, bound), a whole number of vectors. */
    private static void dotsBody(float[] rows, int aRow, int bound, MemorySegment b, long b0, long b1, long b2, long b3,
            float[] acc) {
        FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
        for (int p = 0; p < bound; p += F.length()) {
            FloatVector x = FloatVector.fromArray(F, rows, aRow + p);
            long offset = (long) p * Float.BYTES;
            s0 = x.fma(FloatVector.fromMemorySegment(F, b, b0 + offset, ORDER), s0);
            s1 = x.fma(FloatVector.fromMemorySegment(F, b, b1 + offset, ORDER), s1);
            s2 = x.fma(FloatVector.fromMemorySegment(F, b, b2 + offset, ORDER), s2);
            s3 = x.fma(FloatVector.fromMemorySegment(F, b, b3 + offset, ORDER), s3);
        }
        int lanes = F.length();
        s0.intoArray(acc, 0);
        s1.intoArray(acc, lanes);
        s2.intoArray(acc, 2 * lanes);
        s3.intoArray(acc, 3 * lanes);
    }

    /** Continues the chains in {@code acc} over the last, partial vector of k, from {@code p}. */
    private static void dotsTail(float[] rows, int aRow, int p, int k, MemorySegment b, long b0, long b1, long b2, long b3,
            float[] acc) {
        int lanes = F.length();
        VectorMask<Float> tail = F.indexInRange(p, k);
        FloatVector x = FloatVector.fromArray(F, rows, aRow + p, tail);
        long offset = (long) p * Float.BYTES;
        x.fma(FloatVector.fromMemorySegment(F, b, b0 + offset, ORDER, tail), FloatVector.fromArray(F, acc, 0))
                .intoArray(acc, 0);
        x.fma(FloatVector.fromMemorySegment(F, b, b1 + offset, ORDER, tail), FloatVector.fromArray(F, acc, lanes))
                .intoArray(acc, lanes);
        x.fma(FloatVector.fromMemorySegment(F, b, b2 + offset, ORDER, tail), FloatVector.fromArray(F, acc, 2 * lanes))
                .intoArray(acc, 2 * lanes);
        x.fma(FloatVector.fromMemorySegment(F, b, b3 + offset, ORDER, tail), FloatVector.fromArray(F, acc, 3 * lanes))
                .intoArray(acc, 3 * lanes);
    }

    /** C[j] (= or +=) the lane sum of acc[j] for the first {@code cols} of the DOT_COLS chains. */
    private static void storeDots(float[] acc, int cols, MemorySegment c, long cStart, boolean accumulate) {
        for (int j = 0; j < cols; j++) {
            float sum = Mem.sumLanes(FloatVector.fromArray(F, acc, j * F.length()));
            long at = cStart + j;
            c.setAtIndex(FLOAT, at, accumulate ? c.getAtIndex(FLOAT, at) + sum : sum);
        }
    }
}
