package spin.backend.cpu;

import static spin.backend.cpu.Mem.F;
import static spin.backend.cpu.Mem.f;
import static spin.backend.cpu.Mem.i32;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import spin.backend.AttentionShape;
import spin.backend.DType;
import spin.backend.Tensor;

/**
 * Flash-style causal grouped-query attention on the CPU (semantics in
 * {@link spin.backend.Backend#attentionForward}). The forward streams keys in blocks with an online
 * softmax and keeps only the log-sum-exp per query, so memory stays O(T*D) for any T; the backward
 * recomputes probabilities from that log-sum-exp.
 */
final class CpuAttention {
    private static final int QUERY_BLOCK = 64;
    private static final int KEY_BLOCK = 64;

    private final CpuParallel pool;

    CpuAttention(CpuParallel pool) {
        this.pool = pool;
    }

    /** Shapes of one attention call, validated once. */
    private record Dims(int batch, int time, int heads, int kvHeads, int headDim, float scale) {
        static Dims of(Tensor q, Tensor k, Tensor v, Tensor keyMask, int window) {
            AttentionShape shape = AttentionShape.of(q, k, v, keyMask, window);
            return new Dims(shape.batch(), shape.time(), shape.heads(), shape.kvHeads(), shape.headDim(),
                    (float) (1.0 / Math.sqrt(shape.headDim())));
        }

        long qRow(int b, int i, int h) {
            return (((long) b * time + i) * heads + h) * headDim;
        }

        long kvRow(int b, int j, int g) {
            return (((long) b * time + j) * kvHeads + g) * headDim;
        }

        long lseIndex(int b, int h, int i) {
            return ((long) b * heads + h) * time + i;
        }

        int firstKey(int i, int window) {
            return window > 0 ? Math.max(0, i - window + 1) : 0;
        }
    }

    /** Work space of one thread: score and output tiles and the online-softmax state of a query block. */
    private static final class Tiles {
        final float[] scores = new float[QUERY_BLOCK * KEY_BLOCK];
        final float[] scoreGrads = new float[QUERY_BLOCK * KEY_BLOCK];
        final float[] max = new float[QUERY_BLOCK];
        final float[] denominator = new float[QUERY_BLOCK];
        final float[] rowDot = new float[QUERY_BLOCK];
        final float[] lse = new float[QUERY_BLOCK];
        final float[] acc;
        final MemorySegment scoresSeg = MemorySegment.ofArray(scores);
        final MemorySegment scoreGradsSeg = MemorySegment.ofArray(scoreGrads);
        final MemorySegment accSeg;

        Tiles(int headDim) {
            acc = new float[QUERY_BLOCK * headDim];
            accSeg = MemorySegment.ofArray(acc);
        }
    }

