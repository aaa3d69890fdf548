package spin.backend.cpu;

import static spin.backend.cpu.GemmKernel.COLS;
import static spin.backend.cpu.GemmKernel.F;
import static spin.backend.cpu.GemmKernel.ROWS;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * Single-precision GEMM on row-major matrices held in memory segments:
 * {@code C[M,N] (= or +=) op(A) · op(B)} where op(A) is A[M,K] or, transposed, A stored as [K,M];
 * op(B) is B[K,N] or, transposed, B stored as [N,K]. Offsets and leading dimensions are in elements.
 *
 * <p>Structure (after BLIS, with two parallel phases per column panel so that a small product pays
 * for only two thread hand-offs): the threads first pack op(B) for a panel of columns, all of K,
 * into a buffer they share; then they take tasks, each a block of rows by a group of columns of C.
 * A task walks K in blocks of {@link #K_BLOCK}: it packs its rows of op(A) for the k-block, then runs
 * {@link GemmKernel} for every 12-row sliver of A (kept in L1) against every 32-column sliver of B
 * (streamed from L2). Packing absorbs the four transpose cases, so one kernel serves all of them.
 *
 * <p>Determinism: each element of C is written by one thread and becomes
 * {@code ((C0 + S0) + S1) + ...}, where S_b is the FMA sum over k-block b in increasing k and C0 is
 * its old value ({@code accumulate}) or absent. The k-block size is a constant, so results are
 * bit-identical for any thread count and schedule; K is never split across threads. Task shapes
 * depend on the thread count, but they only decide who computes an element, not how.
 */
public final class Gemm {
    /**
     * Depth of one k-block: a packed A sliver (12 x 256 floats, 12 KiB) stays in L1 while B slivers
     * stream past it. Part of the summation order, so it must never depend on the machine.
     */
    static final int K_BLOCK = 256;
    /**
     * Most floats of packed op(B) held at once (8 MiB, well inside the L3): a product whose op(B) is
     * larger is done in several column panels.
     */
    private static final int PANEL_FLOATS = 1 << 21;
    /** A task's column group is at most 16 slivers: its B k-block (256 x 512 floats) fits in L2. */
    private static final int MAX_GROUP_COL_SLIVERS = 16;
    /** A task's row block is at most 8 slivers: its packed A k-block (96 x 256 floats) sits in L2 too. */
    private static final int MAX_GROUP_ROW_SLIVERS = 8;
    /** Tasks per thread to aim for, so that dynamic scheduling can even out uneven progress. */
    private static final int TASKS_PER_THREAD = 4;

    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int SLIVER_FLOATS = K_BLOCK * COLS;
    private static final int A_SLIVER_FLOATS = K_BLOCK * ROWS;

    /** Packed op(B) of the current panel, owned by the thread that called gemm. */
    private static final ThreadLocal<float[][]> PANEL = ThreadLocal.withInitial(() -> new float[1][0]);
    private static final ThreadLocal<float[]> A_BLOCK =
            ThreadLocal.withInitial(() -> new float[MAX_GROUP_ROW_SLIVERS * A_SLIVER_FLOATS]);
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[ROWS * COLS]);

    private Gemm() {}

    public static void gemm(CpuParallel pool, boolean transA, boolean transB, int m, int n, int k,
            MemorySegment a, long aOffset, int lda,
            MemorySegment b, long bOffset, int ldb,
            MemorySegment c, long cOffset, int ldc, boolean accumulate) {
        if (m < 0 || n < 0 || k < 0) {
            throw new IllegalArgumentException("gemm dimensions must be >= 0, got m=" + m + " n=" + n + " k=" + k);
        }
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            if (!accumulate) {
                for (int i = 0; i < m; i++) {
                    c.asSlice((cOffset + (long) i * ldc) * Float.BYTES, (long) n * Float.BYTES).fill((byte) 0);
                }
            }
            return;
        }
        int kBlocks = (k + K_BLOCK - 1) / K_BLOCK;
        int colSlivers = (n + COLS - 1) / COLS;
        int panelSlivers = Math.max(1, Math.min(colSlivers, PANEL_FLOATS / (kBlocks * SLIVER_FLOATS)));
        float[] panel = panelBuffer(kBlocks * panelSlivers * SLIVER_FLOATS);
        for (int firstSliver = 0; firstSliver < colSlivers; firstSliver += panelSlivers) {
            int slivers = Math.min(panelSlivers, colSlivers - firstSliver);
            int firstCol = firstSliver * COLS;
            // Phase 1: pack op(B)(all k, panel columns) as kBlocks x slivers B slivers.
            pool.forRange(kBlocks * slivers, 1, (start, end) -> {
                for (int t = start; t < end; t++) {
                    int kBlock = t / slivers;
                    int sliver = t % slivers;
                    int col = firstCol + sliver * COLS;
                    int firstK = kBlock * K_BLOCK;
                    packB(transB, b, bOffset, ldb, firstK, Math.min(K_BLOCK, k - firstK), col,
                            Math.min(COLS, n - col), panel, t * SLIVER_FLOATS);
                }
            });
            // Phase 2: tasks over a grid of row blocks x column groups of this panel.
            int rowSlivers = (m + ROWS - 1) / ROWS;
            int wanted = TASKS_PER_THREAD * pool.threads();
            int colGroups = clamp(ceilDiv(wanted, rowSlivers), ceilDiv(slivers, MAX_GROUP_COL_SLIVERS), slivers);
            int groupSlivers = ceilDiv(slivers, colGroups);
            int rowBlocks = clamp(ceilDiv(wanted, colGroups), ceilDiv(rowSlivers, MAX_GROUP_ROW_SLIVERS), rowSlivers);
            int blockSlivers = ceilDiv(rowSlivers, rowBlocks);
            int rowBlockCount = ceilDiv(rowSlivers, blockSlivers);
            int colGroupCount = ceilDiv(slivers, groupSlivers);
            pool.forRange(rowBlockCount * colGroupCount, 1, (start, end) -> {
                for (int t = start; t < end; t++) {
                    int firstRowSliver = (t % rowBlockCount) * blockSlivers;
                    int firstColSliver = (t / rowBlockCount) * groupSlivers;
                    multiplyBlock(transA, m, n, k, a, aOffset, lda, c, cOffset, ldc, accumulate, panel, slivers,
                            firstRowSliver, Math.min(blockSlivers, rowSlivers - firstRowSliver),
                            firstCol, firstColSliver, Math.min(groupSlivers, slivers - firstColSliver));
                }
            });
        }
    }

    /**
     * One task: C rows of {@code rowSlivers} slivers from {@code firstRowSliver} by the panel's
     * B slivers {@code firstColSliver ..}, over all of K.
     */
    private static void multiplyBlock(boolean transA, int m, int n, int k, MemorySegment a, long aOffset, int lda,
            MemorySegment c, long cOffset, int ldc, boolean accumulate, float[] panel, int panelSlivers,
            int firstRowSliver, int rowSlivers, int panelFirstCol, int firstColSliver, int colSlivers) {
        float[] aBlock = A_BLOCK.get();
        float[] tile = TILE.get();
        for (int firstK = 0, kBlock = 0; firstK < k; firstK += K_BLOCK, kBlock++) {
            int kc = Math.min(K_BLOCK, k - firstK);
            boolean add = accumulate || firstK > 0;
            for (int r = 0; r < rowSlivers; r++) {
                int row = (firstRowSliver + r) * ROWS;
                packA(transA, a, aOffset, lda, row, Math.min(ROWS, m - row), firstK, kc, aBlock, r * A_SLIVER_FLOATS);
            }
            for (int r = 0; r < rowSlivers; r++) {
                int row = (firstRowSliver + r) * ROWS;
                int rows = Math.min(ROWS, m - row);
                for (int s = firstColSliver; s < firstColSliver + colSlivers; s++) {
                    int col = panelFirstCol + s * COLS;
                    GemmKernel.multiply(kc, aBlock, r * A_SLIVER_FLOATS, panel,
                            (kBlock * panelSlivers + s) * SLIVER_FLOATS, tile);
                    storeTile(tile, rows, Math.min(COLS, n - col),
                            c, (cOffset + (long) row * ldc + col) * Float.BYTES, ldc, add);
                }
            }
        }
    }

    private static float[] panelBuffer(int floats) {
        float[][] holder = PANEL.get();
        if (holder[0].length < floats) {
            holder[0] = new float[floats];
        }
        return holder[0];
    }

    private static int ceilDiv(int x, int y) {
        return (x + y - 1) / y;
    }

    private static int clamp(int value, int min, int max) {
        return Math.max(min, Math.min(max, value));
    }

    /** C (=, or += when {@code add}) the top-left rows x cols of a kernel tile. */
    private static void storeTile(float[] tile, int rows, int cols, MemorySegment c, long cTile, int ldc,
            boolean add) {
        VectorMask<Float> low = F.indexInRange(0, cols);
        VectorMask<Float> high = F.indexInRange(F.length(), cols);
        long highByte = F.vectorByteSize();
        for (int i = 0; i < rows; i++) {
            long row = cTile + (long) i * ldc * Float.BYTES;
            FloatVector lowSum = FloatVector.fromArray(F, tile, i * COLS);
            FloatVector highSum = FloatVector.fromArray(F, tile, i * COLS + F.length());
            if (add) {
                lowSum = lowSum.add(FloatVector.fromMemorySegment(F, c, row, ORDER, low));
                highSum = highSum.add(FloatVector.fromMemorySegment(F, c, row + highByte, ORDER, high));
            }
            lowSum.intoMemorySegment(c, row, ORDER, low);
            highSum.intoMemorySegment(c, row + highByte, ORDER, high);
        }
    }

    /**
     * Packs op(B)(firstK .. firstK+kc, col .. col+cols) as kc rows of COLS floats from
     * {@code panel[start]}, zero-filling columns past {@code cols}.
     */
    private static void packB(boolean transB, MemorySegment b, long bOffset, int ldb, int firstK, int kc,
            int col, int cols, float[] panel, int start) {
        if (!transB) {
            VectorMask<Float> low = F.indexInRange(0, cols);
            VectorMask<Float> high = F.indexInRange(F.length(), cols);
            long vectorBytes = F.vectorByteSize();
            for (int p = 0; p < kc; p++) {
                long src = (bOffset + (long) (firstK + p) * ldb + col) * Float.BYTES;
                int dst = start + p * COLS;
                FloatVector.fromMemorySegment(F, b, src, ORDER, low).intoArray(panel, dst);
                FloatVector.fromMemorySegment(F, b, src + vectorBytes, ORDER, high).intoArray(panel, dst + F.length());
            }
            return;
        }
        if (cols < COLS) {
            Arrays.fill(panel, start, start + kc * COLS, 0f);
        }
        for (int j = 0; j < cols; j++) {
            long src = (bOffset + (long) (col + j) * ldb + firstK) * Float.BYTES;
            int dst = start + j;
            for (int p = 0; p < kc; p++) {
                panel[dst + p * COLS] = b.get(FLOAT, src + (long) p * Float.BYTES);
            }
        }
    }

    /**
     * Packs op(A)(row .. row+rows, firstK .. firstK+kc) from {@code sliver[start]} as kc groups of
     * ROWS floats, zero-filling rows past {@code rows}.
     */
    private static void packA(boolean transA, MemorySegment a, long aOffset, int lda, int row, int rows,
            int firstK, int kc, float[] sliver, int start) {
        if (rows < ROWS) {
            Arrays.fill(sliver, start, start + kc * ROWS, 0f);
        }
        if (transA) {
            for (int p = 0; p < kc; p++) {
                long src = (aOffset + (long) (firstK + p) * lda + row) * Float.BYTES;
                int dst = start + p * ROWS;
                for (int i = 0; i < rows; i++) {
                    sliver[dst + i] = a.get(FLOAT, src + (long) i * Float.BYTES);
                }
            }
            return;
        }
        for (int i = 0; i < rows; i++) {
            long src = (aOffset + (long) (row + i) * lda + firstK) * Float.BYTES;
            for (int p = 0; p < kc; p++) {
                sliver[start + p * ROWS + i] = a.get(FLOAT, src + (long) p * Float.BYTES);
            }
        }
    }
}
