package spin.backend.cpu;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Single-precision GEMM on row-major matrices held in memory segments:
 * {@code C[M,N] (= or +=) op(A) · op(B)} where op(A) is A[M,K] or, transposed, A stored as [K,M];
 * op(B) is B[K,N] or, transposed, B stored as [N,K]. Offsets and leading dimensions are in elements.
 *
 * <p>Each element of C is summed over k in increasing order by exactly one thread, so results do not
 * depend on the thread count.
 */
public final class Gemm {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;

    private Gemm() {}

    public static void gemm(CpuParallel pool, boolean transA, boolean transB, int m, int n, int k,
            MemorySegment a, long aOffset, int lda,
            MemorySegment b, long bOffset, int ldb,
            MemorySegment c, long cOffset, int ldc, boolean accumulate) {
        if (transB) {
            // Dot products along contiguous rows of A and B.
            pool.forRange(m, rowGrain(n, k), (start, end) -> {
                for (int i = start; i < end; i++) {
                    for (int j = 0; j < n; j++) {
                        float dot = dot(transA, a, aOffset, lda, i, m, b, bOffset + (long) j * ldb, k);
                        long ci = (cOffset + (long) i * ldc + j) * Float.BYTES;
                        c.set(FLOAT, ci, accumulate ? c.get(FLOAT, ci) + dot : dot);
                    }
                }
            });
            return;
        }
        // B rows are contiguous along N: C row i = sum_p A(i,p) * B row p.
        pool.forRange(m, rowGrain(n, k), (start, end) -> {
            for (int i = start; i < end; i++) {
                long cRow = (cOffset + (long) i * ldc) * Float.BYTES;
                if (!accumulate) {
                    c.asSlice(cRow, (long) n * Float.BYTES).fill((byte) 0);
                }
                for (int p = 0; p < k; p++) {
                    long ai = transA ? aOffset + (long) p * lda + i : aOffset + (long) i * lda + p;
                    float aip = a.get(FLOAT, ai * Float.BYTES);
                    axpy(aip, b, (bOffset + (long) p * ldb) * Float.BYTES, c, cRow, n);
                }
            }
        });
    }

    private static int rowGrain(int n, int k) {
        long work = Math.max(1L, (long) n * k);
        return (int) Math.max(1, Math.min(64, (1L << 18) / work));
    }

    private static float dot(boolean transA, MemorySegment a, long aOffset, int lda, int i, int m,
            MemorySegment b, long bStart, int k) {
        if (transA) {
            float s = 0f;
            for (int p = 0; p < k; p++) {
                s += a.get(FLOAT, (aOffset + (long) p * lda + i) * Float.BYTES) * b.get(FLOAT, (bStart + p) * Float.BYTES);
            }
            return s;
        }
        long aRow = (aOffset + (long) i * lda) * Float.BYTES;
        long bRow = bStart * Float.BYTES;
        FloatVector acc = FloatVector.zero(F);
        int p = 0;
        int bound = F.loopBound(k);
        for (; p < bound; p += F.length()) {
            FloatVector x = FloatVector.fromMemorySegment(F, a, aRow + (long) p * Float.BYTES, ORDER);
            FloatVector y = FloatVector.fromMemorySegment(F, b, bRow + (long) p * Float.BYTES, ORDER);
            acc = x.fma(y, acc);
        }
        float s = Mem.sumLanes(acc);
        for (; p < k; p++) {
            s += a.get(FLOAT, aRow + (long) p * Float.BYTES) * b.get(FLOAT, bRow + (long) p * Float.BYTES);
        }
        return s;
    }

    private static void axpy(float alpha, MemorySegment x, long xByte, MemorySegment y, long yByte, int n) {
        FloatVector av = FloatVector.broadcast(F, alpha);
        int j = 0;
        int bound = F.loopBound(n);
        for (; j < bound; j += F.length()) {
            long off = (long) j * Float.BYTES;
            FloatVector xv = FloatVector.fromMemorySegment(F, x, xByte + off, ORDER);
            FloatVector yv = FloatVector.fromMemorySegment(F, y, yByte + off, ORDER);
            xv.fma(av, yv).intoMemorySegment(y, yByte + off, ORDER);
        }
        for (; j < n; j++) {
            long off = (long) j * Float.BYTES;
            y.set(FLOAT, yByte + off, y.get(FLOAT, yByte + off) + alpha * x.get(FLOAT, xByte + off));
        }
    }
}