    /**
     * Query blocks of 64 against key blocks of 64: S = Q K^T and O += P V are small GEMMs on
     * strided head slices; the softmax runs online per row, so only [64 x 64] scores ever exist.
     */
    void forward(Tensor out, Tensor lse, Tensor q, Tensor k, Tensor v, Tensor keyMask, int window) {
        Dims dims = Dims.of(q, k, v, keyMask, window);
        requireShape(out, q.size(), "out");
        requireShape(lse, (long) dims.batch * dims.heads * dims.time, "lse");
        int queryBlocks = (dims.time + QUERY_BLOCK - 1) / QUERY_BLOCK;
        int groupSize = dims.heads / dims.kvHeads;
        int d = dims.headDim, qStride = dims.heads * d, kvStride = dims.kvHeads * d;
        MemorySegment o = out.memory(), ls = lse.memory(), qm = q.memory(), km = k.memory(), vm = v.memory(),
                mask = keyMask.memory();
        pool.forRange(dims.batch * dims.heads * queryBlocks, 1, (start, end) -> {
            Tiles tiles = new Tiles(d);
            float[] scores = tiles.scores;
            for (int item = start; item < end; item++) {
                int b = item / (dims.heads * queryBlocks);
                int h = (item / queryBlocks) % dims.heads;
                int i0 = (item % queryBlocks) * QUERY_BLOCK;
                int rows = Math.min(QUERY_BLOCK, dims.time - i0);
                int g = h / groupSize;
                java.util.Arrays.fill(tiles.acc, 0f);
                java.util.Arrays.fill(tiles.max, Float.NEGATIVE_INFINITY);
                java.util.Arrays.fill(tiles.denominator, 0f);
                int keyEnd = i0 + rows;
                for (int j0 = dims.firstKey(i0, window); j0 < keyEnd; j0 += KEY_BLOCK) {
                    int cols = Math.min(KEY_BLOCK, keyEnd - j0);
                    Gemm.gemm(pool, false, true, rows, cols, d, qm, dims.qRow(b, i0, h), qStride,
                            km, dims.kvRow(b, j0, g), kvStride, tiles.scoresSeg, 0, KEY_BLOCK, false);
                    for (int r = 0; r < rows; r++) {
                        int base = r * KEY_BLOCK;
                        float rowMax = maskAndScale(scores, base, cols, i0 + r, j0, b, dims, mask, window);
                        if (rowMax == Float.NEGATIVE_INFINITY) {
                            java.util.Arrays.fill(scores, base, base + cols, 0f);
                            continue;
                        }
                        float newMax = Math.max(tiles.max[r], rowMax);
                        if (newMax != tiles.max[r]) {
                            float correction = Mem.exp(tiles.max[r] - newMax);
                            tiles.denominator[r] *= correction;
                            Mem.scale(correction, tiles.accSeg, (long) r * d, d);
                            tiles.max[r] = newMax;
                        }
                        Mem.expShifted(scores, base, cols, newMax);
                        float sum = tiles.denominator[r];
                        for (int c = 0; c < cols; c++) {
                            sum += scores[base + c];
                        }
                        tiles.denominator[r] = sum;
                    }
                    Gemm.gemm(pool, false, false, rows, d, cols, tiles.scoresSeg, 0, KEY_BLOCK,
                            vm, dims.kvRow(b, j0, g), kvStride, tiles.accSeg, 0, d, true);
                }
                for (int r = 0; r < rows; r++) {
                    long qRow = dims.qRow(b, i0 + r, h);
                    long lseAt = dims.lseIndex(b, h, i0 + r);
                    if (tiles.denominator[r] == 0f) {
                        o.asSlice(qRow * Float.BYTES, (long) d * Float.BYTES).fill((byte) 0);
                        f(ls, lseAt, Float.NEGATIVE_INFINITY);
                        continue;
                    }
                    float inv = 1f / tiles.denominator[r];
                    for (int c = 0; c < d; c++) {
                        f(o, qRow + c, tiles.acc[r * d + c] * inv);
                    }
                    f(ls, lseAt, tiles.max[r] + (float) Math.log(tiles.denominator[r]));
                }
            }
        });
    }

    /**
     * Scales a row of raw scores (query i against keys j0..j0+cols) by 1/sqrt(D), sets the keys the
     * query may not see to -inf, and returns the row's maximum.
     */
    private static float maskAndScale(float[] scores, int base, int cols, int i, int j0, int b, Dims dims,
            MemorySegment mask, int window) {
        float rowMax = Float.NEGATIVE_INFINITY;
        int first = dims.firstKey(i, window);
        for (int c = 0; c < cols; c++) {
            int j = j0 + c;
            boolean visible = j <= i && j >= first && i32(mask, (long) b * dims.time + j) != 0;
            float s = visible ? scores[base + c] * dims.scale : Float.NEGATIVE_INFINITY;
            scores[base + c] = s;
            rowMax = Math.max(rowMax, s);
        }
        return rowMax;
    }

