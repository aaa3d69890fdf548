package spin.backend.cpu;

import static spin.backend.cpu.GemmKernel.COLS;
import static spin.backend.cpu.GemmKernel.F;
import static spin.backend.cpu.GemmKernel.ROWS;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;

/**
 * Single-precision GEMM on row-major matrices held in memory segments:
 * {@code C[M,N] (= or +=) op(A) · op(B)} where op(A) is A[M,K] or, transposed, A stored as [K,M];
 * op(B) is B[K,N] or, transposed, B stored as [N,K]. Offsets and leading dimensions are in elements.
 *
 * <p>Structure (after BLIS): op(B) is packed, for all of K, one panel of columns at a time into a
 * buffer the threads share; C is cut into tasks, each a block of rows by a group of the panel's
 * columns. A task walks K in blocks of {@link #K_BLOCK}: it packs its rows of op(A) for the k-block
 * (or, when all of op(A) packed is at most 4 MiB, finds them packed once for all tasks), then runs
 * {@link GemmKernel} for every 12-row sliver of A (kept in L1) against every 32-column sliver of B
 * (streamed from L2). Packing absorbs the four transpose cases, so one kernel serves all of them.
 * A panel costs one {@link CpuParallel#forRange} (one thread hand-off): every task starts by
 * helping to pack whatever of the panel (and of a shared op(A)) is still unclaimed, then waits
 * until it is complete, which takes at most one sliver's packing time. Products too small to repay
 * a hand-off run on the calling thread, and products with only a few rows take {@link GemmFewRows}.
 *
 * <p>A constant op(B) (an inference weight) can be packed once into a {@link PackedB} and passed
 * to {@link #gemm(CpuParallel, boolean, int, MemorySegment, long, int, PackedB, MemorySegment, long, int, boolean)}
 * instead: the same layout, kernel and summation order, so the same bits, without the packing
 * (which costs about as much as the multiplication when op(B) meets only a few dozen rows), and
 * with that order for products of any number of rows.
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
    private static final int MAX_BLOCK_ROW_SLIVERS = 8;
    /**
     * Tasks per thread to aim for: the last task to finish leaves the other threads idle, so tasks
     * should be short, but each task packs its own A and reloads its B k-blocks into L2.
     */
    private static final int TASKS_PER_THREAD = 16;
    /**
     * Multiply-adds below which a task is not worth handing to another thread: waking one costs
     * tens of microseconds, about what a core needs for 2^20 multiply-adds.
     */
    private static final long MIN_TASK_FMAS = 1 << 20;
    /**
     * Products with fewer rows than this take {@link GemmFewRows}, when op(B) is B stored [N,K] (its
     * dot products avoid transposing B) and when it is B stored [K,N]: the crossovers measured on
     * the 2-core Zen 4 development machine.
     */
    private static final int FEW_ROWS_DOTS = ROWS;
    private static final int FEW_ROWS_UPDATES = 5;
    /**
     * Most floats of packed op(A) packed once per product and shared by its tasks (4 MiB); a larger
     * op(A) is packed by each task for its own rows, k-block by k-block. With few rows, a product
     * has many column groups, and each task would pack the same rows again: in a 32-row decode step
     * that cost about as much as the multiplication.
     */
    private static final int SHARED_A_FLOATS = 1 << 20;

    private static final ByteOrder ORDER = ByteOrder.nativeOrder();
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final int SLIVER_FLOATS = K_BLOCK * COLS;
    private static final int A_SLIVER_FLOATS = K_BLOCK * ROWS;

    /** Packed op(B), owned by the thread that called gemm and shared with its helpers. */
    private static final ThreadLocal<float[]> PANEL = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> A_BLOCK =
            ThreadLocal.withInitial(() -> new float[MAX_BLOCK_ROW_SLIVERS * A_SLIVER_FLOATS]);
    /** Packed op(A) shared by a product's tasks, owned by the thread that called gemm. */
    private static final ThreadLocal<float[]> SHARED_A = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[ROWS * COLS]);

    private Gemm() {}

    /**
     * C (=, or += when {@code accumulate}) op(A) · op(B), as described above. C must not overlap A
     * or B. Throws IllegalArgumentException for a negative dimension; with M or N zero it does
     * nothing, and with K zero it zeroes C (or, accumulating, leaves it).
     */
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
        long fmas = (long) m * n * k;
        int tasks = (int) Math.max(1, Math.min(TASKS_PER_THREAD * pool.threads(), fmas / MIN_TASK_FMAS));
        if (m < (transB ? FEW_ROWS_DOTS : FEW_ROWS_UPDATES)) {
            GemmFewRows.multiply(pool, transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb,
                    c, cOffset, ldc, accumulate, tasks);
            return;
        }
        new Product(transA, transB, m, n, k, a, aOffset, lda, b, bOffset, ldb, null, c, cOffset, ldc, accumulate)
                .run(pool, tasks);
    }

    /**
     * Whether {@link #gemm} multiplies an m-row op(A) by op(B) through packed op(B), in the order
     * of a product with a {@link PackedB} (below this, {@link GemmFewRows} reads op(B) in place and
     * sums in another order).
     */
    public static boolean packsB(int m, boolean transB) {
        return m >= (transB ? FEW_ROWS_DOTS : FEW_ROWS_UPDATES);
    }

    /**
     * C (=, or += when {@code accumulate}) op(A) · op(B) with op(B) packed beforehand, through the
     * kernel for every m: each element is summed in the order of the class comment whatever the
     * number of rows, so a row of C has the same bits in a product of 1 row as in one of 1000, and
     * the same bits as {@link #gemm} on the op(B) that was packed whenever that packs it too
     * ({@link #packsB}). With fewer rows than the kernel's 12, most of its work is padding, but
     * such products are bound by reading op(B) from memory, which the padding does not add to:
     * for one row this measured no slower than {@link GemmFewRows}.
     */
    public static void gemm(CpuParallel pool, boolean transA, int m, MemorySegment a, long aOffset, int lda, PackedB b,
            MemorySegment c, long cOffset, int ldc, boolean accumulate) {
        if (m < 0) {
            throw new IllegalArgumentException("gemm dimensions must be >= 0, got m=" + m);
        }
        int n = b.n, k = b.k;
        if (m == 0 || n == 0) {
            return;
        }
        if (k == 0) {
            gemm(pool, transA, b.transB, m, n, 0, a, aOffset, lda, MemorySegment.NULL, 0, 1, c, cOffset, ldc, accumulate);
            return;
        }
        long fmas = (long) m * n * k;
        int tasks = (int) Math.max(1, Math.min(TASKS_PER_THREAD * pool.threads(), fmas / MIN_TASK_FMAS));
        new Product(transA, b.transB, m, n, k, a, aOffset, lda, null, 0, 0, b, c, cOffset, ldc, accumulate).run(pool, tasks);
    }

    /**
     * Packs op(B) (B[K,N], or B stored [N,K] when {@code transB}) for
     * {@link #gemm(CpuParallel, boolean, int, MemorySegment, long, int, PackedB, MemorySegment, long, int, boolean)},
     * on the pool's threads. The copy is a Java array of {@link #packedFloats} floats and does not
     * follow later changes to B.
     */
    public static PackedB pack(CpuParallel pool, boolean transB, int n, int k, MemorySegment b, long bOffset, int ldb) {
        if (n < 0 || k < 0) {
            throw new IllegalArgumentException("pack dimensions must be >= 0, got n=" + n + " k=" + k);
        }
        int colSlivers = ceilDiv(n, COLS);
        float[] data = new float[Math.toIntExact(packedFloats(n, k))];
        int kBlocks = ceilDiv(k, K_BLOCK);
        int slivers = kBlocks * colSlivers;
        // About 8 slivers (256 KiB of output) per chunk.
        pool.forRange(slivers, 8, (start, end) -> {
            for (int t = start; t < end; t++) {
                int firstK = t / colSlivers * K_BLOCK;
                int kc = Math.min(K_BLOCK, k - firstK);
                int sliver = t % colSlivers;
                int col = sliver * COLS;
                packB(transB, b, bOffset, ldb, firstK, kc, col, Math.min(COLS, n - col), data,
                        sliverOffset(firstK, kc, colSlivers, sliver));
            }
        });
        return new PackedB(transB, n, k, data);
    }

    /** Floats a {@link PackedB} of op(B)[K,N] holds: K x N with N rounded up to the 32-column slivers. */
    public static long packedFloats(int n, int k) {
        return (long) k * ceilDiv(n, COLS) * COLS;
    }

    /**
     * Packed op(B)[K,N] in the layout of the panels {@link #gemm} packs for itself, for all of N:
     * k-block after k-block, each holding every COLS-wide column sliver as kc rows of COLS floats
     * (columns past N are zeros).
     */
    public static final class PackedB {
        final boolean transB;
        final int n, k;
        final float[] data;

        private PackedB(boolean transB, int n, int k, float[] data) {
            this.transB = transB;
            this.n = n;
            this.k = k;
            this.data = data;
        }

        /** Columns of op(B) (output features of a weight). */
        public int n() {
            return n;
        }

        /** Depth of op(B) (input features of a weight). */
        public int k() {
            return k;
        }

        /** Bytes of packed data held. */
        public long bytes() {
            return (long) data.length * Float.BYTES;
        }
    }

    /**
     * Where the B sliver of k-block {@code firstK} (of depth kc) and column sliver {@code sliver}
     * starts, in a panel of {@code slivers} column slivers laid out as {@link PackedB} describes.
     */
    private static int sliverOffset(int firstK, int kc, int slivers, int sliver) {
        return firstK * slivers * COLS + sliver * kc * COLS;
    }

    /** One gemm call: its operands, and the panel of op(B) being worked on. */
    private static final class Product {
        final boolean transA, transB;
        final int m, n, k;
        final MemorySegment a, b, c;
        final long aOffset, bOffset, cOffset;
        final int lda, ldb, ldc;
        final boolean accumulate;
        final int kBlocks;
        final int rowSlivers;
        /** op(B) packed beforehand (null: packed here, panel by panel). */
        final PackedB packed;
        final float[] panel;
        final int panelCapacity;
        /** All of op(A) packed, sliver (kBlock * rowSlivers + r) at (kBlock * rowSlivers + r) * A_SLIVER_FLOATS; or null. */
        final float[] sharedA;
        /** A slivers claimed for packing into sharedA, and packed. */
        final AtomicInteger aClaimed = new AtomicInteger();
        final AtomicInteger aDone = new AtomicInteger();

        // The current panel: its first B sliver, width in slivers, and the task grid over it.
        int firstColSliver;
        int panelSlivers;
        int blockRowSlivers;
        int rowBlocks;
        int groupColSlivers;
        /** B slivers of the panel claimed for packing (numbered k-block * panelSlivers + sliver), and packed. */
        final AtomicInteger packClaimed = new AtomicInteger();
        final AtomicInteger packDone = new AtomicInteger();

        Product(boolean transA, boolean transB, int m, int n, int k, MemorySegment a, long aOffset, int lda,
                MemorySegment b, long bOffset, int ldb, PackedB packed, MemorySegment c, long cOffset, int ldc,
                boolean accumulate) {
            this.transA = transA;
            this.transB = transB;
            this.m = m;
            this.n = n;
            this.k = k;
            this.a = a;
            this.b = b;
            this.c = c;
            this.aOffset = aOffset;
            this.bOffset = bOffset;
            this.cOffset = cOffset;
            this.lda = lda;
            this.ldb = ldb;
            this.ldc = ldc;
            this.accumulate = accumulate;
            this.kBlocks = ceilDiv(k, K_BLOCK);
            this.rowSlivers = ceilDiv(m, ROWS);
            int colSlivers = ceilDiv(n, COLS);
            this.packed = packed;
            if (packed != null) {
                // All of op(B) is one panel, already packed: one hand-off per product.
                this.panelCapacity = colSlivers;
                this.panel = packed.data;
            } else {
                this.panelCapacity = clamp(PANEL_FLOATS / (kBlocks * SLIVER_FLOATS), 1, colSlivers);
                this.panel = panelBuffer(kBlocks * panelCapacity * SLIVER_FLOATS);
            }
            long aFloats = (long) kBlocks * rowSlivers * A_SLIVER_FLOATS;
            this.sharedA = aFloats <= SHARED_A_FLOATS ? sharedABuffer((int) aFloats) : null;
        }

        /** Computes the product in about {@code wanted} parallel tasks per panel. */
        void run(CpuParallel pool, int wanted) {
            int colSlivers = ceilDiv(n, COLS);
            for (firstColSliver = 0; firstColSliver < colSlivers; firstColSliver += panelSlivers) {
                panelSlivers = Math.min(panelCapacity, colSlivers - firstColSliver);
                int colGroups = clamp(ceilDiv(wanted, rowSlivers), ceilDiv(panelSlivers, MAX_GROUP_COL_SLIVERS),
                        panelSlivers);
                groupColSlivers = ceilDiv(panelSlivers, colGroups);
                int blocks = clamp(ceilDiv(wanted, colGroups), ceilDiv(rowSlivers, MAX_BLOCK_ROW_SLIVERS), rowSlivers);
                blockRowSlivers = ceilDiv(rowSlivers, blocks);
                rowBlocks = ceilDiv(rowSlivers, blockRowSlivers);
                packClaimed.set(0);
                packDone.set(0);
                int tasks = rowBlocks * ceilDiv(panelSlivers, groupColSlivers);
                pool.forRange(tasks, ceilDiv(tasks, wanted), (start, end) -> {
                    if (sharedA != null) {
                        helpPackA();
                    }
                    if (packed == null) {
                        helpPackPanel();
                    }
                    for (int task = start; task < end; task++) {
                        // Consecutive tasks share a column group, so its B k-blocks are reused from L2.
                        multiplyBlock(task % rowBlocks * blockRowSlivers, task / rowBlocks * groupColSlivers);
                    }
                });
            }
        }

        /** Packs unclaimed A slivers into sharedA until none is left, then waits for the others' packing. */
        private void helpPackA() {
            int total = kBlocks * rowSlivers;
            for (int t; (t = aClaimed.getAndIncrement()) < total; ) {
                int firstK = t / rowSlivers * K_BLOCK;
                int row = t % rowSlivers * ROWS;
                packA(transA, a, aOffset, lda, row, Math.min(ROWS, m - row), firstK, Math.min(K_BLOCK, k - firstK),
                        sharedA, t * A_SLIVER_FLOATS);
                aDone.incrementAndGet();
            }
            while (aDone.get() < total) {
                Thread.onSpinWait();
            }
        }

        /** Packs unclaimed B slivers of the panel until none is left, then waits for the others' packing. */
        private void helpPackPanel() {
            int total = kBlocks * panelSlivers;
            for (int t; (t = packClaimed.getAndIncrement()) < total; ) {
                int kBlock = t / panelSlivers;
                int firstK = kBlock * K_BLOCK;
                int col = (firstColSliver + t % panelSlivers) * COLS;
                int kc = Math.min(K_BLOCK, k - firstK);
                packB(transB, b, bOffset, ldb, firstK, kc, col, Math.min(COLS, n - col),
                        panel, sliverOffset(firstK, kc, panelSlivers, t % panelSlivers));
                packDone.incrementAndGet();
            }
            while (packDone.get() < total) {
                Thread.onSpinWait();
            }
        }

        /**
         * One task: the rows of the row slivers from {@code firstRowSliver} (at most blockRowSlivers)
         * by the panel's B slivers from {@code firstSliver} (at most groupColSlivers), over all of K.
         */
        private void multiplyBlock(int firstRowSliver, int firstSliver) {
            int rowCount = Math.min(blockRowSlivers, rowSlivers - firstRowSliver);
            int sliverEnd = Math.min(firstSliver + groupColSlivers, panelSlivers);
            float[] aBlock = sharedA != null ? sharedA : A_BLOCK.get();
            float[] tile = TILE.get();
            for (int kBlock = 0; kBlock < kBlocks; kBlock++) {
                int firstK = kBlock * K_BLOCK;
                int kc = Math.min(K_BLOCK, k - firstK);
                boolean add = accumulate || kBlock > 0;
                // Where the task's first A sliver of this k-block lies in aBlock.
                int aFirst = sharedA != null ? (kBlock * rowSlivers + firstRowSliver) * A_SLIVER_FLOATS : 0;
                for (int r = 0; sharedA == null && r < rowCount; r++) {
                    int row = (firstRowSliver + r) * ROWS;
                    packA(transA, a, aOffset, lda, row, Math.min(ROWS, m - row), firstK, kc, aBlock, r * A_SLIVER_FLOATS);
                }
                for (int r = 0; r < rowCount; r++) {
                    int row = (firstRowSliver + r) * ROWS;
                    int rows = Math.min(ROWS, m - row);
                    for (int s = firstSliver; s < sliverEnd; s++) {
                        int col = (firstColSliver + s) * COLS;
                        GemmKernel.multiply(kc, aBlock, aFirst + r * A_SLIVER_FLOATS, panel, bSliver(firstK, kc, s), tile);
                        storeTile(tile, rows, Math.min(COLS, n - col),
                                c, (cOffset + (long) row * ldc + col) * Float.BYTES, ldc, add);
                    }
                }
            }
        }

        /** Start of the B sliver for k-block {@code firstK} (depth kc) and panel sliver {@code s}. */
        private int bSliver(int firstK, int kc, int s) {
            // A packed op(B) is one panel of every sliver; a panel packed here holds just its own.
            return packed != null ? sliverOffset(firstK, kc, panelCapacity, firstColSliver + s)
                    : sliverOffset(firstK, kc, panelSlivers, s);
        }
    }

    private static float[] sharedABuffer(int floats) {
        float[] buffer = SHARED_A.get();
        if (buffer.length < floats) {
            buffer = new float[floats];
            SHARED_A.set(buffer);
        }
        return buffer;
    }

    private static float[] panelBuffer(int floats) {
        float[] panel = PANEL.get();
        if (panel.length < floats) {
            panel = new float[floats];
            PANEL.set(panel);
        }
        return panel;
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
        if (transA) {
            // Each group is a contiguous run of the stored [K,M] matrix; masked lanes supply the zeros.
            for (int p = 0; p < kc; p++) {
                long src = (aOffset + (long) (firstK + p) * lda + row) * Float.BYTES;
                int dst = start + p * ROWS;
                for (int i = 0; i < ROWS; i += F.length()) {
                    VectorMask<Float> valid = F.indexInRange(i, rows);
                    FloatVector.fromMemorySegment(F, a, src + (long) i * Float.BYTES, ORDER, valid)
                            .intoArray(sliver, dst + i, F.indexInRange(i, ROWS));
                }
            }
            return;
        }
        if (rows < ROWS) {
            Arrays.fill(sliver, start, start + kc * ROWS, 0f);
        }
        for (int i = 0; i < rows; i++) {
            long src = (aOffset + (long) (row + i) * lda + firstK) * Float.BYTES;
            for (int p = 0; p < kc; p++) {
                sliver[start + p * ROWS + i] = a.get(FLOAT, src + (long) p * Float.BYTES);
            }
        }
    }
}