    /**
     * One task per (batch, kv head): it owns dk and dv of that head and dq of the query heads that
     * share it, so no two tasks write the same element and the summation order is fixed. Each
     * [64 x 64] tile recomputes P = exp(S - lse) and applies the four small GEMMs
     * dV += P^T dO, dP = dO V^T, dQ += dS K, dK += dS^T Q with dS = P * (dP - rowsum(dO * O)) / sqrt(D).
     */
    void backward(Tensor dq, Tensor dk, Tensor dv, Tensor dOut, Tensor q, Tensor k, Tensor v, Tensor keyMask,
            Tensor out, Tensor lse, int window) {
        Dims dims = Dims.of(q, k, v, keyMask, window);
        requireShape(dq, q.size(), "dq");
        requireShape(dOut, q.size(), "dOut");
        requireShape(out, q.size(), "out");
        requireShape(dk, k.size(), "dk");
        requireShape(dv, v.size(), "dv");
        requireShape(lse, (long) dims.batch * dims.heads * dims.time, "lse");
        int groupSize = dims.heads / dims.kvHeads;
        int d = dims.headDim, qStride = dims.heads * d, kvStride = dims.kvHeads * d;
        MemorySegment dqm = dq.memory(), dkm = dk.memory(), dvm = dv.memory(), dom = dOut.memory(), qm = q.memory(),
                km = k.memory(), vm = v.memory(), mask = keyMask.memory(), om = out.memory(), ls = lse.memory();
        pool.forRange(dims.batch * dims.kvHeads, 1, (start, end) -> {
            Tiles tiles = new Tiles(d);
            float[] p = tiles.scores, dS = tiles.scoreGrads;
            for (int item = start; item < end; item++) {
                int b = item / dims.kvHeads, g = item % dims.kvHeads;
                for (int j = 0; j < dims.time; j++) {
                    dkm.asSlice(dims.kvRow(b, j, g) * Float.BYTES, (long) d * Float.BYTES).fill((byte) 0);
                    dvm.asSlice(dims.kvRow(b, j, g) * Float.BYTES, (long) d * Float.BYTES).fill((byte) 0);
                }
                for (int h = g * groupSize; h < (g + 1) * groupSize; h++) {
                    for (int i0 = 0; i0 < dims.time; i0 += QUERY_BLOCK) {
                        int rows = Math.min(QUERY_BLOCK, dims.time - i0);
                        for (int r = 0; r < rows; r++) {
                            long qRow = dims.qRow(b, i0 + r, h);
                            dqm.asSlice(qRow * Float.BYTES, (long) d * Float.BYTES).fill((byte) 0);
                            tiles.rowDot[r] = Mem.dot(dom, qRow, om, qRow, d);
                            tiles.lse[r] = f(ls, dims.lseIndex(b, h, i0 + r));
                        }
                        int keyEnd = i0 + rows;
                        for (int j0 = dims.firstKey(i0, window); j0 < keyEnd; j0 += KEY_BLOCK) {
                            int cols = Math.min(KEY_BLOCK, keyEnd - j0);
                            long kvRow = dims.kvRow(b, j0, g);
                            Gemm.gemm(pool, false, true, rows, cols, d, qm, dims.qRow(b, i0, h), qStride,
                                    km, kvRow, kvStride, tiles.scoresSeg, 0, KEY_BLOCK, false);
                            for (int r = 0; r < rows; r++) {
                                int base = r * KEY_BLOCK;
                                maskAndScale(p, base, cols, i0 + r, j0, b, dims, mask, window);
                                if (tiles.lse[r] == Float.NEGATIVE_INFINITY) {
                                    java.util.Arrays.fill(p, base, base + cols, 0f);
                                } else {
                                    Mem.expShifted(p, base, cols, tiles.lse[r]);
                                }
                            }
                            Gemm.gemm(pool, true, false, cols, d, rows, tiles.scoresSeg, 0, KEY_BLOCK,
                                    dom, dims.qRow(b, i0, h), qStride, dvm, kvRow, kvStride, true);
                            Gemm.gemm(pool, false, true, rows, cols, d, dom, dims.qRow(b, i0, h), qStride,
                                    vm, kvRow, kvStride, tiles.scoreGradsSeg, 0, KEY_BLOCK, false);
                            for (int r = 0; r < rows; r++) {
                                int base = r * KEY_BLOCK;
                                float rowDot = tiles.rowDot[r];
                                for (int c = 0; c < cols; c++) {
                                    dS[base + c] = p[base + c] * (dS[base + c] - rowDot) * dims.scale;
                                }
                            }
                            Gemm.gemm(pool, false, false, rows, d, cols, tiles.scoreGradsSeg, 0, KEY_BLOCK,
                                    km, kvRow, kvStride, dqm, dims.qRow(b, i0, h), qStride, true);
                            Gemm.gemm(pool, true, false, cols, d, rows, tiles.scoreGradsSeg, 0, KEY_BLOCK,
                                    qm, dims.qRow(b, i0, h), qStride, dkm, kvRow, kvStride, true);
                        }
                    }
                }
            }
        });
    }

    /**
     * Query-key pairs below which cached attention runs on the calling thread: at 15-30 ns a pair,
     * about what handing work to another thread costs (tens of microseconds).
     */
    private static final long MIN_PARALLEL_PAIRS = 2048;

    void cachedForward(Tensor out, Tensor q, Tensor kCache, Tensor vCache, Tensor blockTable, Tensor querySeq,
            Tensor queryPos, int blockSize, int window) {
        AttentionShape shape = AttentionShape.cached(q, kCache, vCache, window);
        int m = shape.batch(), heads = shape.heads(), d = shape.headDim(), kvHeads = shape.kvHeads(),
                cacheRows = kCache.dim(0);
        requireShape(out, q.size(), "out");
        int maxBlocks = blockTable.dim(1);
        int groupSize = heads / kvHeads;
        float scale = (float) (1.0 / Math.sqrt(d));
        MemorySegment o = out.memory(), qm = q.memory(), km = kCache.memory(), vm = vCache.memory(),
                table = blockTable.memory(), seqs = querySeq.memory(), positions = queryPos.memory();
        // Items are independent, so chunks may hold many of them: fewer scratch arrays and claims.
        // A step with few query-key pairs (a small model decoding one sequence) stays on this
        // thread: waking another costs more than the whole step's attention.
        int items = m * heads;
        long pairs = 0;
        for (int token = 0; token < m; token++) {
            int keys = i32(positions, token) + 1;
            pairs += window > 0 ? Math.min(keys, window) : keys;
        }
        pairs *= heads;
        int grain = pairs < MIN_PARALLEL_PAIRS ? items : Math.max(1, Math.min(64, items / (8 * pool.threads())));
        pool.forRange(items, grain, (start, end) -> {
            float[] scores = new float[KEY_BLOCK];
            long[] keyRows = new long[KEY_BLOCK];
            float[] acc = new float[d];
            for (int item = start; item < end; item++) {
                int token = item / heads, h = item % heads, g = h / groupSize;
                int seq = i32(seqs, token), pos = i32(positions, token);
                long qRow = ((long) token * heads + h) * d;
                java.util.Arrays.fill(acc, 0f);
                float max = Float.NEGATIVE_INFINITY, denominator = 0f;
                for (int p0 = window > 0 ? Math.max(0, pos - window + 1) : 0; p0 <= pos; p0 += KEY_BLOCK) {
                    int p1 = Math.min(pos + 1, p0 + KEY_BLOCK);
                    cacheRows(keyRows, table, seq, p0, p1, blockSize, maxBlocks, cacheRows);
                    float blockMax = Float.NEGATIVE_INFINITY;
                    for (int p = p0; p < p1; p++) {
                        float s = Mem.dot(qm, qRow, km, (keyRows[p - p0] * kvHeads + g) * d, d) * scale;
                        scores[p - p0] = s;
                        blockMax = Math.max(blockMax, s);
                    }
                    float newMax = Math.max(max, blockMax);
                    // The first block has nothing to correct (exp(-inf) would zero the zeros).
                    if (newMax != max && max != Float.NEGATIVE_INFINITY) {
                        float correction = Mem.exp(max - newMax);
                        denominator *= correction;
                        scale(correction, acc);
                    }
                    max = newMax;
                    Mem.expShifted(scores, p1 - p0, max);
                    for (int i = 0; i < p1 - p0; i++) {
                        denominator += scores[i];
                    }
                    addWeightedRows(scores, p1 - p0, vm, keyRows, kvHeads, g, d, acc);
                }
                float inv = 1f / denominator;
                int c = 0;
                for (int bound = F.loopBound(d); c < bound; c += F.length()) {
                    Mem.store(FloatVector.fromArray(F, acc, c).mul(inv), o, qRow + c);
                }
                for (; c < d; c++) {
                    f(o, qRow + c, acc[c] * inv);
                }
            }
        });
    }

    /** acc[c] *= factor: {@link Mem#scale}'s arithmetic on an array. */
    private static void scale(float factor, float[] acc) {
        FloatVector f = FloatVector.broadcast(F, factor);
        int c = 0;
        for (int bound = F.loopBound(acc.length); c < bound; c += F.length()) {
            FloatVector.fromArray(F, acc, c).mul(f).intoArray(acc, c);
        }
        for (; c < acc.length; c++) {
            acc[c] *= factor;
        }
    }

    /**
     * acc += sum over i < n of weights[i] * V row (rows[i] * kvHeads + g), each element's terms added
     * in increasing i with the arithmetic of {@link Mem#axpy} (FMA on whole vectors, multiply then
     * add on the tail); a vector of acc stays in a register over all n rows.
     */
    private static void addWeightedRows(float[] weights, int n, MemorySegment v, long[] rows, int kvHeads, int g, int d,
            float[] acc) {
        int c = 0;
        for (int bound = F.loopBound(d); c < bound; c += F.length()) {
            FloatVector sum = FloatVector.fromArray(F, acc, c);
            for (int i = 0; i < n; i++) {
                long at = ((rows[i] * kvHeads + g) * d + c) * Float.BYTES;
                sum = FloatVector.fromMemorySegment(F, v, at, Mem.ORDER).fma(FloatVector.broadcast(F, weights[i]), sum);
            }
            sum.intoArray(acc, c);
        }
        for (; c < d; c++) {
            float sum = acc[c];
            for (int i = 0; i < n; i++) {
                sum = sum + weights[i] * f(v, (rows[i] * kvHeads + g) * d + c);
            }
            acc[c] = sum;
        }
    }

    /**
     * rows[p - p0] = cache row of position p of sequence {@code seq}, for p in [p0, p1): one table
     * lookup (and its checks) per block rather than per position.
     */
    private static void cacheRows(long[] rows, MemorySegment table, int seq, int p0, int p1, int blockSize, int maxBlocks,
            int cacheRows) {
        for (int p = p0; p < p1; ) {
            long first = cacheRow(table, seq, p, blockSize, maxBlocks, cacheRows);
            int run = Math.min(p1 - p, blockSize - p % blockSize);
            for (int i = 0; i < run; i++) {
                rows[p - p0 + i] = first + i;
            }
            p += run;
        }
    }

    private static long cacheRow(MemorySegment table, int seq, int position, int blockSize, int maxBlocks, int cacheRows) {
        int blockIndex = position / blockSize;
        if (blockIndex >= maxBlocks) {
            throw new IllegalArgumentException("position " + position + " needs block " + blockIndex
                    + " but the block table has " + maxBlocks + " columns");
        }
        long row = (long) i32(table, (long) seq * maxBlocks + blockIndex) * blockSize + position % blockSize;
        if (row < 0 || row >= cacheRows) {
            throw new IllegalArgumentException("cache row " + row + " for position " + position + " of sequence " + seq
                    + " is outside the cache of " + cacheRows + " rows");
        }
        return row;
    }

    private static void requireShape(Tensor t, long elements, String name) {
        if (t.dtype() != DType.F32 || t.size() != elements) {
            throw new IllegalArgumentException(name + " must be F32 with " + elements + " elements, got " + t);
        }
    }
}
